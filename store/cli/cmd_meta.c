/* cmd_meta.c -- the commands that describe a store: meta (a keyspace's
 * creation time, or a key's next offset, next nonce, record count and the
 * timestamps of its first and newest objects -- O(log n) requests however
 * long the key; with --count also what only a listing of every data
 * object tells: object count, bytes, timestamp range) and ls (keyspaces,
 * or the keys of a keyspace).  Output is "name: value" text or, with
 * --format json, one JSON object (meta) or array (ls). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_FORMAT = CLI_OPT_CMD, OPT_COUNT };

typedef struct meta_opts {
    cli_format fmt;
    int count; /* --count: list every data object */
} meta_opts;

static int meta_opt(cli *c, int id, const char *arg, void *ctx)
{
    meta_opts *o = ctx;
    if (id == OPT_COUNT) {
        o->count = 1;
        return CLI_OK;
    }
    return cli_format_arg(c, arg, &o->fmt);
}

static const struct option meta_opts_table[] = {
    {"format", required_argument, NULL, OPT_FORMAT},
    {"count", no_argument, NULL, OPT_COUNT},
    {0},
};

static int format_opt(cli *c, int id, const char *arg, void *ctx)
{
    return cli_format_arg(c, arg, ctx);
}

static const struct option format_opts[] = {
    {"format", required_argument, NULL, OPT_FORMAT},
    {0},
};

/* ---- meta ----------------------------------------------------------------------- */

static int keyspace_meta(cli *c, cli_format fmt, const char *ks)
{
    kl_error err = {0};
    kl_keyspace_meta m;
    if (kl_read_keyspace_metadata(c->reader, ks, &m, &err) != KL_OK) return cli_fail(c, &err);
    char iso[40];
    cli_iso_time(m.created, iso);
    if (fmt == CLI_FMT_JSON) {
        fputs("{\"keyspace\":", stdout);
        cli_json_str(stdout, ks, strlen(ks));
        printf(",\"created\":%" PRId64 ",\"created_iso\":\"%s\"}\n", m.created, iso);
    } else {
        printf("keyspace: %s\ncreated: %" PRId64 " (%s)\n", ks, m.created, iso);
    }
    return CLI_OK;
}

/* What the key's first object adds (one LIST), and with --count what a
 * listing of all of them adds. */
typedef struct objects_summary {
    int64_t first_ts; /* smallest timestamp of the first object */
    int counted;
    size_t objects;
    uint64_t bytes;
    int64_t min_ts, max_ts;
} objects_summary;

static int summarize_objects(cli *c, const char *ks, const char *key, int count, objects_summary *s)
{
    kl_error err = {0};
    kl_object_meta *v = NULL;
    size_t n = 0;
    if (kl_list_objects(c->os, &c->cfg.store, ks, key, 0, count ? 0 : 1, &v, &n, &err) != KL_OK)
        return cli_fail(c, &err);
    *s = (objects_summary){.counted = count,
                           .objects = n,
                           .min_ts = INT64_MAX,
                           .max_ts = INT64_MIN,
                           .first_ts = n ? v[0].min_ts : 0};
    for (size_t i = 0; count && i < n; i++) {
        s->bytes += v[i].size;
        if (v[i].min_ts < s->min_ts) s->min_ts = v[i].min_ts;
        if (v[i].max_ts > s->max_ts) s->max_ts = v[i].max_ts;
    }
    free(v);
    return CLI_OK;
}

static void print_key_json(const char *ks, const char *key, const kl_key_meta *m,
                           const objects_summary *s)
{
    char nb[40];
    fputs("{\"keyspace\":", stdout);
    cli_json_str(stdout, ks, strlen(ks));
    fputs(",\"key\":", stdout);
    cli_json_str(stdout, key, strlen(key));
    printf(",\"next_offset\":%" PRIu64 ",\"next_nonce\":\"%s\",\"records\":%" PRIu64
           ",\"first_timestamp\":%" PRId64 ",\"last_timestamp\":%" PRId64,
           m->next_offset, kl_u128_str(m->next_nonce, nb), m->next_offset - 1, s->first_ts,
           m->last_timestamp);
    if (s->counted)
        printf(",\"objects\":%zu,\"bytes\":%" PRIu64 ",\"min_timestamp\":%" PRId64
               ",\"max_timestamp\":%" PRId64,
               s->objects, s->bytes, s->min_ts, s->max_ts);
    fputs("}\n", stdout);
}

static void print_key_text(const char *ks, const char *key, const kl_key_meta *m,
                           const objects_summary *s)
{
    char nb[40], a[40], b[40];
    printf("keyspace: %s\nkey: %s\nnext_offset: %" PRIu64 "\nnext_nonce: %s\n"
           "records: %" PRIu64 "\nfirst_timestamp: %" PRId64 " (%s)\n"
           "last_timestamp: %" PRId64 " (%s)\n",
           ks, key, m->next_offset, kl_u128_str(m->next_nonce, nb), m->next_offset - 1, s->first_ts,
           cli_iso_time(s->first_ts, a), m->last_timestamp, cli_iso_time(m->last_timestamp, b));
    if (s->counted)
        printf("objects: %zu\nbytes: %" PRIu64 "\nmin_timestamp: %" PRId64 " (%s)\n"
               "max_timestamp: %" PRId64 " (%s)\n",
               s->objects, s->bytes, s->min_ts, cli_iso_time(s->min_ts, a), s->max_ts,
               cli_iso_time(s->max_ts, b));
}

static int key_meta(cli *c, const meta_opts *o, const char *ks, const char *key)
{
    kl_error err = {0};
    int exists = 0;
    kl_key_meta m;
    objects_summary s = {0};
    if (kl_read_key_metadata(c->reader, ks, key, &exists, &m, &err) != KL_OK)
        return cli_fail(c, &err);
    if (!exists) return cli_key_missing(c, ks, key);
    int rc = summarize_objects(c, ks, key, o->count, &s);
    if (rc != CLI_OK) return rc;
    if (o->fmt == CLI_FMT_JSON)
        print_key_json(ks, key, &m, &s);
    else
        print_key_text(ks, key, &m, &s);
    return CLI_OK;
}

int cmd_meta(cli *c, int argc, char **argv)
{
    meta_opts o = {.fmt = CLI_FMT_TEXT};
    char **pos;
    int npos, epipe = 0;
    int rc = cli_parse(c, argc, argv, "", meta_opts_table, meta_opt, &o, 1, 2, &pos, &npos);
    if (rc == CLI_OK) rc = cli_name(c, "keyspace", pos[0]);
    if (rc == CLI_OK && npos == 2) rc = cli_name(c, "key", pos[1]);
    if (rc == CLI_OK) rc = cli_open_reader(c);
    if (rc == CLI_OK)
        rc = npos == 2 ? key_meta(c, &o, pos[0], pos[1]) : keyspace_meta(c, o.fmt, pos[0]);
    return rc == CLI_OK ? cli_flush_stdout(c, &epipe) : rc;
}

/* ---- ls ---------------------------------------------------------------------------- */

static void print_names(char **v, size_t n, cli_format fmt)
{
    if (fmt == CLI_FMT_JSON) fputc('[', stdout);
    for (size_t i = 0; i < n; i++) {
        if (fmt == CLI_FMT_JSON) {
            if (i) fputc(',', stdout);
            cli_json_str(stdout, v[i], strlen(v[i]));
        } else {
            printf("%s\n", v[i]);
        }
    }
    if (fmt == CLI_FMT_JSON) fputs("]\n", stdout);
}

/* An empty key list is fine for a created keyspace, "not found" otherwise. */
static int check_keyspace(cli *c, const char *ks)
{
    kl_error err = {0};
    kl_keyspace_meta m;
    if (kl_read_keyspace_metadata(c->reader, ks, &m, &err) != KL_OK) return cli_fail(c, &err);
    return CLI_OK;
}

int cmd_ls(cli *c, int argc, char **argv)
{
    cli_format fmt = CLI_FMT_TEXT;
    char **pos, **names = NULL;
    size_t n = 0;
    int npos, epipe = 0;
    kl_error err = {0};
    int rc = cli_parse(c, argc, argv, "", format_opts, format_opt, &fmt, 0, 1, &pos, &npos);
    if (rc == CLI_OK && npos == 1) rc = cli_name(c, "keyspace", pos[0]);
    if (rc == CLI_OK) rc = cli_open_reader(c);
    if (rc != CLI_OK) return rc;
    kl_status st = npos ? kl_list_keys(c->os, &c->cfg.store, pos[0], &names, &n, &err)
                        : kl_list_keyspaces(c->os, &c->cfg.store, &names, &n, &err);
    if (st != KL_OK) return cli_fail(c, &err);
    if (npos && n == 0) rc = check_keyspace(c, pos[0]);
    if (rc == CLI_OK) print_names(names, n, fmt);
    kl_strv_free(names, n);
    return rc == CLI_OK ? cli_flush_stdout(c, &epipe) : rc;
}
