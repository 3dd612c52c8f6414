/* main.c -- klstore, the command-line front end of libklstore (as sqlite3
 * is for SQLite): global flags, the command table, help and dispatch.
 *
 *   klstore [--store STORE] [--config FILE] COMMAND [ARGS...]
 *
 * Every command is one row of `commands` below (name, handler, usage,
 * summary, help); the handlers live in cmd_*.c.  Global flags may come
 * before the command or among its own flags.  Errors are one line on
 * stderr, "klstore: COMMAND: message", with the exit codes listed in
 * cli.h and in `klstore help`. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int cmd_help(cli *c, int argc, char **argv);

#define TIME_HELP                                                                                  \
    "Times are milliseconds since the epoch, ISO-8601 (2024-05-01T12:00:00Z,\n"                    \
    "2024-05-01T12:00:00.123+02:00, 2024-05-01) or relative to now (-30s,\n"                       \
    "-15m, -2h, -1d, -500ms).\n"

#define OUTPUT_HELP                                                                                \
    "  --format text|json   text (default): each record's bytes and a newline;\n"                  \
    "                       json: one object per line,\n"                                          \
    "                       "                                                                      \
    "{\"offset\":N,\"timestamp\":MS,\"nonce\":\"N\"|null,\"value\":\"...\"}\n"                     \
    "                       (the nonce is a string: it can exceed 2^53)\n"                         \
    "  --value-encoding text|base64\n"                                                             \
    "                       text (default): JSON strings keep valid UTF-8 and\n"                   \
    "                       escape control characters; a byte of invalid UTF-8\n"                  \
    "                       becomes \\u00XX, which is lossy -- use base64 for\n"                   \
    "                       exact bytes (in text format too: one line each)\n"                     \
    "  --page-size N        records per page requested from the store\n"                           \
    "                       (default 10000: streaming wants few, large pages)\n"

static const cli_cmd commands[] = {
    {"create-keyspace", cmd_create_keyspace, "[--if-not-exists] KEYSPACE",
     "Create a keyspace (write its marker object).",
     "  --if-not-exists      succeed if the keyspace already exists (otherwise\n"
     "                       that is exit code 5)\n",
     1},
    {"append", cmd_append, "[FLAGS] KEYSPACE KEY < LINES",
     "Append the lines of stdin to a log, one record per line.",
     "A record is a line without its '\\n'; bytes are stored as they are (a '\\r'\n"
     "too), a final line without '\\n' is a record, an empty line is an empty\n"
     "record.  Lines are written in batches (one data object per batch); on\n"
     "error every line before the failing one is written, nothing after it,\n"
     "and the message says how many records were appended.  A summary (lines\n"
     "read, records appended, duplicates dropped by nonce) goes to stderr.\n"
     "The keyspace marker is not required (as with the library).\n\n"
     "  --nonce N            give line i (1, 2, ...) the nonce N+i-1; lines whose\n"
     "                       nonce is below the key's next nonce are dropped as\n"
     "                       duplicates, so re-running the same input with the\n"
     "                       same --nonce appends nothing twice\n"
     "  --nonce-prefix       each line is NONCE<TAB>PAYLOAD: the decimal nonce,\n"
     "                       a TAB, then the record; an empty NONCE means no\n"
     "                       nonce.  A line without TAB or with a bad nonce is\n"
     "                       bad data (exit 4).  Not with --nonce.\n"
     "  --timestamp T        timestamp of every record (default: the clock)\n"
     "  --batch-records N    records per batch (default 10000)\n"
     "  --batch-bytes N      payload bytes per batch (default 1048576)\n"
     "  --batch-ms N         write a pending batch once stdin is idle for N ms\n"
     "                       (default 1000; 0 = only when full or at the end)\n"
     "  -q, --quiet          no summary\n\n"
     "Records are at most 64 MiB; a longer line is refused (exit 4).\n" TIME_HELP,
     1},
    {"read", cmd_read, "[FLAGS] KEYSPACE KEY", "Print the records of a log, forwards or backwards.",
     "  --from POS           first|last|offset:N|timestamp:T|nonce:N (default:\n"
     "                       first, or last with --backwards).  Forwards,\n"
     "                       timestamp:T/nonce:N start at the first record >=;\n"
     "                       backwards at the last record <=\n"
     "  --backwards          newest first\n"
     "  --limit N            at most N records (default: all)\n" OUTPUT_HELP
     "\nA key without records is not found (exit 3).\n" TIME_HELP,
     0},
    {"tail", cmd_tail, "[-n N] [-f] [--interval MS] [FLAGS] KEYSPACE KEY",
     "Print the last records of a log, then optionally follow it.",
     "  -n, --lines N        the last N records, oldest first (default 10)\n"
     "  -f, --follow         then poll for new records and print them as they\n"
     "                       arrive, until SIGINT/SIGTERM or a closed pipe\n"
     "                       (exit 0); the key may not exist yet, its keyspace\n"
     "                       must\n"
     "  --interval MS        poll interval with -f (default 500)\n" OUTPUT_HELP,
     0},
    {"meta", cmd_meta, "[--format text|json] [--count] KEYSPACE [KEY]",
     "Show a keyspace's or a key's metadata.",
     "For a keyspace: its creation time (ms and ISO-8601).  For a key:\n"
     "next_offset, next_nonce, records (next_offset - 1), first_timestamp (the\n"
     "smallest of its first data object) and last_timestamp (the largest of its\n"
     "newest), in a few requests however long the key.  --count also lists\n"
     "every data object for: objects, bytes, min/max timestamp.  A missing\n"
     "keyspace or key is exit 3.\n",
     0},
    {"ls", cmd_ls, "[--format text|json] [KEYSPACE]",
     "List the keyspaces, or the keys (with data) of a keyspace.",
     "One name per line, or a JSON array with --format json.\n", 0},
    {"help", cmd_help, "[COMMAND]", "Show help for klstore or a command.", "", 0},
};
#define N_COMMANDS (sizeof commands / sizeof *commands)

static const cli_cmd *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static void usage_line(FILE *f)
{
    fprintf(f, "usage: klstore [--store STORE] [--config FILE] COMMAND [ARGS...]\n");
}

static void general_help(void)
{
    usage_line(stdout);
    printf("\nklstore keeps append-only logs (keyspace / key / records) on an object\n"
           "store: a local directory or S3.\n\nCommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        printf("  %-16s %s\n", commands[i].name, commands[i].summary);
    printf("\nGlobal flags (also accepted after the command):\n"
           "  --store STORE     a directory, file://PATH or s3://BUCKET[/PREFIX]; default:\n"
           "                    [local] root or the [s3] bucket of --config, else\n"
           "                    $XDG_DATA_HOME/klstore or ~/.local/share/klstore\n"
           "  --config FILE     INI file with [s3], [local] and [batcher] sections\n"
           "  --endpoint URL    S3 endpoint (overrides [s3] endpoint)\n"
           "  --region R        S3 region (overrides [s3] region)\n"
           "  --path-style      S3 path-style addressing\n"
           "  -h, --help        this help; 'klstore COMMAND --help' for a command\n"
           "  -V, --version     print the version\n\n"
           "Exit codes:\n"
           "  0  success\n"
           "  1  runtime error (I/O or object-store failure, out of memory)\n"
           "  2  usage error (unknown command or flag, bad argument or name,\n"
           "     bad configuration)\n"
           "  3  not found (store directory, keyspace or key)\n"
           "  4  bad data (record too large, malformed input line, corrupt store)\n"
           "  5  already exists (create-keyspace)\n"
           "  6  the store is out of space (what was written before is intact)\n"
           "  130, 143  append interrupted by SIGINT, SIGTERM (what was read before\n"
           "     is written and reported)\n");
}

static int cmd_help(cli *c, int argc, char **argv)
{
    char **pos;
    int npos;
    int rc = cli_parse(c, argc, argv, "", NULL, NULL, NULL, 0, 1, &pos, &npos);
    if (rc != CLI_OK) return rc;
    if (npos == 0) {
        general_help();
        return CLI_OK;
    }
    const cli_cmd *cmd = find_command(pos[0]);
    if (!cmd) return cli_err(c, CLI_EUSAGE, "unknown command '%s' (see 'klstore help')", pos[0]);
    char *args[] = {(char *)cmd->name, "--help", NULL};
    c->cmd = cmd;
    return cmd->run(c, 2, args);
}

/* Global flags before the command; returns the command's index in argv,
 * or -(exit code + 1) when done (help, version, error). */
static int parse_global(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, CLI_OPT_STORE},
        {"config", required_argument, NULL, CLI_OPT_CONFIG},
        {"endpoint", required_argument, NULL, CLI_OPT_ENDPOINT},
        {"region", required_argument, NULL, CLI_OPT_REGION},
        {"path-style", no_argument, NULL, CLI_OPT_PATH_STYLE},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    int ret;
    opterr = 0;
    while ((ret = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
        if (ret == 'h') {
            general_help();
            return -1;
        }
        if (ret == 'V') {
            printf("klstore %s\n", KL_VERSION);
            return -1;
        }
        if (ret == ':')
            return -1 - cli_err(c, CLI_EUSAGE, "option '%s' needs a value", argv[optind - 1]);
        if (ret == '?')
            return -1 - cli_err(c, CLI_EUSAGE, "unknown option '%s' (see 'klstore help')",
                                argv[optind - 1]);
        cli_common_opt(c, ret, optarg);
    }
    if (optind >= argc) {
        usage_line(stderr);
        fprintf(stderr, "Try 'klstore help'.\n");
        return -1 - CLI_EUSAGE;
    }
    return optind;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a closed stdout is EPIPE, handled as "stop" */
    cli c;
    memset(&c, 0, sizeof c);
    int at = parse_global(&c, argc, argv);
    if (at < 0) return -1 - at;
    const cli_cmd *cmd = find_command(argv[at]);
    if (!cmd) return cli_err(&c, CLI_EUSAGE, "unknown command '%s' (see 'klstore help')", argv[at]);
    c.cmd = cmd;
    int rc = cmd->run(&c, argc - at, argv + at);
    cli_close(&c);
    if (fflush(stdout) != 0 && rc == CLI_OK && errno != EPIPE)
        rc = cli_err(&c, CLI_ERUNTIME, "writing output: %s", strerror(errno));
    return rc == CLI_DONE ? CLI_OK : rc;
}
