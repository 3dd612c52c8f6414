/* cmd_read.c -- the commands that page through a log: read (from any
 * start position, either direction, bounded by --limit) and tail (the last
 * N records, then with -f new ones as they arrive, by polling the forward
 * continuation token, which a stateless reader hands out for exactly that).
 *
 * Both stop quietly with exit 0 when stdout is a closed pipe (EPIPE), and
 * tail -f on SIGINT/SIGTERM.  Reading a key that does not exist is "not
 * found" (exit 3), except for tail -f, which waits for the key to appear
 * (its keyspace must exist). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum {
    OPT_FROM = CLI_OPT_CMD,
    OPT_BACKWARDS,
    OPT_LIMIT,
    OPT_PAGE_SIZE,
    OPT_FORMAT,
    OPT_VALUE_ENCODING,
    OPT_INTERVAL,
};

typedef struct read_opts {
    int has_from;
    kl_start from;
    int backwards;
    int has_limit;
    uint64_t limit;
    uint64_t page_size; /* 0 = the store's default_page_size */
    cli_format fmt;
    cli_encoding enc;
    uint64_t tail_n;      /* tail -n */
    int follow;           /* tail -f */
    uint64_t interval_ms; /* tail --interval */
} read_opts;

static int read_opt(cli *c, int id, const char *arg, void *ctx)
{
    read_opts *o = ctx;
    switch (id) {
    case OPT_FROM: o->has_from = 1; return cli_start(c, arg, &o->from);
    case OPT_BACKWARDS: o->backwards = 1; return CLI_OK;
    case OPT_LIMIT: o->has_limit = 1; return cli_u64(c, "--limit", arg, 0, &o->limit);
    case OPT_PAGE_SIZE: return cli_u64(c, "--page-size", arg, 1, &o->page_size);
    case OPT_FORMAT: return cli_format_arg(c, arg, &o->fmt);
    case OPT_VALUE_ENCODING: return cli_encoding_arg(c, arg, &o->enc);
    case 'n': return cli_u64(c, "-n", arg, 0, &o->tail_n);
    case 'f': o->follow = 1; return CLI_OK;
    case OPT_INTERVAL: return cli_u64(c, "--interval", arg, 1, &o->interval_ms);
    }
    return CLI_EUSAGE;
}

#define OUTPUT_OPTS                                                                                \
    {"page-size", required_argument, NULL, OPT_PAGE_SIZE},                                         \
        {"format", required_argument, NULL, OPT_FORMAT},                                           \
    {                                                                                              \
        "value-encoding", required_argument, NULL, OPT_VALUE_ENCODING                              \
    }

/* Prints up to *left records of a page (all when left is NULL). */
static void print_page(const kl_page *p, const read_opts *o, uint64_t *left)
{
    for (size_t i = 0; i < p->count && (!left || *left > 0); i++) {
        cli_print_record(stdout, &p->records[i], o->fmt, o->enc);
        if (left) (*left)--;
    }
}

/* The CLI streams whole logs to stdout: each page costs a LIST (a round
 * trip on S3), so it asks for large pages unless told otherwise. */
#define CLI_PAGE_SIZE 10000

/* The page size to ask for: no more than the records still wanted. */
static uint64_t page_size(cli *c, const read_opts *o, uint64_t left)
{
    (void)c;
    uint64_t ps = o->page_size ? o->page_size : CLI_PAGE_SIZE;
    return o->has_limit && left < ps ? left : ps;
}

/* ---- read --------------------------------------------------------------------- */

static int read_loop(cli *c, const read_opts *o, const char *ks, const char *key)
{
    kl_error err = {0};
    kl_page p;
    uint64_t left = o->has_limit ? o->limit : UINT64_MAX;
    kl_direction dir = o->backwards ? KL_BACKWARDS : KL_FORWARDS;
    if (kl_read_first_page(c->reader, ks, key, dir, &o->from, page_size(c, o, left), &p, &err) !=
        KL_OK)
        return cli_fail(c, &err);
    if (p.count == 0) {
        int exists = 0;
        kl_key_meta m;
        kl_page_free(&p);
        if (kl_read_key_metadata(c->reader, ks, key, &exists, &m, &err) != KL_OK)
            return cli_fail(c, &err);
        return exists ? CLI_OK : cli_key_missing(c, ks, key);
    }
    int rc = CLI_OK, epipe = 0;
    for (;;) {
        print_page(&p, o, &left);
        rc = cli_flush_stdout(c, &epipe);
        if (rc != CLI_OK || epipe || left == 0 || p.count == 0 || !p.continuation) break;
        char *cont = p.continuation;
        p.continuation = NULL;
        kl_page_free(&p);
        kl_status st = kl_read_next_page(c->reader, ks, key, cont, page_size(c, o, left), &p, &err);
        free(cont);
        if (st != KL_OK) return cli_fail(c, &err);
    }
    kl_page_free(&p);
    return rc;
}

/* The common start of read and tail: flags, then KS KEY, checked, and the
 * store opened for reading. */
static int parse_key_command(cli *c, int argc, char **argv, const char *shortopts,
                             const struct option *opts, read_opts *o, char ***pos)
{
    int npos;
    int rc = cli_parse(c, argc, argv, shortopts, opts, read_opt, o, 2, 2, pos, &npos);
    if (rc == CLI_OK) rc = cli_name(c, "keyspace", (*pos)[0]);
    if (rc == CLI_OK) rc = cli_name(c, "key", (*pos)[1]);
    if (rc == CLI_OK) rc = cli_open_reader(c);
    return rc;
}

int cmd_read(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, OPT_FROM},
        {"backwards", no_argument, NULL, OPT_BACKWARDS},
        {"limit", required_argument, NULL, OPT_LIMIT},
        OUTPUT_OPTS,
        {0},
    };
    read_opts o = {0};
    char **pos;
    int rc = parse_key_command(c, argc, argv, "", opts, &o, &pos);
    if (rc != CLI_OK) return rc;
    if (!o.has_from) o.from.kind = o.backwards ? KL_START_LAST : KL_START_FIRST;
    if (o.has_limit && o.limit == 0) return CLI_OK;
    return read_loop(c, &o, pos[0], pos[1]);
}

/* ---- tail ---------------------------------------------------------------------- */

/* Prints pages forwards until caught up (an empty page); *cont is the
 * token to poll next (owned).  Sets *epipe when stdout went away. */
static int catch_up(cli *c, const read_opts *o, const char *ks, const char *key, kl_page *p,
                    char **cont, int *epipe)
{
    kl_error err = {0};
    for (;;) {
        print_page(p, o, NULL);
        int rc = cli_flush_stdout(c, epipe);
        size_t n = p->count;
        if (p->continuation) {
            free(*cont);
            *cont = p->continuation;
            p->continuation = NULL;
        }
        kl_page_free(p);
        if (rc != CLI_OK || *epipe || n == 0 || !*cont || cli_stop_signal) return rc;
        if (kl_read_next_page(c->reader, ks, key, *cont, page_size(c, o, 0), p, &err) != KL_OK)
            return cli_fail(c, &err);
    }
}

/* Where tail starts: the last n records of an existing key. */
static int tail_start(cli *c, const read_opts *o, const char *ks, const char *key, kl_start *start)
{
    kl_error err = {0};
    int exists = 0;
    kl_key_meta m;
    if (kl_read_key_metadata(c->reader, ks, key, &exists, &m, &err) != KL_OK)
        return cli_fail(c, &err);
    *start = (kl_start){.kind = KL_START_FIRST};
    if (exists && m.next_offset - 1 > o->tail_n) {
        start->kind = KL_START_OFFSET;
        start->offset = m.next_offset - o->tail_n;
    }
    if (exists || !o->follow) return exists ? CLI_OK : cli_key_missing(c, ks, key);
    kl_keyspace_meta km; /* following a key yet to be written: keyspace must exist */
    if (kl_read_keyspace_metadata(c->reader, ks, &km, &err) != KL_OK) return cli_fail(c, &err);
    return CLI_OK;
}

static int run_tail(cli *c, const read_opts *o, const char *ks, const char *key)
{
    kl_start start;
    int rc = tail_start(c, o, ks, key, &start);
    if (rc != CLI_OK) return rc;
    kl_error err = {0};
    kl_page p;
    char *cont = NULL;
    int epipe = 0;
    if (kl_read_first_page(c->reader, ks, key, KL_FORWARDS, &start, page_size(c, o, 0), &p, &err) !=
        KL_OK)
        return cli_fail(c, &err);
    rc = catch_up(c, o, ks, key, &p, &cont, &epipe);
    while (rc == CLI_OK && o->follow && !epipe && cont && !cli_stdout_gone() &&
           cli_sleep_ms((long)o->interval_ms)) {
        if (kl_read_next_page(c->reader, ks, key, cont, page_size(c, o, 0), &p, &err) != KL_OK)
            rc = cli_fail(c, &err);
        else
            rc = catch_up(c, o, ks, key, &p, &cont, &epipe);
    }
    free(cont);
    return rc;
}

int cmd_tail(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"lines", required_argument, NULL, 'n'},
        {"follow", no_argument, NULL, 'f'},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        OUTPUT_OPTS,
        {0},
    };
    read_opts o = {.tail_n = 10, .interval_ms = 500};
    char **pos;
    int rc = parse_key_command(c, argc, argv, "n:f", opts, &o, &pos);
    if (rc != CLI_OK) return rc;
    cli_catch_signals();
    return run_tail(c, &o, pos[0], pos[1]);
}
