/* bridge_config.c -- loads and validates the bridge's INI file (see
 * bridge_config.h).
 *
 * The store sections are read by libklstore (kl_config_load_file), so the
 * bridge and the klstore CLI agree on them; [kafka] and [parser] are read
 * here with libinih, stripping one pair of surrounding quotes exactly as
 * libklstore does, so `topic="inbound"` and `topic=inbound` mean the same.
 * librdkafka validates its own keys as they are set, so an unknown or
 * malformed Kafka setting is reported at start-up with the key's name. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "bridge_config.h"
#include "log.h"
#include "metrics.h"

#define DEFAULT_COMMIT_INTERVAL_S 60
#define DEFAULT_STATS_INTERVAL_S  10
#define DEFAULT_HEALTH_INTERVALS  3
#define MAX_HEALTH_INTERVALS      1000
#define MAX_INTERVAL_S            86400

/* librdkafka settings the bridge changes from librdkafka's defaults;
 * set before the file is read, so a [kafka] key overrides them.
 *
 * queued.min.messages: librdkafka stops fetching a partition while its
 * queue holds this many messages.  In a consumer group every partition's
 * queue feeds the one consumer queue, and that shared queue is what is
 * counted, so the default (100000) caps ALL assigned partitions together:
 * with 100-byte records that is 10 MB, drained faster than the next fetch
 * arrives, and each time librdkafka backs off (fetch.error.backoff.ms)
 * before fetching again -- the bridge then sits idle.  The bound that
 * remains is queued.max.messages.kbytes (librdkafka's default 64 MiB),
 * which is what the prefetch memory should be limited by anyway. */
static const char *const KAFKA_DEFAULTS[][2] = {
    {"queued.min.messages", "1000000"},
};

/* State of one pass of libinih over the file. */
typedef struct loader {
    br_config *c;
    FILE *f;
    int line;
    int failed;
    char *err;
    size_t errlen;
    char *keyspace_spec, *key_spec, *nonce_spec, *timestamp_spec;
    int auto_commit_set;
} loader;

static int loader_fail(loader *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int loader_fail(loader *L, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (L->failed) return 0;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(L->err, L->errlen, "%s:%d: %s", L->c->path, L->line, msg);
    L->failed = 1;
    return 0; /* tells libinih to stop */
}

static int parse_seconds(const char *v, unsigned min, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (!*v || *end || errno || x < min || x > MAX_INTERVAL_S || v[0] == '-') return -1;
    *out = (unsigned)x;
    return 0;
}

/* topic=a or topic=a,b,c (blanks around names ignored). */
static int set_topics(loader *L, const char *v)
{
    br_config *c = L->c;
    char *copy = strdup(v), *save = NULL;
    if (!copy) return loader_fail(L, "out of memory");
    for (size_t i = 0; i < c->n_topics; i++) free(c->topics[i]);
    c->n_topics = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t') t++;
        size_t n = strlen(t);
        while (n && (t[n - 1] == ' ' || t[n - 1] == '\t')) t[--n] = '\0';
        if (!n) continue;
        char **nt = realloc(c->topics, (c->n_topics + 1) * sizeof *nt);
        if (!nt || !(nt[c->n_topics] = strdup(t))) {
            if (nt) c->topics = nt;
            free(copy);
            return loader_fail(L, "out of memory");
        }
        c->topics = nt;
        c->n_topics++;
    }
    free(copy);
    if (!c->n_topics) return loader_fail(L, "[kafka] topic: no topic name given");
    return 1;
}

static int replace_str(loader *L, char **slot, const char *v)
{
    char *d = strdup(v);
    if (!d) return loader_fail(L, "out of memory");
    free(*slot);
    *slot = d;
    return 1;
}

/* The keys librdkafka must not be given by the user: the bridge owns
 * offset handling (spec: "Consumer Group Offsets"). */
static int forced_key(const char *name)
{
    return !strcmp(name, "enable.auto.commit") || !strcmp(name, "enable.auto.offset.store");
}

static int kafka_key(loader *L, const char *name, const char *v)
{
    br_config *c = L->c;
    char errstr[512];
    if (!strcmp(name, "topic")) return set_topics(L, v);
    if (!strcmp(name, "offset_commit_interval_seconds")) {
        if (parse_seconds(v, 1, &c->commit_interval_s))
            return loader_fail(L,
                               "[kafka] offset_commit_interval_seconds: '%s' "
                               "is not a number of seconds (1..%d)",
                               v, MAX_INTERVAL_S);
        return 1;
    }
    if (!strcmp(name, "stats_interval_seconds")) {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (!*v || *end || errno || !(x >= 0 && x <= MAX_INTERVAL_S))
            return loader_fail(L,
                               "[kafka] stats_interval_seconds: '%s' is not a "
                               "number of seconds (0..%d, fractions allowed, 0 = "
                               "off)",
                               v, MAX_INTERVAL_S);
        c->stats_interval_ms = (unsigned)(x * 1000 + 0.5);
        return 1;
    }
    if (forced_key(name)) {
        if (strcmp(v, !strcmp(name, "enable.auto.commit") ? "false" : "true"))
            br_log(BR_WARN,
                   "%s: [kafka] %s=%s is ignored: the bridge always "
                   "sets enable.auto.commit=false and enable.auto.offset.store="
                   "true and commits offsets itself after each flush",
                   c->path, name, v);
        return 1;
    }
    switch (rd_kafka_conf_set(c->kconf, name, v, errstr, sizeof errstr)) {
    case RD_KAFKA_CONF_OK: break;
    case RD_KAFKA_CONF_UNKNOWN:
        return loader_fail(L,
                           "[kafka] %s: unknown setting (neither a bridge "
                           "setting -- topic, offset_commit_interval_seconds, "
                           "stats_interval_seconds -- nor a librdkafka "
                           "configuration property)",
                           name);
    default: return loader_fail(L, "[kafka] %s: %s", name, errstr);
    }
    if (!strcmp(name, "group.id")) return replace_str(L, &c->group_id, v);
    if (!strcmp(name, "bootstrap.servers") || !strcmp(name, "metadata.broker.list"))
        return replace_str(L, &c->bootstrap, v);
    return 1;
}

static int parser_key(loader *L, const char *name, const char *v)
{
    char **slot = !strcmp(name, "keyspace_parser")    ? &L->keyspace_spec
                  : !strcmp(name, "key_parser")       ? &L->key_spec
                  : !strcmp(name, "nonce_parser")     ? &L->nonce_spec
                  : !strcmp(name, "timestamp_parser") ? &L->timestamp_spec
                                                      : NULL;
    if (slot) return replace_str(L, slot, v);
    if (!strcmp(name, "on_error")) {
        if (!strcasecmp(v, "stop"))
            L->c->on_error = BR_ON_ERROR_STOP;
        else if (!strcasecmp(v, "skip"))
            L->c->on_error = BR_ON_ERROR_SKIP;
        else
            return loader_fail(L,
                               "[parser] on_error: '%s' is neither 'stop' "
                               "nor 'skip'",
                               v);
        return 1;
    }
    return loader_fail(L,
                       "[parser] %s: unknown setting (known: keyspace_parser, "
                       "key_parser, nonce_parser, timestamp_parser, on_error)",
                       name);
}

static int metrics_key(loader *L, const char *name, const char *v)
{
    if (!strcmp(name, "listen")) {
        char why[512];
        if (km_listen_check(v, why, sizeof why)) return loader_fail(L, "[metrics] listen: %s", why);
        return replace_str(L, &L->c->metrics_listen, v);
    }
    if (!strcmp(name, "health_commit_intervals")) {
        char *end;
        errno = 0;
        unsigned long n = strtoul(v, &end, 10);
        if (!*v || *end || errno || n < 1 || n > MAX_HEALTH_INTERVALS || *v == '-')
            return loader_fail(L,
                               "[metrics] health_commit_intervals: '%s' is not a "
                               "whole number from 1 to %d",
                               v, MAX_HEALTH_INTERVALS);
        L->c->health_intervals = (unsigned)n;
        return 1;
    }
    return loader_fail(L,
                       "[metrics] %s: unknown setting (known: listen, "
                       "health_commit_intervals)",
                       name);
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    loader *L = user;
    if (L->failed) return 0;
    if (!strcasecmp(section, "s3") || !strcasecmp(section, "local") ||
        !strcasecmp(section, "batcher"))
        return 1; /* libklstore's, already read */
    char *copy = strdup(value);
    if (!copy) return loader_fail(L, "out of memory");
    const char *v = kl_config_unquote(copy);
    int rc;
    if (!strcasecmp(section, "kafka"))
        rc = kafka_key(L, name, v);
    else if (!strcasecmp(section, "parser"))
        rc = parser_key(L, name, v);
    else if (!strcasecmp(section, "metrics"))
        rc = metrics_key(L, name, v);
    else
        rc = loader_fail(L,
                         "unknown section [%s] (known: s3, local, batcher, "
                         "kafka, parser, metrics)",
                         section);
    explicit_bzero(copy, strlen(copy)); /* may be a SASL password */
    free(copy);
    return rc;
}

/* Feeds libinih line by line so that messages can name the line (the
 * Debian build of inih does not pass line numbers to the handler). */
static char *reader(char *str, int num, void *stream)
{
    loader *L = stream;
    if (L->failed || !fgets(str, num, L->f)) return NULL;
    L->line++;
    return str;
}

static int parse_parser(loader *L, const char *key, const char *spec, int numeric, br_parser *out)
{
    char msg[768];
    if (br_parser_parse(spec, numeric, out, msg, sizeof msg) == 0) return 0;
    snprintf(L->err, L->errlen, "%s: [parser] %s: %s", L->c->path, key, msg);
    return -1;
}

/* Settings whose absence is an error, checked in the order a reader of
 * the spec's example would fill them in. */
static int check_required(loader *L)
{
    br_config *c = L->c;
    const char *missing = NULL;
    if (!c->store.has_s3 && !c->store.local_root)
        missing = "no store: give [s3] bucket_name=... (or, to try the bridge "
                  "out, [local] root=DIR)";
    else if (!c->n_topics)
        missing = "[kafka] topic is required";
    else if (!c->group_id || !*c->group_id)
        missing = "[kafka] group.id is required";
    else if (!c->bootstrap || !*c->bootstrap)
        missing = "[kafka] bootstrap.servers is required";
    else if (!L->keyspace_spec)
        missing = "[parser] keyspace_parser is required";
    else if (!L->key_spec)
        missing = "[parser] key_parser is required";
    if (missing) {
        snprintf(L->err, L->errlen, "%s: %s", c->path, missing);
        return -1;
    }
    return 0;
}

static int apply_forced(loader *L)
{
    br_config *c = L->c;
    char errstr[512], strategy[256];
    size_t n = sizeof strategy;
    if (rd_kafka_conf_set(c->kconf, "enable.auto.commit", "false", errstr, sizeof errstr) ||
        rd_kafka_conf_set(c->kconf, "enable.auto.offset.store", "true", errstr, sizeof errstr)) {
        snprintf(L->err, L->errlen, "%s: librdkafka: %s", c->path, errstr);
        return -1;
    }
    /* Writers are re-created at every assignment (see rebalance.c), which
     * needs the eager protocol: all partitions revoked, then assigned. */
    if (rd_kafka_conf_get(c->kconf, "partition.assignment.strategy", strategy, &n) ==
            RD_KAFKA_CONF_OK &&
        strstr(strategy, "cooperative")) {
        snprintf(L->err, L->errlen,
                 "%s: [kafka] partition.assignment.strategy=%s: "
                 "the cooperative protocol is not supported; use range or "
                 "roundrobin",
                 c->path, strategy);
        return -1;
    }
    return 0;
}

static int finish(loader *L)
{
    br_config *c = L->c;
    if (check_required(L) ||
        parse_parser(L, "keyspace_parser", L->keyspace_spec, 0, &c->keyspace) ||
        parse_parser(L, "key_parser", L->key_spec, 0, &c->key) ||
        parse_parser(L, "nonce_parser", L->nonce_spec ? L->nonce_spec : "None", 1, &c->nonce) ||
        parse_parser(L, "timestamp_parser", L->timestamp_spec ? L->timestamp_spec : "None", 1,
                     &c->timestamp))
        return -1;
    return apply_forced(L);
}

static void loader_free(loader *L)
{
    free(L->keyspace_spec);
    free(L->key_spec);
    free(L->nonce_spec);
    free(L->timestamp_spec);
}

int br_config_load(const char *path, br_config *c, char *err, size_t errlen)
{
    kl_error e;
    memset(c, 0, sizeof *c);
    kl_config_init(&c->store);
    c->commit_interval_s = DEFAULT_COMMIT_INTERVAL_S;
    c->stats_interval_ms = DEFAULT_STATS_INTERVAL_S * 1000;
    c->health_intervals = DEFAULT_HEALTH_INTERVALS;
    if (!(c->path = strdup(path)) || !(c->kconf = rd_kafka_conf_new())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < sizeof KAFKA_DEFAULTS / sizeof *KAFKA_DEFAULTS; i++)
        if (rd_kafka_conf_set(c->kconf, KAFKA_DEFAULTS[i][0], KAFKA_DEFAULTS[i][1], err, errlen) !=
            RD_KAFKA_CONF_OK)
            return -1;
    if (kl_config_load_file(&c->store, path, &e) != KL_OK) {
        snprintf(err, errlen, "%s", e.msg);
        return -1;
    }
    loader L = {.c = c, .err = err, .errlen = errlen};
    if (!(L.f = fopen(path, "r"))) {
        snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = ini_parse_stream(reader, &L, handler, &L);
    fclose(L.f);
    if (!L.failed && rc > 0)
        snprintf(err, errlen,
                 "%s:%d: syntax error (expected [section], "
                 "name=value or a comment)",
                 path, rc);
    else if (!L.failed && rc < 0)
        snprintf(err, errlen, "out of memory reading %s", path);
    int ok = !L.failed && rc == 0 && finish(&L) == 0;
    loader_free(&L);
    return ok ? 0 : -1;
}

rd_kafka_conf_t *br_config_take_kafka_conf(br_config *c)
{
    rd_kafka_conf_t *k = c->kconf;
    c->kconf = NULL;
    return k;
}

void br_config_free(br_config *c)
{
    if (!c) return;
    kl_config_free(&c->store);
    for (size_t i = 0; i < c->n_topics; i++) free(c->topics[i]);
    free(c->topics);
    free(c->group_id);
    free(c->bootstrap);
    free(c->metrics_listen);
    free(c->path);
    if (c->kconf) rd_kafka_conf_destroy(c->kconf);
    br_parser_free(&c->keyspace);
    br_parser_free(&c->key);
    br_parser_free(&c->nonce);
    br_parser_free(&c->timestamp);
    memset(c, 0, sizeof *c);
}

void br_config_describe(const br_config *c, char *buf, size_t cap)
{
    char ks[256], key[256], nonce[256], ts[256], topics[512] = "";
    size_t used = 0;
    br_parser_describe(&c->keyspace, ks, sizeof ks);
    br_parser_describe(&c->key, key, sizeof key);
    br_parser_describe(&c->nonce, nonce, sizeof nonce);
    br_parser_describe(&c->timestamp, ts, sizeof ts);
    for (size_t i = 0; i < c->n_topics && used < sizeof topics; i++)
        used += (size_t)snprintf(topics + used, sizeof topics - used, "%s%s", i ? "," : "",
                                 c->topics[i]);
    snprintf(buf, cap,
             "store=%s%s topic=%s group.id=%s bootstrap.servers=%s "
             "keyspace=%s key=%s nonce=%s timestamp=%s on_error=%s "
             "commit every %us",
             c->store.local_root ? "dir:" : "s3://",
             c->store.local_root       ? c->store.local_root
             : c->store.s3.bucket_name ? c->store.s3.bucket_name
                                       : "?",
             topics, c->group_id, c->bootstrap, ks, key, nonce, ts,
             c->on_error == BR_ON_ERROR_SKIP ? "skip" : "stop", c->commit_interval_s);
}
