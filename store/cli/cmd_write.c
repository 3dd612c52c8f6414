/* cmd_write.c -- the commands that write: create-keyspace, and append,
 * which turns stdin lines into records.
 *
 * append batches lines into few kl_append calls (each call is one data
 * object, written atomically by the store writer) and flushes a batch when
 * it reaches --batch-records or --batch-bytes, when stdin has been idle for
 * --batch-ms, and at the end.  Its promise on failure (a bad line, a record
 * too large, a store error, SIGINT/SIGTERM): every line before the failing
 * one is written, nothing from it on, and the message says how many
 * records were appended and at which offsets -- as the store writer reports
 * each object it published (kl_store_writer_observe), exact even while
 * other writers append to the key; records submitted but not published
 * were nonce duplicates. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* ---- create-keyspace ------------------------------------------------------ */

enum { OPT_IF_NOT_EXISTS = CLI_OPT_CMD };

static int create_opt(cli *c, int id, const char *arg, void *ctx)
{
    *(int *)ctx = 1;
    return CLI_OK;
}

int cmd_create_keyspace(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"if-not-exists", no_argument, NULL, OPT_IF_NOT_EXISTS},
        {0},
    };
    int if_not_exists = 0, npos;
    char **pos;
    int rc = cli_parse(c, argc, argv, "", opts, create_opt, &if_not_exists, 1, 1, &pos, &npos);
    if (rc == CLI_OK) rc = cli_name(c, "keyspace", pos[0]);
    if (rc == CLI_OK) rc = cli_open_writer(c);
    if (rc != CLI_OK) return rc;
    kl_error err = {0};
    int64_t created;
    kl_status st = kl_create_keyspace(c->writer, pos[0], &created, &err);
    if (st == KL_EEXIST && if_not_exists) return CLI_OK;
    if (st != KL_OK) return cli_fail(c, &err);
    char iso[40];
    cli_note(c, "created keyspace '%s' at %" PRId64 " (%s)", pos[0], created,
             cli_iso_time(created, iso));
    return CLI_OK;
}

/* ---- append: options --------------------------------------------------------- */

enum {
    OPT_BATCH_RECORDS = CLI_OPT_CMD,
    OPT_BATCH_BYTES,
    OPT_BATCH_MS,
    OPT_NONCE,
    OPT_NONCE_PREFIX,
    OPT_TIMESTAMP,
};

typedef struct append_opts {
    uint64_t batch_records; /* flush at this many records */
    uint64_t batch_bytes;   /* ... or this many payload bytes */
    uint64_t batch_ms;      /* ... or when stdin was idle this long (0 = never) */
    int has_nonce;          /* --nonce N: line i gets N + i - 1 */
    kl_u128 nonce;
    int nonce_prefix; /* --nonce-prefix: lines are NONCE<TAB>PAYLOAD */
    int has_timestamp;
    int64_t timestamp;
    int quiet;
} append_opts;

static int append_opt(cli *c, int id, const char *arg, void *ctx)
{
    append_opts *o = ctx;
    switch (id) {
    case OPT_BATCH_RECORDS: return cli_u64(c, "--batch-records", arg, 1, &o->batch_records);
    case OPT_BATCH_BYTES: return cli_u64(c, "--batch-bytes", arg, 1, &o->batch_bytes);
    case OPT_BATCH_MS: return cli_u64(c, "--batch-ms", arg, 0, &o->batch_ms);
    case OPT_NONCE: o->has_nonce = 1; return cli_u128(c, "--nonce", arg, &o->nonce);
    case OPT_NONCE_PREFIX: o->nonce_prefix = 1; return CLI_OK;
    case OPT_TIMESTAMP: o->has_timestamp = 1; return cli_time(c, "--timestamp", arg, &o->timestamp);
    case 'q': o->quiet = 1; return CLI_OK;
    }
    return CLI_EUSAGE;
}

/* ---- append: the pending batch ------------------------------------------------ */

typedef struct pending {
    size_t off, len; /* payload in the arena */
    int has_nonce;
    kl_u128 nonce;
} pending;

typedef struct batch {
    char *arena;
    size_t alen, acap;
    pending *v;
    size_t n, cap;
    kl_insertion *ins; /* built at flush time (the arena may move) */
} batch;

static void batch_free(batch *b)
{
    free(b->arena);
    free(b->v);
    free(b->ins);
}

static int batch_add(batch *b, const char *data, size_t len, int has_nonce, kl_u128 nonce)
{
    if (b->alen + len > b->acap) {
        size_t cap = b->acap ? b->acap : 4096;
        while (cap < b->alen + len) cap *= 2;
        char *a = realloc(b->arena, cap);
        if (!a) return -1;
        b->arena = a;
        b->acap = cap;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        pending *v = realloc(b->v, cap * sizeof *v);
        kl_insertion *ins = realloc(b->ins, cap * sizeof *ins);
        if (v) b->v = v;
        if (ins) b->ins = ins;
        if (!v || !ins) return -1;
        b->cap = cap;
    }
    if (len) memcpy(b->arena + b->alen, data, len);
    b->v[b->n++] = (pending){b->alen, len, has_nonce, nonce};
    b->alen += len;
    return 0;
}

/* ---- append: the run ----------------------------------------------------------- */

typedef struct append_run {
    cli *c;
    const append_opts *o;
    const char *ks, *key;
    batch b;
    uint64_t lines;       /* lines read */
    uint64_t submitted;   /* records in successful kl_append calls */
    uint64_t appended;    /* records in the objects published */
    uint64_t first, last; /* their offsets */
    int interleaved;      /* other writers' records lie between them */
} append_run;

static void on_published(const char *ks, const char *key, kl_publish_event ev,
                         const kl_object_meta *m, void *ctx)
{
    append_run *r = ctx;
    if (ev != KL_OBJECT_PUBLISHED) return;
    if (r->appended && m->first_offset != r->last + 1) r->interleaved = 1;
    if (!r->appended) r->first = m->first_offset;
    r->last = m->last_offset;
    r->appended += m->last_offset - m->first_offset + 1;
}

static int flush_batch(append_run *r, kl_error *err)
{
    batch *b = &r->b;
    if (b->n == 0) return CLI_OK;
    for (size_t i = 0; i < b->n; i++)
        b->ins[i] = (kl_insertion){
            .data = b->arena + b->v[i].off,
            .len = b->v[i].len,
            .has_nonce = b->v[i].has_nonce,
            .nonce = b->v[i].nonce,
            .has_timestamp = r->o->has_timestamp,
            .timestamp = r->o->timestamp,
        };
    kl_status st = kl_append(r->c->writer, r->ks, r->key, b->ins, b->n, err);
    if (st != KL_OK) return cli_exit_code(st);
    r->submitted += b->n;
    b->n = 0;
    b->alen = 0;
    return CLI_OK;
}

/* "N records appended (offsets A-B)", as the writer published them. */
static void outcome(append_run *r, char *buf, size_t cap)
{
    uint64_t n = r->appended;
    if (n == 0)
        snprintf(buf, cap, "no records appended");
    else if (n == 1)
        snprintf(buf, cap, "1 record appended (offset %" PRIu64 ")", r->first);
    else
        snprintf(buf, cap, "%" PRIu64 " records appended (offsets %" PRIu64 "-%" PRIu64 "%s)", n,
                 r->first, r->last, r->interleaved ? ", with other writers' records between" : "");
    if (r->submitted > n)
        snprintf(buf + strlen(buf), cap - strlen(buf), ", %" PRIu64 " dropped as duplicates",
                 r->submitted - n);
}

/* Writes what was read before the failure, then reports both. */
static int fail_after(append_run *r, int code, const char *what)
{
    kl_error err = {0};
    char done[KL_ERRMSG_MAX + 128], msg[KL_ERRMSG_MAX + 64];
    snprintf(msg, sizeof msg, "%s", what);
    if (flush_batch(r, &err) != CLI_OK) {
        snprintf(msg, sizeof msg, "%s; then writing the %zu records read before it failed: %s",
                 what, r->b.n, err.msg);
    }
    outcome(r, done, sizeof done);
    return cli_err(r->c, code, "%s/%s: %s; %s", r->ks, r->key, msg, done);
}

/* Splits a --nonce-prefix line "NONCE<TAB>PAYLOAD" (empty NONCE = none). */
static int split_nonce(append_run *r, const char **line, size_t *len, int *has, kl_u128 *nonce,
                       char *why, size_t cap)
{
    const char *tab = memchr(*line, '\t', *len);
    size_t n = tab ? (size_t)(tab - *line) : 0;
    char digits[48];
    kl_error err = {0};
    if (!tab) {
        snprintf(why, cap, "no TAB after the nonce (--nonce-prefix expects NONCE<TAB>PAYLOAD)");
        return -1;
    }
    *has = n > 0;
    if (n >= sizeof digits || (n > 0 && (memcpy(digits, *line, n), digits[n] = 0,
                                         kl_parse_u128(digits, nonce, &err) != KL_OK))) {
        snprintf(why, cap, "bad nonce '%.*s': expected a decimal number below 2^128-1",
                 (int)(n > 40 ? 40 : n), *line);
        return -1;
    }
    if (*has && *nonce == KL_NONCE_NONE) {
        snprintf(why, cap, "nonce 2^128-1 is reserved for \"no nonce\"");
        return -1;
    }
    *len -= n + 1;
    *line = tab + 1;
    return 0;
}

/* Turns one input line into a pending record; on bad data fills why. */
static int add_line(append_run *r, const char *line, size_t len, char *why, size_t cap)
{
    int has = 0;
    kl_u128 nonce = 0;
    if (r->o->nonce_prefix && split_nonce(r, &line, &len, &has, &nonce, why, cap) != 0)
        return CLI_EBADDATA;
    if (r->o->has_nonce) {
        has = 1;
        nonce = r->o->nonce + (r->lines - 1);
        if (nonce < r->o->nonce || nonce == KL_NONCE_NONE) {
            snprintf(why, cap, "the --nonce sequence reached 2^128-1");
            return CLI_EBADDATA;
        }
    }
    if (len > KL_RECORD_MAX) {
        snprintf(why, cap, "record too large: %zu bytes, the maximum is %u (64 MiB)", len,
                 KL_RECORD_MAX);
        return CLI_EBADDATA;
    }
    if (batch_add(&r->b, line, len, has, nonce) != 0) {
        snprintf(why, cap, "out of memory");
        return CLI_ERUNTIME;
    }
    return CLI_OK;
}

static int batch_full(const append_run *r)
{
    return r->b.n >= r->o->batch_records || r->b.alen >= r->o->batch_bytes;
}

/* The read loop: returns CLI_OK at the end of stdin, or reports a failure. */
static int pump(append_run *r, cli_lines *in)
{
    char why[KL_ERRMSG_MAX + 64];
    kl_error err = {0};
    for (;;) {
        long timeout = r->b.n && r->o->batch_ms ? (long)r->o->batch_ms : -1;
        const char *line;
        size_t len;
        int got = cli_lines_next(in, timeout, &line, &len);
        if (got == CLI_LINE_TIMEOUT) {
            if (flush_batch(r, &err) != CLI_OK) break;
            continue;
        }
        if (got == CLI_LINE_EOF) {
            if (flush_batch(r, &err) == CLI_OK) return CLI_OK;
            break;
        }
        if (got == CLI_LINE_STOPPED) {
            snprintf(why, sizeof why, "interrupted by signal %d after line %" PRIu64,
                     (int)cli_stop_signal, r->lines);
            return fail_after(r, 128 + cli_stop_signal, why);
        }
        if (got == CLI_LINE_ERROR) {
            snprintf(why, sizeof why, "reading stdin after line %" PRIu64 ": %m", r->lines);
            return fail_after(r, CLI_ERUNTIME, why);
        }
        r->lines++;
        if (got == CLI_LINE_TOO_LONG) {
            snprintf(why, sizeof why,
                     "line %" PRIu64 ": record too large: more than %u bytes "
                     "(64 MiB, the maximum)",
                     r->lines, KL_RECORD_MAX);
            return fail_after(r, CLI_EBADDATA, why);
        }
        char bad[KL_ERRMSG_MAX];
        int rc = add_line(r, line, len, bad, sizeof bad);
        if (rc != CLI_OK) {
            snprintf(why, sizeof why, "line %" PRIu64 ": %s", r->lines, bad);
            return fail_after(r, rc, why);
        }
        if (batch_full(r) && flush_batch(r, &err) != CLI_OK) break;
    }
    /* A store error while writing a batch: nothing more is written. */
    char done[KL_ERRMSG_MAX + 128], lost[96];
    uint64_t first = r->lines - r->b.n + 1;
    if (r->b.n == 1)
        snprintf(lost, sizeof lost, "line %" PRIu64 " was not written", r->lines);
    else
        snprintf(lost, sizeof lost, "lines %" PRIu64 "-%" PRIu64 " were not written", first,
                 r->lines);
    r->b.n = 0;
    outcome(r, done, sizeof done);
    return cli_err(r->c, cli_exit_code(err.code), "%s/%s: %s; %s; %s", r->ks, r->key, err.msg, done,
                   lost);
}

static int run_append(cli *c, const append_opts *o, const char *ks, const char *key)
{
    append_run r = {.c = c, .o = o, .ks = ks, .key = key};
    kl_error err = {0};
    if (kl_store_writer_observe(c->writer, on_published, &r, &err) != KL_OK)
        return cli_fail(c, &err);
    cli_lines in;
    cli_lines_init(&in, STDIN_FILENO, o->nonce_prefix ? KL_RECORD_MAX + 41 : KL_RECORD_MAX);
    cli_catch_signals();
    int rc = pump(&r, &in);
    if (rc == CLI_OK && !o->quiet) {
        char done[KL_ERRMSG_MAX + 128];
        outcome(&r, done, sizeof done);
        cli_note(c, "%s/%s: %" PRIu64 " line%s read, %s", ks, key, r.lines, r.lines == 1 ? "" : "s",
                 done);
    }
    cli_lines_free(&in);
    batch_free(&r.b);
    return rc;
}

int cmd_append(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"batch-records", required_argument, NULL, OPT_BATCH_RECORDS},
        {"batch-bytes", required_argument, NULL, OPT_BATCH_BYTES},
        {"batch-ms", required_argument, NULL, OPT_BATCH_MS},
        {"nonce", required_argument, NULL, OPT_NONCE},
        {"nonce-prefix", no_argument, NULL, OPT_NONCE_PREFIX},
        {"timestamp", required_argument, NULL, OPT_TIMESTAMP},
        {"quiet", no_argument, NULL, 'q'},
        {0},
    };
    append_opts o = {.batch_records = 10000, .batch_bytes = 1 << 20, .batch_ms = 1000};
    char **pos;
    int npos;
    int rc = cli_parse(c, argc, argv, "q", opts, append_opt, &o, 2, 2, &pos, &npos);
    if (rc == CLI_OK && o.has_nonce && o.nonce_prefix)
        rc = cli_err(c, CLI_EUSAGE, "--nonce and --nonce-prefix cannot be combined");
    if (rc == CLI_OK) rc = cli_name(c, "keyspace", pos[0]);
    if (rc == CLI_OK) rc = cli_name(c, "key", pos[1]);
    if (rc == CLI_OK) rc = cli_open_writer(c);
    return rc == CLI_OK ? run_append(c, &o, pos[0], pos[1]) : rc;
}
