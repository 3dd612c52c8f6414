/* test_man.c -- the man pages (docs/man/NAME.scd, rendered by scdoc into
 * BUILD/docs/man) are clean roff and in step with the code.
 *
 * Each page must format with `man --warnings` without a single warning.
 * Then each page must document what the programs offer, taken from the
 * programs themselves and from the parsers' tables, so that a command,
 * option, exit code or configuration key added to the code without its
 * entry in the page fails here:
 *   klstore.1              every command of `klstore --help` with its own
 *                          subsection listing every option of `klstore help
 *                          COMMAND`; every global option and exit code
 *   klstorefs.8            every option `klstorefs --help` lists
 *   klstore-kafka-bridge.1 every option and exit code of its --help; every
 *                          [batcher], [kafka] and [parser] key and parser
 *   klstore.ini.5          every key of each table of the store's config
 *                          parser (store/src/config.c) in its section, and
 *                          the bridge's [kafka] and [parser] keys
 *                          (bridge/bridge_config.c) and parsers
 * "Documented" means an entry of the right section of the rendered page
 * whose term names the item (a mention in running text does not count).  Failures
 * print every missing item.  Without scdoc the pages are not generated and
 * every test here fails. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const PAGES[] = {"klstore.1", "klstore-kafka-bridge.1", "klstore.ini.5",
                                    "klstorefs.8"};
#define N_PAGES (sizeof PAGES / sizeof *PAGES)

/* Runs a shell command and returns its whole standard output. */
static char *run(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL, "popen %s", cmd);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    size_t n;
    while ((n = fread(out + len, 1, cap - 1 - len, p)) > 0) {
        len += n;
        if (len == cap - 1) out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    cr_assert_eq(pclose(p), 0, "command failed: %s\n%s", cmd, out);
    return out;
}

static char *fmt(const char *f, const char *a)
{
    char *s;
    cr_assert(asprintf(&s, f, a, a, a) >= 0);
    return s;
}

static void require_page(const char *page)
{
    char *path = fmt(KL_MAN_DIR "/%s", page);
    cr_assert(access(path, R_OK) == 0,
              "%s was not generated (is scdoc installed? scripts/install-deps.sh)", path);
    free(path);
}

/* The page as a reader sees it, each paragraph on one line (no wrapping,
 * hence no hyphenation), without formatting. */
static char *page_text(const char *page)
{
    require_page(page);
    char *cmd = fmt("MANWIDTH=10000 man -E UTF-8 -l " KL_MAN_DIR "/%s 2>/dev/null", page);
    char *text = run(cmd);
    free(cmd);
    return text;
}

/* The lines of a section of the rendered page: from the heading line that
 * starts with `heading` at indentation `level` (0: section, 3: subsection)
 * up to the next heading of that level or above.  Returned as one string. */
static char *section(const char *text, int level, const char *heading)
{
    size_t cap = strlen(text) + 1, len = 0;
    char *out = malloc(cap);
    int in = 0;
    for (const char *l = text; *l;) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        size_t ind = strspn(l, " ");
        int is_heading = ind < n && (int)ind <= level;
        if (is_heading && (int)ind == level && strncmp(l + ind, heading, strlen(heading)) == 0 &&
            (n == ind + strlen(heading) || l[ind + strlen(heading)] == ' '))
            in = 1;
        else if (is_heading)
            in = 0;
        if (in) {
            memcpy(out + len, l, n);
            out[len + n] = '\n';
            len += n + 1;
        }
        l += n + (nl != NULL);
    }
    out[len] = '\0';
    cr_assert(len > 0, "the page has no section '%s'", heading);
    return out;
}

static int word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* Whether `word` occurs as a whole word in s[0, n). */
static int has_word_n(const char *s, size_t n, const char *word)
{
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++)
        if (memcmp(s + i, word, w) == 0 && (i == 0 || !word_char(s[i - 1])) &&
            (i + w == n || !word_char(s[i + w]) ||
             (s[i + w] == '.' && (i + w + 1 == n || !word_char(s[i + w + 1])))))
            return 1;
    return 0;
}

/* Whether an entry of `sect` names `word` in its term: a line indented by
 * exactly 7 spaces (where man sets body text and the tag of an entry) that
 * is followed, possibly after further such lines (several terms sharing
 * one description), by its description, indented deeper.  Paragraphs of
 * running text are followed by a blank line instead, so a word that is
 * only mentioned in passing does not count. */
static int has_entry(const char *sect, const char *word)
{
    for (const char *l = sect; *l;) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        if (strspn(l, " ") == 7 && n > 7 && has_word_n(l, n, word)) {
            const char *next = nl ? nl + 1 : "";
            while (strspn(next, " ") == 7 && next[7] && next[7] != '\n')
                next = strchr(next, '\n') ? strchr(next, '\n') + 1 : "";
            size_t ind = strspn(next, " ");
            if (ind > 7 && next[ind] && next[ind] != '\n') return 1;
        }
        l += n + (nl != NULL);
    }
    return 0;
}

/* Checks that each line of `items` (one name per line, at least one) has
 * an entry in `sect` (or, with anywhere, occurs in it at all); fails
 * listing every one missing. */
static void check_items(const char *what, const char *items, const char *sect, int anywhere)
{
    char missing[8192] = "";
    int count = 0;
    char *copy = strdup(items), *save = NULL;
    for (char *it = strtok_r(copy, "\n", &save); it; it = strtok_r(NULL, "\n", &save)) {
        count++;
        if (!(anywhere ? has_word_n(sect, strlen(sect), it) : has_entry(sect, it)) &&
            strlen(missing) + strlen(it) + 2 < sizeof missing) {
            strcat(missing, " ");
            strcat(missing, it);
        }
    }
    free(copy);
    cr_assert(count > 0, "%s: no items found in the code (has its format changed?)", what);
    cr_expect_str_eq(missing, "", "%s: not documented:%s", what, missing);
}

/* ---- the roff ------------------------------------------------------------ */

Test(man, pages_format_without_warnings)
{
    for (size_t i = 0; i < N_PAGES; i++) {
        require_page(PAGES[i]);
        char *cmd = fmt("MANWIDTH=80 man --warnings -E UTF-8 -l " KL_MAN_DIR "/%s 2>&1 >/dev/null",
                        PAGES[i]);
        char *warnings = run(cmd);
        cr_expect_str_eq(warnings, "", "%s: man reports:\n%s", PAGES[i], warnings);
        free(warnings);
        free(cmd);
    }
}

/* ---- klstore(1) ------------------------------------------------------------ */

Test(man, klstore_documents_every_command_and_option)
{
    char *text = page_text("klstore.1");
    char *commands = run(KLSTORE_BIN " --help | sed -n '/^Commands:/,/^$/p'"
                                     " | grep -oE '^  [a-z-]+' | tr -d ' '");
    char *cmds = section(text, 0, "COMMANDS");
    char *copy = strdup(commands), *save = NULL;
    int n = 0, options = 0;
    for (char *c = strtok_r(copy, "\n", &save); c; c = strtok_r(NULL, "\n", &save), n++) {
        char *sub = section(cmds, 3, c);
        /* The command's own options: those of its usage line and the lines
         * of its help that start with an option (the common ones are
         * listed on one "Common flags" line and documented under GLOBAL
         * OPTIONS). */
        char *cmd = fmt(KLSTORE_BIN " help %s | { read -r usage;"
                                    " echo \"$usage\" | grep -oE -- '\\[--?[a-zA-Z][a-z-]*';"
                                    " grep -oE -- '^  (-[a-zA-Z], )?--?[a-z][a-z-]*'; }"
                                    " | grep -oE -- '--?[a-zA-Z][a-z-]*' | sort -u",
                        c);
        char *opts = run(cmd);
        char *what = fmt("klstore.1, command %s", c);
        if (*opts) check_items(what, opts, sub, 0);
        for (const char *o = opts; (o = strchr(o, '\n')); o++) options++;
        free(what);
        free(opts);
        free(cmd);
        free(sub);
    }
    cr_assert(n >= 6, "klstore --help lists %d commands:\n%s", n, commands);
    cr_assert(options >= 15, "only %d command options found in 'klstore help COMMAND'", options);
    free(copy);

    char *global = section(text, 0, "GLOBAL OPTIONS");
    char *gopts = run(
        KLSTORE_BIN " --help | sed -n '/^Global flags/,/^$/p'"
                    " | grep -oE '^  (-[a-zA-Z], )?--[a-z-]+' | grep -oE -- '--?[a-zA-Z][a-z-]*'");
    check_items("klstore.1, global options", gopts, global, 0);

    char *exits = section(text, 0, "EXIT STATUS");
    char *codes = run(KLSTORE_BIN " --help | sed -n '/^Exit codes:/,$p'"
                                  " | grep -oE '^  [0-9][0-9, ]*[0-9]? ' | grep -oE '[0-9]+'");
    check_items("klstore.1, exit codes", codes, exits, 0);
    free(codes);
    free(exits);
    free(gopts);
    free(global);
    free(cmds);
    free(commands);
    free(text);
}

/* ---- klstorefs(8) ---------------------------------------------------------- */

#ifdef KLSTOREFS_BIN
Test(man, klstorefs_documents_every_option)
{
    char *text = page_text("klstorefs.8");
    char *opts = section(text, 0, "OPTIONS");
    char *help = KLSTOREFS_BIN " --help | sed -n '/^klstorefs options:/,/^S3 credentials/p'";
    char *cmd = fmt("%s | grep -oE -- '-o [a-z_]+(=[A-Z]+)?(,[a-z_]+(=[A-Z]+)?)*'"
                    " | sed 's/^-o //' | tr ',' '\\n' | sed 's/=.*//' | sort -u",
                    help);
    char *mount_opts = run(cmd);
    check_items("klstorefs.8, -o options", mount_opts, opts, 0);
    free(cmd);
    cmd = fmt("%s | grep -E '^  -' | grep -oE -- '(^| |,)--?[a-zA-Z][a-z-]*'"
              " | grep -oE -- '--?[a-zA-Z][a-z-]*' | sort -u",
              help);
    char *flags = run(cmd);
    check_items("klstorefs.8, flags", flags, opts, 0);
    free(flags);
    free(cmd);
    free(mount_opts);
    free(opts);
    free(text);
}
#endif

/* ---- the configuration keys ----------------------------------------------- */

/* The names of a settings table of store/src/config.c. */
static char *config_table(const char *table)
{
    char *cmd = fmt("sed -n '/^static const setting %s\\[\\]/,/^};/p' " KL_SOURCE_DIR
                    "/store/src/config.c | grep -E '^ *\\{\"[a-z_]+\", K_'"
                    " | sed -E 's/^ *\\{\"([a-z_]+)\".*/\\1/'",
                    table);
    char *names = run(cmd);
    free(cmd);
    return names;
}

/* The keys a function of bridge/bridge_config.c compares names with. */
static char *bridge_keys(const char *functions)
{
    char *cmd = fmt("awk '/^static int (%s)\\(/,/^}/' " KL_SOURCE_DIR
                    "/bridge/bridge_config.c | grep -oE 'strcmp\\(name, \"[a-z_.]+\"\\)'"
                    " | grep -oE '\"[a-z_.]+\"' | tr -d '\"' | sort -u",
                    functions);
    char *names = run(cmd);
    free(cmd);
    return names;
}

static char *parser_names(void)
{
    return run("grep -oE '^ *\\{\"[A-Za-z0-9]+\", BR_SRC' " KL_SOURCE_DIR "/bridge/parsers.c"
               " | grep -oE '[A-Za-z0-9]+\"' | tr -d '\"' | sort -u");
}

Test(man, config_page_documents_every_key)
{
    char *text = page_text("klstore.ini.5");
    static const char *const tables[][2] = {
        {"store_settings", "STORE SETTINGS:"},
        {"s3_settings", "[s3]"},
        {"local_settings", "[local]"},
        {"batch_settings", "[batcher]"},
    };
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        char *keys = config_table(tables[i][0]);
        char *sect = section(text, 0, tables[i][1]);
        char *what = fmt("klstore.ini.5, %s", tables[i][1]);
        check_items(what, keys, sect, 0);
        free(what);
        free(sect);
        free(keys);
    }
    char *kafka = bridge_keys("kafka_key|forced_key");
    char *sect = section(text, 0, "[kafka]");
    check_items("klstore.ini.5, [kafka]", kafka, sect, 0);
    free(sect);
    char *parser = bridge_keys("parser_key");
    sect = section(text, 0, "[parser]");
    check_items("klstore.ini.5, [parser]", parser, sect, 0);
    char *parsers = parser_names();
    check_items("klstore.ini.5, parsers", parsers, sect, 1);
    char *metrics = bridge_keys("metrics_key");
    char *msect = section(text, 0, "[metrics]");
    check_items("klstore.ini.5, [metrics]", metrics, msect, 0);
    free(msect);
    free(metrics);
    free(parsers);
    free(sect);
    free(parser);
    free(kafka);
    free(text);
}

/* ---- klstore-kafka-bridge(1) ------------------------------------------------ */

#ifdef BRIDGE_BIN
Test(man, bridge_documents_options_exit_codes_and_config)
{
    char *text = page_text("klstore-kafka-bridge.1");
    char *opts = section(text, 0, "OPTIONS");
    char *flags = run(BRIDGE_BIN " --help | grep -oE -- '^  --[a-z]+' | tr -d ' '");
    check_items("klstore-kafka-bridge.1, options", flags, opts, 0);
    char *exits = section(text, 0, "EXIT STATUS");
    char *codes = run(BRIDGE_BIN " --help | sed -n '/^Exit codes:/,$p' | grep -oE '^  [0-9]+'"
                                 " | tr -d ' '");
    check_items("klstore-kafka-bridge.1, exit codes", codes, exits, 0);

    /* CONFIGURATION names every key the bridge reads beyond the store's
     * own sections, and every parser. */
    char *conf = section(text, 0, "CONFIGURATION");
    char *batch = config_table("batch_settings");
    check_items("klstore-kafka-bridge.1, [batcher]", batch, conf, 1);
    char *kafka = bridge_keys("kafka_key|forced_key");
    check_items("klstore-kafka-bridge.1, [kafka]", kafka, conf, 1);
    char *parser = bridge_keys("parser_key");
    check_items("klstore-kafka-bridge.1, [parser]", parser, conf, 1);
    char *parsers = parser_names();
    check_items("klstore-kafka-bridge.1, parsers", parsers, conf, 1);
    char *metrics = bridge_keys("metrics_key");
    check_items("klstore-kafka-bridge.1, [metrics]", metrics, conf, 1);
    free(metrics);
    free(parsers);
    free(parser);
    free(kafka);
    free(batch);
    free(conf);
    free(codes);
    free(exits);
    free(flags);
    free(opts);
    free(text);
}
#endif
