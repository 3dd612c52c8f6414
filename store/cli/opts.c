/* opts.c -- option parsing for the klstore CLI: getopt_long over the
 * options every command shares (--store, --config, S3 flags, --help) plus
 * the command's own, with errors in the CLI's one-line format, and the
 * parsers for flag values (numbers, times, --from positions, names), so
 * that every command rejects bad input the same way (exit 2). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct option common_opts[] = {
    {"store", required_argument, NULL, CLI_OPT_STORE},
    {"config", required_argument, NULL, CLI_OPT_CONFIG},
    {"endpoint", required_argument, NULL, CLI_OPT_ENDPOINT},
    {"region", required_argument, NULL, CLI_OPT_REGION},
    {"path-style", no_argument, NULL, CLI_OPT_PATH_STYLE},
    {"help", no_argument, NULL, CLI_OPT_HELP},
};
#define N_COMMON (sizeof common_opts / sizeof *common_opts)

int cli_common_opt(cli *c, int id, const char *arg)
{
    switch (id) {
    case CLI_OPT_STORE: c->store = arg; break;
    case CLI_OPT_CONFIG: c->config = arg; break;
    case CLI_OPT_ENDPOINT: c->endpoint = arg; break;
    case CLI_OPT_REGION: c->region = arg; break;
    case CLI_OPT_PATH_STYLE: c->path_style = 1; break;
    default: return CLI_EUSAGE;
    }
    return CLI_OK;
}

/* The common options followed by the command's, NULL-terminated. */
static struct option *merge_opts(const struct option *opts)
{
    size_t n = 0;
    while (opts && opts[n].name) n++;
    struct option *all = calloc(N_COMMON + n + 1, sizeof *all);
    if (!all) return NULL;
    memcpy(all, common_opts, sizeof common_opts);
    if (n) memcpy(all + N_COMMON, opts, n * sizeof *opts);
    return all;
}

static const char *long_name(const struct option *all, int id)
{
    for (size_t i = 0; all[i].name; i++)
        if (all[i].val == id) return all[i].name;
    return "?";
}

/* The message for getopt's '?' (unknown option, or a value given to a
 * flag that takes none) and ':' (missing value). */
static int bad_option(cli *c, const struct option *all, int ret, char **argv)
{
    const char *word = optind > 0 ? argv[optind - 1] : "?";
    const char *see = c->cmd ? c->cmd->name : "";
    if (ret == ':') {
        if (optopt >= CLI_OPT_STORE)
            return cli_err(c, CLI_EUSAGE, "option '--%s' needs a value", long_name(all, optopt));
        return cli_err(c, CLI_EUSAGE, "option '-%c' needs a value", optopt);
    }
    if (optopt && strncmp(word, "--", 2) == 0)
        return cli_err(c, CLI_EUSAGE, "option '--%s' does not take a value",
                       long_name(all, optopt));
    if (optopt)
        return cli_err(c, CLI_EUSAGE, "unknown option '-%c' (see 'klstore %s --help')", optopt,
                       see);
    return cli_err(c, CLI_EUSAGE, "unknown or ambiguous option '%s' (see 'klstore %s --help')",
                   word, see);
}

static void print_help(const cli_cmd *cmd)
{
    printf("usage: klstore %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
    if (cmd->help && *cmd->help) printf("\n%s", cmd->help);
    printf("\nCommon flags: --store STORE, --config FILE, --endpoint URL, "
           "--region R,\n--path-style, -h/--help (see 'klstore help').\n");
}

int cli_parse(cli *c, int argc, char **argv, const char *shortopts, const struct option *opts,
              cli_opt_fn fn, void *ctx, int min_pos, int max_pos, char ***pos, int *npos)
{
    struct option *all = merge_opts(opts);
    if (!all) return cli_err(c, CLI_ERUNTIME, "out of memory");
    char sopts[64];
    snprintf(sopts, sizeof sopts, ":h%s", shortopts ? shortopts : "");
    int rc = CLI_OK, ret;
    optind = 0; /* full re-initialisation of glibc's getopt */
    opterr = 0;
    while (rc == CLI_OK && (ret = getopt_long(argc, argv, sopts, all, NULL)) != -1) {
        if (ret == '?' || ret == ':')
            rc = bad_option(c, all, ret, argv);
        else if (ret == 'h' || ret == CLI_OPT_HELP) {
            print_help(c->cmd);
            rc = CLI_DONE;
        } else if (ret >= CLI_OPT_STORE && ret < CLI_OPT_CMD)
            rc = cli_common_opt(c, ret, optarg);
        else
            rc = fn ? fn(c, ret, optarg, ctx) : CLI_EUSAGE;
    }
    free(all);
    if (rc != CLI_OK) return rc;
    int n = argc - optind;
    if (n < min_pos)
        return cli_err(c, CLI_EUSAGE, "missing argument (usage: klstore %s %s)", c->cmd->name,
                       c->cmd->usage);
    if (n > max_pos)
        return cli_err(c, CLI_EUSAGE, "unexpected argument '%s' (usage: klstore %s %s)",
                       argv[optind + max_pos], c->cmd->name, c->cmd->usage);
    *pos = argv + optind;
    *npos = n;
    return CLI_OK;
}

/* ---- values -------------------------------------------------------------- */

int cli_u64(cli *c, const char *flag, const char *arg, uint64_t min, uint64_t *out)
{
    kl_error err = {0};
    if (kl_parse_u64(arg, out, &err) != KL_OK)
        return cli_err(c, CLI_EUSAGE, "invalid %s '%s': %s", flag, arg, err.msg);
    if (*out < min)
        return cli_err(c, CLI_EUSAGE, "invalid %s '%s': must be at least %llu", flag, arg,
                       (unsigned long long)min);
    return CLI_OK;
}

int cli_u128(cli *c, const char *flag, const char *arg, kl_u128 *out)
{
    kl_error err = {0};
    if (kl_parse_u128(arg, out, &err) != KL_OK)
        return cli_err(c, CLI_EUSAGE, "invalid %s '%s': %s", flag, arg, err.msg);
    if (*out == KL_NONCE_NONE)
        return cli_err(c, CLI_EUSAGE,
                       "invalid %s '%s': 2^128-1 is reserved for "
                       "\"no nonce\"",
                       flag, arg);
    return CLI_OK;
}

int cli_time(cli *c, const char *flag, const char *arg, int64_t *out)
{
    kl_error err = {0};
    if (kl_parse_time(arg, out, &err) != KL_OK)
        return cli_err(c, CLI_EUSAGE, "invalid %s '%s': %s", flag, arg, err.msg);
    return CLI_OK;
}

int cli_start(cli *c, const char *arg, kl_start *out)
{
    *out = (kl_start){0};
    const char *colon = strchr(arg, ':');
    size_t klen = colon ? (size_t)(colon - arg) : strlen(arg);
    const char *v = colon ? colon + 1 : NULL;
    if (!colon && strcmp(arg, "first") == 0) {
        out->kind = KL_START_FIRST;
        return CLI_OK;
    }
    if (!colon && strcmp(arg, "last") == 0) {
        out->kind = KL_START_LAST;
        return CLI_OK;
    }
    if (colon && klen == 6 && strncmp(arg, "offset", 6) == 0) {
        out->kind = KL_START_OFFSET;
        return cli_u64(c, "--from offset", v, 1, &out->offset);
    }
    if (colon && klen == 9 && strncmp(arg, "timestamp", 9) == 0) {
        out->kind = KL_START_TIMESTAMP;
        return cli_time(c, "--from timestamp", v, &out->timestamp);
    }
    if (colon && klen == 5 && strncmp(arg, "nonce", 5) == 0) {
        out->kind = KL_START_NONCE;
        return cli_u128(c, "--from nonce", v, &out->nonce);
    }
    return cli_err(c, CLI_EUSAGE,
                   "invalid --from '%s': expected first, last, offset:N, "
                   "timestamp:T or nonce:N",
                   arg);
}

int cli_name(cli *c, const char *what, const char *name)
{
    kl_error err = {0};
    if (kl_validate_name(what, name, &err) != KL_OK) return cli_err(c, CLI_EUSAGE, "%s", err.msg);
    return CLI_OK;
}
