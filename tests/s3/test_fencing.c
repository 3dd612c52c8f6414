/* test_fencing.c -- the `fencing` setting against S3 servers that cannot
 * fence writers.
 *
 * The store writer probes a store at its first append: a second
 * create-only PUT (If-None-Match: *) of one name must fail with 412.  A
 * loopback stub plays a small S3 that keeps objects in memory and either
 * ignores If-None-Match (overwrites, 200) or rejects it (501), and records
 * every request, so each setting's behaviour is checked exactly: on refuses
 * to write and stores nothing, auto warns once and appends as one writer
 * per key, off never probes.  (Against Ceph RGW, which honours the header,
 * the multi-writer suite runs with the probe passing.) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "klstore.h"
#include "stub_http.h"

#define MAXOBJ 64

typedef struct mini_s3 {
    pthread_mutex_t mu;
    int reject_conditional; /* 501 for If-None-Match instead of ignoring it */
    int honour;             /* a full S3: If-None-Match gives 412, CopyObject works */
    int honour_copy_if;     /* ...and so does x-amz-copy-source-if-match */
    char meta[MAXOBJ][256], tag[MAXOBJ][32];
    char *name[MAXOBJ], *body[MAXOBJ];
    size_t len[MAXOBJ];
    int n;
    char log[64][1100]; /* "METHOD key [if-none-match]" */
    char etag[400];
    int version;
    int nlog;
    char listing[8192];
} mini_s3;

static int find(mini_s3 *m, const char *k)
{
    for (int i = 0; i < m->n; i++)
        if (m->name[i] && strcmp(m->name[i], k) == 0) return i;
    return -1;
}

/* "/bkt/a%2Fb?x" -> "a/b" (path-style, only %2F and %XX decoded). */
static void key_of(const char *target, char *out, size_t cap)
{
    const char *p = target + strlen("/bkt");
    if (*p == '/') p++;
    size_t o = 0;
    for (; *p && *p != '?' && o + 1 < cap; p++) {
        if (*p == '%' && p[1] && p[2]) {
            char hex[3] = {p[1], p[2], 0};
            out[o++] = (char)strtol(hex, NULL, 16);
            p += 2;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = 0;
}

static const char *query(const char *target, const char *name, char *buf, size_t cap)
{
    const char *q = strchr(target, '?');
    size_t nl = strlen(name);
    for (q = q ? q + 1 : NULL; q && *q; q = strchr(q, '&') ? strchr(q, '&') + 1 : NULL) {
        if (strncmp(q, name, nl) == 0 && q[nl] == '=') {
            char enc[1024];
            snprintf(enc, sizeof enc, "/bkt/%.*s", (int)strcspn(q + nl + 1, "&"), q + nl + 1);
            key_of(enc, buf, cap);
            return buf;
        }
    }
    return NULL;
}

static void handle(void *ud, int n, const stub_req *rq, stub_resp *rs)
{
    mini_s3 *m = ud;
    char key[1024], inm[16], buf[1024], src[1100], srcif[64], meta[256];
    key_of(rq->target, key, sizeof key);
    int cond = stub_header(rq, "If-None-Match", inm, sizeof inm) != NULL;
    int copy = stub_header(rq, "x-amz-copy-source", src, sizeof src) != NULL;
    int copy_if = stub_header(rq, "x-amz-copy-source-if-match", srcif, sizeof srcif) != NULL;
    int has_meta = stub_header(rq, "x-amz-meta-kl-object", meta, sizeof meta) != NULL;
    pthread_mutex_lock(&m->mu);
    if (m->nlog < 64)
        snprintf(m->log[m->nlog++], sizeof m->log[0], "%s %s%s%s", copy ? "COPY" : rq->method, key,
                 cond ? " if-none-match" : "", copy_if ? " copy-if" : "");
    int i = find(m, key);
    const char *body = rq->body ? rq->body : "";
    size_t blen = rq->body_len;
    if (copy) { /* "/bkt/key": the source's body */
        char sk[1024];
        key_of(src, sk, sizeof sk);
        int j = find(m, sk);
        if (j < 0 || (m->honour_copy_if && copy_if && strcmp(srcif, m->tag[j]) != 0)) {
            rs->status = j < 0 ? 404 : 412;
            rs->body = j < 0
                           ? "<Error><Code>NoSuchKey</Code><Message>no</Message></Error>"
                           : "<Error><Code>PreconditionFailed</Code><Message>no</Message></Error>";
            pthread_mutex_unlock(&m->mu);
            return;
        }
        body = m->body[j];
        blen = m->len[j];
        has_meta = 0;
    }
    if (strcmp(rq->method, "PUT") == 0 && cond && m->honour && i >= 0) {
        rs->status = 412;
        rs->body = "<Error><Code>PreconditionFailed</Code><Message>exists</Message></Error>";
    } else if (strcmp(rq->method, "PUT") == 0) {
        if (cond && m->reject_conditional) {
            rs->status = 501;
            rs->body = "<Error><Code>NotImplemented</Code><Message>A header you provided "
                       "implies functionality that is not implemented</Message></Error>";
        } else {
            if (i < 0 && m->n < MAXOBJ) i = m->n++;
            if (i >= 0) {
                free(m->name[i]);
                free(m->body[i]);
                m->name[i] = strdup(key);
                char *b = malloc(blen + 1);
                memcpy(b, body, blen);
                m->body[i] = b;
                m->len[i] = blen;
                snprintf(m->meta[i], sizeof m->meta[i], "%s", has_meta ? meta : "");
                snprintf(m->tag[i], sizeof m->tag[i], "\"v%d\"", ++m->version);
            }
            snprintf(m->etag, sizeof m->etag, "ETag: %s\r\n", i >= 0 ? m->tag[i] : "\"x\"");
            rs->headers = m->etag;
            rs->status = 200;
        }
    } else if (strcmp(rq->method, "GET") == 0 && strchr(rq->target, '?') &&
               strstr(rq->target, "list-type=2")) {
        const char *pre = query(rq->target, "prefix", buf, sizeof buf);
        char after[1024] = "";
        query(rq->target, "start-after", after, sizeof after);
        size_t o = (size_t)snprintf(m->listing, sizeof m->listing,
                                    "<ListBucketResult><IsTruncated>false</IsTruncated>");
        for (int j = 0; j < m->n; j++)
            if (m->name[j] && (!pre || strncmp(m->name[j], pre, strlen(pre)) == 0) &&
                strcmp(m->name[j], after) > 0)
                o += (size_t)snprintf(m->listing + o, sizeof m->listing - o,
                                      "<Contents><Key>%s</Key><Size>%zu</Size></Contents>",
                                      m->name[j], m->len[j]);
        snprintf(m->listing + o, sizeof m->listing - o, "</ListBucketResult>");
        rs->status = 200;
        rs->body = m->listing;
    } else if (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0) {
        if (i < 0) {
            rs->status = 404;
            rs->body = "<Error><Code>NoSuchKey</Code><Message>no</Message></Error>";
        } else {
            rs->status = 200;
            rs->body = m->body[i];
            rs->body_len = m->len[i];
            if (!m->len[i]) rs->body = NULL;
            snprintf(m->etag, sizeof m->etag, "ETag: %s\r\nx-amz-meta-kl-object: %s\r\n", m->tag[i],
                     m->meta[i]);
            rs->headers = m->etag;
        }
    } else if (strcmp(rq->method, "DELETE") == 0) {
        if (i >= 0) {
            free(m->name[i]);
            m->name[i] = NULL;
        }
        rs->status = 204;
    } else {
        rs->status = 400;
    }
    pthread_mutex_unlock(&m->mu);
}

typedef struct fixture {
    mini_s3 m;
    stub *srv;
    kl_objstore *os;
    kl_writer *w;
    char warnings[4][KL_ERRMSG_MAX];
    int n_warnings;
} fixture;

static fixture *current;

static void on_log(int level, const char *msg, void *ctx)
{
    fixture *f = ctx;
    if (level == KL_LOG_WARNING && f->n_warnings < 4)
        snprintf(f->warnings[f->n_warnings++], KL_ERRMSG_MAX, "%s", msg);
}

static void open_fixture(fixture *f, const char *fencing, int reject)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->m.mu, NULL);
    f->m.reject_conditional = reject == 1;
    f->m.honour = reject >= 2;
    f->m.honour_copy_if = reject == 3;
    f->srv = stub_start(handle, &f->m);
    kl_config c;
    kl_config_init(&c);
    kl_error e = {0};
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", stub_port(f->srv));
    const char *kv[][2] = {{"endpoint", ep},
                           {"bucket_name", "bkt"},
                           {"path_style", "true"},
                           {"access_key", "AKID"},
                           {"secret_key", "SECRETSECRET"},
                           {"use_default_credentials", "false"},
                           {"max_retries", "0"},
                           {"fencing", fencing}};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
        cr_assert_eq(kl_config_set(&c, "s3", kv[i][0], kv[i][1], &e), KL_OK, "%s", e.msg);
    cr_assert_eq(kl_objstore_s3_new(&c.s3, &f->os, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(kl_store_writer_new(f->os, &c.store, &f->w, &e), KL_OK, "%s", e.msg);
    kl_config_free(&c);
    current = f;
    kl_set_log_handler(on_log, f);
}

static void close_fixture(fixture *f)
{
    kl_writer_destroy(f->w);
    kl_os_destroy(f->os);
    stub_stop(f->srv);
    kl_set_log_handler(NULL, NULL);
    for (int i = 0; i < f->m.n; i++) {
        free(f->m.name[i]);
        free(f->m.body[i]);
    }
}

static kl_status append(fixture *f, const char *text, kl_error *e)
{
    kl_insertion in = {.data = text, .len = strlen(text)};
    return kl_append(f->w, "ks", "k", &in, 1, e);
}

static int data_objects(fixture *f)
{
    int n = 0;
    for (int i = 0; i < f->m.n; i++) n += f->m.name[i] && strstr(f->m.name[i], "/data_o") != NULL;
    return n;
}

static int logged(fixture *f, const char *what)
{
    int n = 0;
    for (int i = 0; i < f->m.nlog; i++) n += strstr(f->m.log[i], what) != NULL;
    return n;
}

Test(fencing, on_refuses_a_server_that_ignores_if_none_match)
{
    fixture f;
    open_fixture(&f, "on", 0);
    kl_error e = {0};
    cr_assert_eq(append(&f, "x", &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "fencing=on") && strstr(e.msg, "ignores create-only writes"),
              "message: %s", e.msg);
    cr_assert_eq(data_objects(&f), 0, "a refused append stored data");
    cr_assert_eq(logged(&f, "fencing-probe"), 3, "two probe PUTs and a DELETE");
    cr_assert_eq(append(&f, "x", &e), KL_EINVAL, "the refusal must stick");
    cr_assert_eq(data_objects(&f), 0);
    close_fixture(&f);
}

Test(fencing, auto_warns_once_and_appends_unfenced)
{
    fixture f;
    open_fixture(&f, "auto", 0);
    kl_error e = {0};
    cr_assert_eq(append(&f, "x", &e), KL_OK, "%s", e.msg);
    cr_assert_eq(append(&f, "y", &e), KL_OK, "%s", e.msg);
    cr_assert_eq(f.n_warnings, 1);
    cr_assert(strstr(f.warnings[0], "cannot fence concurrent writers"), "%s", f.warnings[0]);
    cr_assert_eq(data_objects(&f), 2);
    cr_assert_eq(logged(&f, "/claim_o"), 0, "no claims on a store that cannot fence");
    cr_assert_eq(logged(&f, "fencing-probe"), 3, "probed once, at the first append");
    close_fixture(&f);
}

Test(fencing, auto_treats_a_rejected_conditional_put_as_no_fencing)
{
    fixture f;
    open_fixture(&f, "auto", 1);
    kl_error e = {0};
    cr_assert_eq(append(&f, "x", &e), KL_OK, "%s", e.msg);
    cr_assert_eq(f.n_warnings, 1);
    cr_assert_eq(data_objects(&f), 1);
    close_fixture(&f);
}

Test(fencing, on_refuses_a_server_that_rejects_conditional_puts)
{
    fixture f;
    open_fixture(&f, "on", 1);
    kl_error e = {0};
    cr_assert_eq(append(&f, "x", &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "fencing=on"), "message: %s", e.msg);
    cr_assert_eq(data_objects(&f), 0);
    close_fixture(&f);
}

Test(fencing, off_never_probes)
{
    fixture f;
    open_fixture(&f, "off", 0);
    kl_error e = {0};
    cr_assert_eq(append(&f, "x", &e), KL_OK, "%s", e.msg);
    cr_assert_eq(logged(&f, "fencing-probe"), 0);
    cr_assert_eq(logged(&f, "if-none-match"), 0);
    cr_assert_eq(f.n_warnings, 0);
    cr_assert_eq(data_objects(&f), 1);
    close_fixture(&f);
}

Test(fencing, bad_setting_names_the_key)
{
    kl_config c;
    kl_config_init(&c);
    kl_error e = {0};
    cr_assert_eq(kl_config_set(&c, "s3", "fencing", "sometimes", &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "fencing") && strstr(e.msg, "auto, on or off"), "%s", e.msg);
    kl_config_free(&c);
}

/* A read of the whole key through a reader over the fixture's store. */
static void expect_log(fixture *f, const char *want)
{
    kl_reader *r;
    kl_error e = {0};
    kl_store_config cfg;
    kl_store_config_init(&cfg);
    cr_assert_eq(kl_store_reader_new(f->os, &cfg, &r, &e), KL_OK);
    kl_page p;
    cr_assert_eq(kl_read_first_page(r, "ks", "k", KL_FORWARDS, NULL, 100, &p, &e), KL_OK, "%s",
                 e.msg);
    char got[256] = "";
    for (size_t i = 0; i < p.count; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%.*s,", (int)p.records[i].len,
                 (const char *)p.records[i].data);
    cr_assert_str_eq(got, want);
    kl_page_free(&p);
    kl_reader_destroy(r);
}

/* A server that honours copy conditions (AWS S3, MinIO): objects are
 * published by a server-side copy conditional on the claim's ETag. */
Test(fencing, publishes_by_conditional_copy_where_honoured)
{
    fixture f;
    open_fixture(&f, "on", 3);
    kl_error e = {0};
    cr_assert_eq(append(&f, "x", &e), KL_OK, "%s", e.msg);
    cr_assert_eq(append(&f, "y", &e), KL_OK, "%s", e.msg);
    cr_assert_eq(logged(&f, "copy-if"), 3, "the probe and two publishes copy conditionally");
    cr_assert_eq(data_objects(&f), 2);
    expect_log(&f, "x,y,");
    close_fixture(&f);
}

/* A server that ignores copy conditions (Ceph RGW 16.2): a copy could
 * take another writer's body, so objects are published by PUT instead. */
Test(fencing, publishes_by_put_where_copy_conditions_are_ignored)
{
    fixture f;
    open_fixture(&f, "on", 2);
    kl_error e = {0};
    cr_assert_eq(append(&f, "x", &e), KL_OK, "%s", e.msg);
    cr_assert_eq(append(&f, "y", &e), KL_OK, "%s", e.msg);
    cr_assert_eq(logged(&f, "COPY"), 1, "only the probe copies");
    cr_assert_eq(logged(&f, "PUT ks/k/data_o"), 2);
    expect_log(&f, "x,y,");
    close_fixture(&f);
}
