/* config.c -- defaults and the INI/flag parser of kl_config.
 *
 * One setter, kl_config_set, serves both the INI loader (libinih) and the
 * command-line flags of the front ends, so that a value means the same
 * wherever it is written.  Sections [s3], [local] and [batcher] belong to
 * us and are strict (unknown key = error, so typos do not pass silently);
 * every other section ([kafka], [parser], ...) belongs to another program
 * and is ignored.
 *
 * Defaults never allocate, so kl_*_config_init cannot fail and a config
 * that was only initialised needs no kl_config_free: string settings
 * default to NULL, which means object_prefix "" and region "us-east-1"
 * (s3_http.c applies that default).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "klstore.h"

void kl_store_config_init(kl_store_config *c)
{
    c->object_prefix = NULL; /* = "" */
    c->default_page_size = 1000;
    c->max_cached_keys = 100000;
    c->compact_records_threshold = 1000;
    c->compact_size_threshold = 1 << 20;
    c->compact_objects_threshold = 100;
    c->reader_cache_bytes = 64 << 20;
    c->reader_readahead = 8;
    c->fencing = KL_FENCING_AUTO;
    c->claim_hold_ms = 60000;
    c->skip_tail_check = 1;
}

void kl_s3_config_init(kl_s3_config *c)
{
    memset(c, 0, sizeof *c);
    c->region = NULL; /* = "us-east-1" */
    c->use_default_credentials = 1;
    c->connect_timeout_ms = 5000;
    c->request_timeout_ms = 30000;
    c->max_retries = 5;
    c->verify_tls = 1;
}

void kl_batch_config_init(kl_batch_config *c)
{
    c->writer_thread_count = 1;
    c->writer_thread_queue_capacity = 0;
    c->batch_check_interval_millis = 100;
    c->batch_flush_interval_millis = 1000;
    c->batch_flush_record_count_threshold = UINT64_MAX;
    c->batch_flush_size_threshold = 1000000;
    c->writes_in_flight = 8;
}

void kl_config_init(kl_config *c)
{
    memset(c, 0, sizeof *c);
    kl_store_config_init(&c->store);
    kl_s3_config_init(&c->s3);
    kl_batch_config_init(&c->batch);
}

static void free_str(char **s)
{
    free(*s);
    *s = NULL;
}

/* Secrets are wiped before their memory goes back to malloc. */
static void free_secret(char **s)
{
    if (*s) explicit_bzero(*s, strlen(*s));
    free_str(s);
}

void kl_config_free(kl_config *c)
{
    if (!c) return;
    free_str(&c->store.object_prefix);
    free_str(&c->s3.bucket_name);
    free_str(&c->s3.endpoint);
    free_str(&c->s3.region);
    free_str(&c->s3.access_key);
    free_secret(&c->s3.secret_key);
    free_secret(&c->s3.security_token);
    free_secret(&c->s3.session_token);
    free_str(&c->s3.profile);
    free_str(&c->s3.ca_bundle);
    free_str(&c->local_root);
    kl_config_init(c);
}

/* ------------------------------------------------------------------ */
/* value parsers                                                       */
/* ------------------------------------------------------------------ */

/* Where a value came from, for messages: "file.ini:12: " or "". */
typedef struct origin {
    const char *section, *key;
    char where[300];
} origin;

static kl_status bad(kl_error *err, const origin *o, const char *fmt, const char *value)
    __attribute__((format(printf, 3, 0)));
static kl_status bad(kl_error *err, const origin *o, const char *fmt, const char *value)
{
    char what[200];
    snprintf(what, sizeof what, fmt, value);
    return kl_seterr(err, KL_EINVAL, "%s[%s] %s: %s", o->where, o->section, o->key, what);
}

static kl_status parse_bool(const char *v, int *out, kl_error *err, const origin *o)
{
    static const char *const yes[] = {"true", "1", "yes"}, *const no[] = {"false", "0", "no"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return KL_OK;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return KL_OK;
        }
    }
    return bad(err, o, "'%.100s' is not a boolean (true/false, yes/no, 1/0)", v);
}

static kl_status parse_num(const char *v, uint64_t min, uint64_t max, uint64_t *out, kl_error *err,
                           const origin *o)
{
    if (!*v || strspn(v, "0123456789") != strlen(v))
        return bad(err, o, "'%.100s' is not a non-negative integer", v);
    errno = 0;
    unsigned long long x = strtoull(v, NULL, 10);
    if (errno == ERANGE || x > max) {
        char m[160];
        snprintf(m, sizeof m, "'%%.40s' is too large (at most %llu)", (unsigned long long)max);
        return bad(err, o, m, v);
    }
    if (x < min) {
        char m[160];
        snprintf(m, sizeof m, "'%%.40s' is too small (at least %llu)", (unsigned long long)min);
        return bad(err, o, m, v);
    }
    *out = x;
    return KL_OK;
}

static kl_status set_string(char **dst, const char *v, int empty_is_null, int secret, kl_error *err,
                            const origin *o)
{
    char *d = NULL;
    if (*v || !empty_is_null) {
        if (!(d = strdup(v))) return kl_seterr(err, KL_ENOMEM, "%sout of memory", o->where);
    }
    if (secret)
        free_secret(dst);
    else
        free_str(dst);
    *dst = d;
    return KL_OK;
}

/* ------------------------------------------------------------------ */
/* the settings                                                        */
/* ------------------------------------------------------------------ */

enum kind { K_STR, K_SECRET, K_OPTSTR, K_BOOL, K_U64, K_SIZE, K_LONG, K_INT, K_AUTO_ON_OFF };

typedef struct setting {
    const char *name;
    enum kind kind;
    size_t off;        /* offset in kl_config */
    uint64_t min, max; /* numbers */
} setting;

#define F(field) offsetof(kl_config, field)
#define U64      0, UINT64_MAX
#define SZ       0, SIZE_MAX

/* Store tuning, valid in [s3] and [local]. */
static const setting store_settings[] = {
    {"object_prefix", K_STR, F(store.object_prefix), 0, 0},
    {"default_page_size", K_U64, F(store.default_page_size), 1, UINT64_MAX},
    {"max_cached_keys", K_SIZE, F(store.max_cached_keys), 1, SIZE_MAX},
    {"compact_records_threshold", K_U64, F(store.compact_records_threshold), 1, UINT64_MAX},
    {"compact_size_threshold", K_U64, F(store.compact_size_threshold), 1, UINT64_MAX},
    {"compact_objects_threshold", K_U64, F(store.compact_objects_threshold), 1, UINT64_MAX},
    {"reader_cache_bytes", K_U64, F(store.reader_cache_bytes), U64},
    {"reader_readahead", K_U64, F(store.reader_readahead), U64},
    {"fencing", K_AUTO_ON_OFF, F(store.fencing), 0, 0},
    {"claim_hold_ms", K_U64, F(store.claim_hold_ms), 60, 24 * 3600 * 1000},
    {"skip_tail_check", K_BOOL, F(store.skip_tail_check), 0, 0},
};

static const setting s3_settings[] = {
    {"bucket_name", K_STR, F(s3.bucket_name), 0, 0},
    {"endpoint", K_OPTSTR, F(s3.endpoint), 0, 0},
    {"region", K_STR, F(s3.region), 0, 0},
    {"path_style", K_BOOL, F(s3.path_style), 0, 0},
    {"use_default_credentials", K_BOOL, F(s3.use_default_credentials), 0, 0},
    {"access_key", K_OPTSTR, F(s3.access_key), 0, 0},
    {"secret_key", K_SECRET, F(s3.secret_key), 0, 0},
    {"security_token", K_SECRET, F(s3.security_token), 0, 0},
    {"session_token", K_SECRET, F(s3.session_token), 0, 0},
    {"profile", K_OPTSTR, F(s3.profile), 0, 0},
    {"connect_timeout_ms", K_LONG, F(s3.connect_timeout_ms), 1, 24 * 3600 * 1000},
    {"request_timeout_ms", K_LONG, F(s3.request_timeout_ms), 1, 24 * 3600 * 1000},
    {"max_retries", K_INT, F(s3.max_retries), 0, 100},
    {"verify_tls", K_BOOL, F(s3.verify_tls), 0, 0},
    {"sign_payload", K_AUTO_ON_OFF, F(s3.sign_payload), 0, 0},
    {"ca_bundle", K_OPTSTR, F(s3.ca_bundle), 0, 0},
};

static const setting local_settings[] = {
    {"root", K_OPTSTR, F(local_root), 0, 0},
};

static const setting batch_settings[] = {
    {"writer_thread_count", K_SIZE, F(batch.writer_thread_count), 1, 1024},
    {"writer_thread_queue_capacity", K_SIZE, F(batch.writer_thread_queue_capacity), SZ},
    {"batch_check_interval_millis", K_U64, F(batch.batch_check_interval_millis), 1, UINT64_MAX},
    {"batch_flush_interval_millis", K_U64, F(batch.batch_flush_interval_millis), U64},
    {"batch_flush_record_count_threshold", K_U64, F(batch.batch_flush_record_count_threshold), U64},
    {"batch_flush_size_threshold", K_U64, F(batch.batch_flush_size_threshold), U64},
    {"writes_in_flight", K_SIZE, F(batch.writes_in_flight), 1, 256},
};

#define N(a) (sizeof a / sizeof *a)

static const setting *find(const setting *t, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(t[i].name, key) == 0) return &t[i];
    return NULL;
}

const char *kl_config_unquote(char *v)
{
    size_t n = strlen(v);
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        v[n - 1] = '\0';
        return v + 1;
    }
    return v;
}

static kl_status apply(kl_config *c, const setting *s, const char *v, kl_error *err,
                       const origin *o)
{
    void *p = (char *)c + s->off;
    uint64_t x = 0;
    kl_status st;
    switch (s->kind) {
    case K_STR:
        if (!*v && strcmp(s->name, "object_prefix") != 0)
            return bad(err, o, "%sthe value is empty", "");
        return set_string(p, v, 0, 0, err, o);
    case K_OPTSTR: return set_string(p, v, 1, 0, err, o);
    case K_SECRET: return set_string(p, v, 1, 1, err, o);
    case K_BOOL: return parse_bool(v, p, err, o);
    case K_AUTO_ON_OFF: /* KL_FENCING_* and KL_SIGN_PAYLOAD_* share the values */
        if (strcasecmp(v, "auto") == 0)
            *(int *)p = KL_FENCING_AUTO;
        else if (strcasecmp(v, "on") == 0)
            *(int *)p = KL_FENCING_ON;
        else if (strcasecmp(v, "off") == 0)
            *(int *)p = KL_FENCING_OFF;
        else
            return bad(err, o, "'%s' is not auto, on or off", v);
        return KL_OK;
    default: break;
    }
    if ((st = parse_num(v, s->min, s->max, &x, err, o))) return st;
    switch (s->kind) {
    case K_U64: *(uint64_t *)p = x; break;
    case K_SIZE: *(size_t *)p = (size_t)x; break;
    case K_LONG: *(long *)p = (long)x; break;
    case K_INT: *(int *)p = (int)x; break;
    default: break;
    }
    return KL_OK;
}

static kl_status set_at(kl_config *c, const char *section, const char *key, const char *value,
                        kl_error *err, const char *where)
{
    origin o = {section ? section : "", key ? key : "", ""};
    snprintf(o.where, sizeof o.where, "%s", where ? where : "");
    if (!section || !key || !value)
        return kl_seterr(err, KL_EINVAL, "%sconfig: missing section, key or value", o.where);
    char *copy = strdup(value);
    if (!copy) return kl_seterr(err, KL_ENOMEM, "%sout of memory", o.where);
    const char *v = kl_config_unquote(copy);
    const setting *s = NULL;
    int is_s3 = strcasecmp(section, "s3") == 0;
    if (is_s3 || strcasecmp(section, "local") == 0) {
        s = find(store_settings, N(store_settings), key);
        if (!s)
            s = is_s3 ? find(s3_settings, N(s3_settings), key)
                      : find(local_settings, N(local_settings), key);
    } else if (strcasecmp(section, "batcher") == 0) {
        s = find(batch_settings, N(batch_settings), key);
    } else {
        free(copy);
        return kl_seterr(err, KL_EINVAL,
                         "%sconfig: unknown section [%s] (known: s3, local, batcher)", o.where,
                         section);
    }
    kl_status st;
    if (!s)
        st = kl_seterr(err, KL_EINVAL, "%sunknown key '%s' in section [%s]", o.where, key, section);
    else
        st = apply(c, s, v, err, &o);
    if (st == KL_OK && is_s3 && strcasecmp(key, "bucket_name") == 0) c->has_s3 = 1;
    explicit_bzero(copy, strlen(copy));
    free(copy);
    return st;
}

kl_status kl_config_set(kl_config *c, const char *section, const char *key, const char *value,
                        kl_error *err)
{
    return set_at(c, section, key, value, err, NULL);
}

/* ------------------------------------------------------------------ */
/* INI files                                                           */
/* ------------------------------------------------------------------ */

typedef struct loader {
    kl_config *c;
    const char *path;
    FILE *f;
    int line;   /* line the reader handed to inih last */
    int failed; /* first error recorded in err */
    kl_status st;
    kl_error *err;
} loader;

/* Feeds inih line by line, counting lines (the Debian build of inih does
 * not pass line numbers to the handler) and refusing lines longer than
 * inih's buffer, which it would otherwise silently cut short -- a
 * truncated secret would surface much later as SignatureDoesNotMatch. */
static char *reader(char *str, int num, void *stream)
{
    loader *L = stream;
    if (L->failed || !fgets(str, num, L->f)) return NULL;
    L->line++;
    size_t n = strlen(str);
    if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(L->f)) {
        int c = fgetc(L->f);
        if (c != EOF && c != '\n') {
            L->failed = 1;
            L->st = kl_seterr(L->err, KL_EINVAL,
                              "%s:%d: line longer than %d bytes, which the INI parser cannot "
                              "read (put long secrets in the environment or ~/.aws/credentials)",
                              L->path, L->line, num - 2);
            return NULL;
        }
        if (c == EOF) return str;
        /* the newline just fell beyond the buffer: the line fits */
    }
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    loader *L = user;
    if (L->failed) return 1;
    if (strcasecmp(section, "s3") != 0 && strcasecmp(section, "local") != 0 &&
        strcasecmp(section, "batcher") != 0)
        return 1;
    char where[300];
    snprintf(where, sizeof where, "%s:%d: ", L->path, L->line);
    kl_status st = set_at(L->c, section, name, value, L->err, where);
    if (st) {
        L->failed = 1;
        L->st = st;
        return 0;
    }
    return 1;
}

kl_status kl_config_load_file(kl_config *c, const char *path, kl_error *err)
{
    if (!path) return kl_seterr(err, KL_EINVAL, "config: no file name given");
    loader L = {.c = c, .path = path, .err = err};
    if (!(L.f = fopen(path, "r")))
        return kl_seterr(err, KL_EINVAL, "cannot open config file %s: %s", path, strerror(errno));
    int rc = ini_parse_stream(reader, &L, handler, &L);
    int read_error = ferror(L.f);
    fclose(L.f);
    if (L.failed) return L.st;
    if (read_error) return kl_seterr(err, KL_EINVAL, "cannot read config file %s", path);
    if (rc > 0)
        return kl_seterr(err, KL_EINVAL,
                         "%s:%d: syntax error (expected [section], name=value or a comment)", path,
                         rc);
    if (rc < 0) return kl_seterr(err, KL_ENOMEM, "config: out of memory reading %s", path);
    return KL_OK;
}
