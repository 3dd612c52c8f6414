/* test_resilience.c -- the S3 store against servers that misbehave.
 *
 * A loopback stub (stub_http.c) plays an S3 server that throttles, fails,
 * hangs or drops connections, so that retries, backoff, timeouts and error
 * messages can be checked exactly (request counts included) without a real
 * S3.  Also checks what goes on the wire: path-style addressing, the
 * encoding of odd names, Range, If-None-Match, Content-MD5.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "klstore.h"
#include "stub_http.h"

/* s3_listpage.h: empty pages after which a listing is refused */
#define KL_S3_LIST_MAX_EMPTY_FOR_TEST 16

#define SLOWDOWN                                                                                   \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"                       \
    "<Message>Please reduce your request rate.</Message><RequestId>req-slow</RequestId></Error>"

/* What a scenario answers, and what it saw. */
typedef struct scenario {
    int fail_first;  /* answer this many requests with `fail_status` */
    int fail_status; /* 0 = drop the connection without answering */
    const char *fail_body;
    const char *ok_body;
    int ok_status;
    int delay_ms;
    const char *seq[6]; /* optional per-request bodies (with seq_status) */
    int seq_status[6];
    stub_req last; /* the last request seen */
    stub_req first;
} scenario;

static void handle(void *ud, int n, const stub_req *rq, stub_resp *rs)
{
    scenario *sc = ud;
    if (n == 0) sc->first = *rq;
    sc->last = *rq;
    sc->first.body = sc->last.body = NULL; /* freed by the stub */
    rs->delay_ms = sc->delay_ms;
    if (n < 6 && sc->seq_status[n]) {
        rs->status = sc->seq_status[n] < 0 ? 0 : sc->seq_status[n];
        rs->body = sc->seq[n];
        return;
    }
    if (n < sc->fail_first) {
        rs->status = sc->fail_status;
        rs->body = sc->fail_body;
        return;
    }
    rs->status = sc->ok_status ? sc->ok_status : 200;
    rs->body = sc->ok_body;
}

static kl_objstore *open_at(int port, const char *retries, const char *timeout_ms)
{
    kl_config c;
    kl_config_init(&c);
    kl_error e = {0};
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", port);
    const char *kv[][2] = {{"endpoint", ep},
                           {"bucket_name", "bkt"},
                           {"access_key", "AKID"},
                           {"secret_key", "SECRETSECRET"},
                           {"use_default_credentials", "false"},
                           {"max_retries", retries},
                           {"request_timeout_ms", timeout_ms},
                           {"connect_timeout_ms", "1000"}};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
        cr_assert_eq(kl_config_set(&c, "s3", kv[i][0], kv[i][1], &e), KL_OK, "%s", e.msg);
    kl_objstore *os;
    cr_assert_eq(kl_objstore_s3_new(&c.s3, &os, &e), KL_OK, "%s", e.msg);
    kl_config_free(&c);
    return os;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(s3_resilience, slowdown_is_retried_until_success, .timeout = 30)
{
    scenario sc = {
        .fail_first = 3, .fail_status = 503, .fail_body = SLOWDOWN, .ok_body = "payload"};
    stub *st = stub_start(handle, &sc);
    kl_objstore *os = open_at(stub_port(st), "5", "5000");
    kl_error e = {0};
    uint8_t *d;
    size_t n;
    cr_assert_eq(kl_os_get(os, "ks/a b+c=d@\xc3\xa9", 0, UINT64_MAX, &d, &n, &e), KL_OK, "%s",
                 e.msg);
    cr_assert_eq(n, 7);
    cr_assert(memcmp(d, "payload", 7) == 0);
    free(d);
    cr_assert_eq(stub_count(st), 4, "3 throttled answers + 1 success, saw %d", stub_count(st));
    /* Path style (IP endpoint), the name encoded once, the Host signed. */
    cr_assert_str_eq(sc.last.method, "GET");
    cr_assert_str_eq(sc.last.target, "/bkt/ks/a%20b%2Bc%3Dd%40%C3%A9");
    char h[512];
    char want_host[64];
    snprintf(want_host, sizeof want_host, "127.0.0.1:%d", stub_port(st));
    cr_assert_str_eq(stub_header(&sc.last, "Host", h, sizeof h), want_host);
    cr_assert_not_null(stub_header(&sc.last, "Authorization", h, sizeof h));
    cr_assert(strstr(h, "Credential=AKID/") &&
                  strstr(h, "SignedHeaders=host;x-amz-content-sha256;x-amz-date"),
              "%s", h);
    cr_assert_null(strstr(sc.last.headers, "SECRETSECRET"));
    cr_assert_null(stub_header(&sc.last, "Range", h, sizeof h));
    kl_os_destroy(os);
    stub_stop(st);
}

Test(s3_resilience, retries_are_bounded, .timeout = 30)
{
    scenario sc = {.fail_first = 1000, .fail_status = 503, .fail_body = SLOWDOWN};
    stub *st = stub_start(handle, &sc);
    kl_objstore *os = open_at(stub_port(st), "2", "5000");
    kl_error e = {0};
    cr_assert_eq(kl_os_put(os, "ks/k/obj", "x", 1, 0, &e), KL_EIO);
    cr_assert_eq(stub_count(st), 3, "1 try + 2 retries, saw %d", stub_count(st));
    cr_assert(strstr(e.msg, "throttling") && strstr(e.msg, "SlowDown") &&
                  strstr(e.msg, "3 attempts") && strstr(e.msg, "s3://bkt/ks/k/obj") &&
                  strstr(e.msg, "req-slow"),
              "%s", e.msg);
    cr_assert(kl_status_retryable(e.code));
    kl_os_destroy(os);
    stub_stop(st);
}

Test(s3_resilience, server_errors_429_and_dropped_connections_are_retried, .timeout = 30)
{
    scenario sc = {.ok_body = ""};
    sc.seq_status[0] = 500;
    sc.seq[0] = "<Error><Code>InternalError</Code><Message>oops</Message></Error>";
    sc.seq_status[1] = 429;
    sc.seq_status[2] = -1; /* connection closed without an answer */
    sc.seq_status[3] = 502;
    sc.seq[3] = "<html>bad gateway</html>";
    stub *st = stub_start(handle, &sc);
    kl_objstore *os = open_at(stub_port(st), "5", "5000");
    kl_error e = {0};
    cr_assert_eq(kl_os_put(os, "ks/k/obj", "body", 4, 0, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(stub_count(st), 5);
    cr_assert_str_eq(sc.last.method, "PUT");
    char h[256];
    cr_assert_str_eq(stub_header(&sc.last, "Content-Length", h, sizeof h), "4");
    cr_assert_null(stub_header(&sc.last, "If-None-Match", h, sizeof h));
    cr_assert_null(stub_header(&sc.last, "Expect", h, sizeof h));
    kl_os_destroy(os);
    stub_stop(st);
}

Test(s3_resilience, access_denied_is_not_retried, .timeout = 30)
{
    scenario sc = {.fail_first = 1000,
                   .fail_status = 403,
                   .fail_body = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message>"
                                "<RequestId>rid-42</RequestId></Error>"};
    stub *st = stub_start(handle, &sc);
    kl_objstore *os = open_at(stub_port(st), "5", "5000");
    kl_error e = {0};
    uint64_t size;
    uint8_t *d;
    size_t n;
    cr_assert_eq(kl_os_get(os, "ks/k/obj", 0, 10, &d, &n, &e), KL_EINVAL);
    cr_assert_eq(stub_count(st), 1);
    cr_assert(strstr(e.msg, "access denied") && strstr(e.msg, "AKID") && strstr(e.msg, "rid-42") &&
                  strstr(e.msg, "s3://bkt/ks/k/obj"),
              "%s", e.msg);
    char h[256];
    cr_assert_str_eq(stub_header(&sc.last, "Range", h, sizeof h), "bytes=0-9");
    cr_assert_eq(kl_os_head(os, "ks/k/obj", &size, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "403"), "%s", e.msg);
    kl_os_destroy(os);
    stub_stop(st);
}

Test(s3_resilience, request_timeout_then_give_up, .timeout = 30)
{
    scenario sc = {.delay_ms = 5000, .ok_body = "late"};
    stub *st = stub_start(handle, &sc);
    kl_objstore *os = open_at(stub_port(st), "1", "300");
    kl_error e = {0};
    uint8_t *d;
    size_t n;
    double t0 = now_s();
    cr_assert_eq(kl_os_get(os, "ks/k/obj", 0, UINT64_MAX, &d, &n, &e), KL_EIO);
    double took = now_s() - t0;
    cr_assert(took < 2.5, "took %.2fs for 2 x 300ms", took);
    cr_assert(strstr(e.msg, "imed out") && strstr(e.msg, "2 attempts") &&
                  strstr(e.msg, "http://127.0.0.1:"),
              "%s", e.msg);
    kl_os_destroy(os);
    stub_stop(st);
}

Test(s3_resilience, unreachable_endpoint_fails_fast_with_eio, .timeout = 30)
{
    /* A port that was just free: nothing listens there. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    int port = ntohs(a.sin_port);
    close(fd);
    kl_objstore *os = open_at(port, "2", "1000");
    kl_error e = {0};
    double t0 = now_s();
    kl_list_req rq = {.prefix = "ks/"};
    kl_listing l;
    cr_assert_eq(kl_os_list(os, &rq, &l, &e), KL_EIO);
    cr_assert(now_s() - t0 < 3.0);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    cr_assert(strstr(e.msg, want) && strstr(e.msg, "connect") && strstr(e.msg, "3 attempts") &&
                  strstr(e.msg, "s3://bkt/ks/*"),
              "%s", e.msg);
    kl_os_destroy(os);
}

Test(s3_resilience, put_if_absent_sends_if_none_match_and_maps_412, .timeout = 30)
{
    scenario sc = {.fail_first = 1000,
                   .fail_status = 412,
                   .fail_body = "<Error><Code>PreconditionFailed</Code></Error>"};
    stub *st = stub_start(handle, &sc);
    kl_objstore *os = open_at(stub_port(st), "3", "5000");
    kl_error e = {0};
    cr_assert_eq(kl_os_put(os, "ks_config.ini", "m", 1, KL_PUT_IF_ABSENT, &e), KL_EEXIST);
    cr_assert_eq(stub_count(st), 1);
    char h[64];
    cr_assert_str_eq(stub_header(&sc.last, "If-None-Match", h, sizeof h), "*");
    kl_os_destroy(os);
    stub_stop(st);
}

/* The first PUT reached the server but its answer was lost; the retry
 * then finds "its own" object.  That is success, not KL_EEXIST. */
Test(s3_resilience, put_if_absent_after_lost_answer, .timeout = 30)
{
    scenario sc = {0};
    sc.seq_status[0] = -1; /* applied, answer lost */
    sc.seq_status[1] = 412;
    sc.seq_status[2] = 200; /* the GET that checks what is there */
    sc.seq[2] = "[keyspace]\ncreated=1\n";
    stub *st = stub_start(handle, &sc);
    kl_objstore *os = open_at(stub_port(st), "3", "5000");
    kl_error e = {0};
    const char *body = "[keyspace]\ncreated=1\n";
    cr_assert_eq(kl_os_put(os, "ks_config.ini", body, strlen(body), KL_PUT_IF_ABSENT, &e), KL_OK,
                 "%s", e.msg);
    cr_assert_eq(stub_count(st), 3);
    cr_assert_str_eq(sc.last.method, "GET");
    kl_os_destroy(os);
    stub_stop(st);

    /* Someone else's object: a real conflict. */
    scenario sc2 = {0};
    sc2.seq_status[0] = -1;
    sc2.seq_status[1] = 412;
    sc2.seq_status[2] = 200;
    sc2.seq[2] = "[keyspace]\ncreated=2\n";
    st = stub_start(handle, &sc2);
    os = open_at(stub_port(st), "3", "5000");
    cr_assert_eq(kl_os_put(os, "ks_config.ini", body, strlen(body), KL_PUT_IF_ABSENT, &e),
                 KL_EEXIST);
    kl_os_destroy(os);
    stub_stop(st);
}

Test(s3_resilience, server_ignoring_range_is_cut_client_side, .timeout = 30)
{
    scenario sc = {.ok_body = "0123456789"};
    stub *st = stub_start(handle, &sc);
    kl_objstore *os = open_at(stub_port(st), "0", "5000");
    kl_error e = {0};
    uint8_t *d;
    size_t n;
    cr_assert_eq(kl_os_get(os, "o", 3, 4, &d, &n, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(n, 4);
    cr_assert(memcmp(d, "3456", 4) == 0);
    free(d);
    char h[64];
    cr_assert_str_eq(stub_header(&sc.last, "Range", h, sizeof h), "bytes=3-6");
    cr_assert_eq(kl_os_get(os, "o", 8, UINT64_MAX, &d, &n, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(n, 2);
    free(d);
    cr_assert_str_eq(stub_header(&sc.last, "Range", h, sizeof h), "bytes=8-");
    kl_os_destroy(os);
    stub_stop(st);
}

Test(s3_resilience, batch_delete_wire_format_and_partial_failure, .timeout = 30)
{
    scenario sc = {.ok_body = "<DeleteResult><Deleted><Key>a&amp;b</Key></Deleted>"
                              "<Error><Key>c&lt;d</Key><Code>AccessDenied</Code>"
                              "<Message>Access Denied</Message></Error></DeleteResult>"};
    stub *st = stub_start(handle, &sc);
    kl_objstore *os = open_at(stub_port(st), "0", "5000");
    kl_error e = {0};
    const char *names[] = {"a&b", "c<d", "e f"};
    cr_assert_eq(kl_os_del(os, names, 3, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "1 of 3") && strstr(e.msg, "c<d") && strstr(e.msg, "AccessDenied"),
              "%s", e.msg);
    cr_assert_str_eq(sc.last.method, "POST");
    cr_assert_str_eq(sc.last.target, "/bkt/?delete");
    kl_os_destroy(os);
    stub_stop(st);
}

/* Content-MD5 must be the base64 MD5 of exactly the bytes sent. */
static char md5_seen[64], md5_body[64];
static void md5_handler(void *ud, int n, const stub_req *rq, stub_resp *rs)
{
    stub_header(rq, "Content-MD5", md5_seen, sizeof md5_seen);
    unsigned char md[16];
    unsigned len;
    EVP_Digest(rq->body, rq->body_len, md, &len, EVP_md5(), NULL);
    EVP_EncodeBlock((unsigned char *)md5_body, md, 16);
    rs->status = 200;
    rs->body = strstr(rq->body, "<Key>x y</Key>") ? "<DeleteResult/>" : "broken";
}

Test(s3_resilience, batch_delete_content_md5, .timeout = 30)
{
    stub *st = stub_start(md5_handler, NULL);
    kl_objstore *os = open_at(stub_port(st), "0", "5000");
    kl_error e = {0};
    const char *names[] = {"x y", "z"};
    cr_assert_eq(kl_os_del(os, names, 2, &e), KL_OK, "%s", e.msg);
    cr_assert_str_eq(md5_seen, md5_body);
    kl_os_destroy(os);
    stub_stop(st);
}

static void *getter(void *arg)
{
    kl_objstore *os = arg;
    for (int i = 0; i < 25; i++) {
        uint8_t *d;
        size_t n;
        kl_error e = {0};
        if (kl_os_get(os, "ks/k/o", 0, UINT64_MAX, &d, &n, &e) != KL_OK) return strdup(e.msg);
        int ok = n == 2 && memcmp(d, "ok", 2) == 0;
        free(d);
        if (!ok) return strdup("wrong body");
    }
    return NULL;
}

Test(s3_resilience, concurrent_requests_share_the_pool, .timeout = 60)
{
    scenario sc = {.ok_body = "ok"};
    stub *st = stub_start(handle, &sc);
    kl_objstore *os = open_at(stub_port(st), "3", "5000");
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, getter, os);
    for (int i = 0; i < 4; i++) {
        char *msg;
        pthread_join(th[i], (void **)&msg);
        cr_assert_null(msg, "%s", msg);
    }
    cr_assert_eq(stub_count(st), 100);
    kl_os_destroy(os);
    stub_stop(st);
}

Test(s3_resilience, config_validation_at_creation)
{
    kl_config c;
    kl_config_init(&c);
    kl_error e = {0};
    kl_objstore *os;
    cr_assert_eq(kl_objstore_s3_new(&c.s3, &os, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "bucket_name"), "%s", e.msg);
    kl_config_set(&c, "s3", "bucket_name", "b", &e);
    kl_config_set(&c, "s3", "endpoint", "ftp://x", &e);
    cr_assert_eq(kl_objstore_s3_new(&c.s3, &os, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "http://"), "%s", e.msg);
    kl_config_set(&c, "s3", "endpoint", "http://", &e);
    cr_assert_eq(kl_objstore_s3_new(&c.s3, &os, &e), KL_EINVAL);
    /* Creation does not talk to the server (nor fetch credentials). */
    kl_config_set(&c, "s3", "endpoint", "https://s3.example.invalid", &e);
    cr_assert_eq(kl_objstore_s3_new(&c.s3, &os, &e), KL_OK, "%s", e.msg);
    cr_assert_str_eq(os->ops->describe(os), "s3://b");
    kl_os_destroy(os);
    kl_config_free(&c);
}

/* sign_payload: over http (auto) the body's SHA-256 is signed, which the
 * server checks; off sends UNSIGNED-PAYLOAD, as curl --aws-sigv4 does; a
 * bad value is refused by name. */
Test(s3_resilience, payload_signing_follows_sign_payload, .timeout = 30)
{
    scenario sc = {0};
    stub *st = stub_start(handle, &sc);
    char h[512];
    for (int off = 0; off < 2; off++) {
        kl_config c;
        kl_config_init(&c);
        kl_error e = {0};
        char ep[64];
        snprintf(ep, sizeof ep, "http://127.0.0.1:%d", stub_port(st));
        const char *kv[][2] = {{"endpoint", ep},
                               {"bucket_name", "bkt"},
                               {"access_key", "AKID"},
                               {"secret_key", "SECRETSECRET"},
                               {"use_default_credentials", "false"},
                               {"sign_payload", off ? "off" : "auto"}};
        for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
            cr_assert_eq(kl_config_set(&c, "s3", kv[i][0], kv[i][1], &e), KL_OK, "%s", e.msg);
        kl_objstore *os;
        cr_assert_eq(kl_objstore_s3_new(&c.s3, &os, &e), KL_OK, "%s", e.msg);
        kl_config_free(&c);
        cr_assert_eq(kl_os_put(os, "ks/k/obj", "abc", 3, 0, &e), KL_OK, "%s", e.msg);
        cr_assert_str_eq(sc.last.method, "PUT");
        cr_assert_not_null(stub_header(&sc.last, "x-amz-content-sha256", h, sizeof h));
        cr_assert_str_eq(h,
                         off ? "UNSIGNED-PAYLOAD"
                             : "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        kl_os_destroy(os);
    }
    stub_stop(st);
    kl_config c;
    kl_config_init(&c);
    kl_error e = {0};
    cr_assert_eq(kl_config_set(&c, "s3", "sign_payload", "sometimes", &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "sign_payload"), "%s", e.msg);
    kl_config_free(&c);
}

/* ---- bounded responses ------------------------------------------- */

/* Endless bodies: the stub's `endless` answers, chunk after chunk. */
static const char *endless_fill =
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
static void endless_ok(void *ud, int n, const stub_req *rq, stub_resp *rs)
{
    rs->status = 200;
    rs->endless = 1;
    rs->body = endless_fill;
}
static void endless_403(void *ud, int n, const stub_req *rq, stub_resp *rs)
{
    rs->status = 403;
    rs->endless = 1;
    rs->body = endless_fill;
}

/* A GET reads at most what it asked for: an endless body ends the request
 * at once (callers ask for one byte more than the object should hold, so
 * a longer body shows as corrupt), whatever the server keeps sending. */
Test(s3_resilience, endless_get_body_is_cut_at_what_was_asked, .timeout = 60)
{
    stub *e = stub_start(endless_ok, NULL);
    kl_objstore *os = open_at(stub_port(e), "3", "20000");
    kl_error err = {0};
    uint8_t *d = NULL;
    size_t n = 0;
    cr_assert_eq(kl_os_get(os, "ks/k/watermark", 0, 9, &d, &n, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(n, 9);
    free(d);
    cr_assert_eq(kl_os_get(os, "ks/k/data", 100, 1000, &d, &n, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(n, 1000);
    cr_assert_eq(d[0], 'x');
    free(d);
    cr_assert_eq(stub_count(e), 2, "one request each");
    /* Through the library: its LIST gets the endless body too, and stops
     * at the cap on listing documents with a clear error. */
    kl_store_config cfg;
    kl_store_config_init(&cfg);
    kl_reader *r;
    cr_assert_eq(kl_store_reader_new(os, &cfg, &r, &err), KL_OK);
    kl_key_meta m;
    int exists;
    cr_assert_eq(kl_read_key_metadata(r, "ks", "k", &exists, &m, &err), KL_EBADDATA);
    cr_assert(strstr(err.msg, "sent more than"), "%s", err.msg);
    kl_reader_destroy(r);
    kl_os_destroy(os);
    stub_stop(e);
}

/* An endless error body is kept up to a cap and the status reported. */
Test(s3_resilience, endless_error_body_is_cut, .timeout = 60)
{
    stub *e = stub_start(endless_403, NULL);
    kl_objstore *os = open_at(stub_port(e), "3", "20000");
    kl_error err = {0};
    kl_list_req rq = {.prefix = "ks/"};
    kl_listing l;
    kl_status st = kl_os_list(os, &rq, &l, &err);
    cr_assert_neq(st, KL_OK);
    cr_assert(strstr(err.msg, "403"), "%s", err.msg);
    kl_os_destroy(os);
    stub_stop(e);
}

/* An entity-expansion bomb in an error document is refused unparsed: the
 * request ends at once with the HTTP status. */
#define XML_BOMB                                                                                   \
    "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lollollollollollol\">"                  \
    "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"                        \
    "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"              \
    "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"              \
    "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"              \
    "<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">"              \
    "<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">"              \
    "<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">"              \
    "<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]>"            \
    "<Error><Code>AccessDenied</Code><Message>&lol9;</Message></Error>"

Test(s3_resilience, entity_bomb_in_an_error_is_refused_unparsed, .timeout = 30)
{
    scenario sc = {.fail_first = 1000, .fail_status = 403, .fail_body = XML_BOMB};
    stub *st = stub_start(handle, &sc);
    kl_objstore *os = open_at(stub_port(st), "2", "5000");
    kl_error e = {0};
    kl_list_req rq = {.prefix = "ks/"};
    kl_listing l;
    double t0 = now_s();
    cr_assert_neq(kl_os_list(os, &rq, &l, &e), KL_OK);
    cr_assert(strstr(e.msg, "403"), "%s", e.msg);
    cr_assert_null(strstr(e.msg, "lollol"), "the entity was expanded: %.200s", e.msg);
    cr_assert_lt(now_s() - t0, 20);
    kl_os_destroy(os);
    stub_stop(st);
}

/* A listing that never ends -- truncated empty pages with a new token
 * each time -- ends in a bounded number of requests with an error naming
 * the server's misbehaviour, through the library's own paging. */
static void endless_listing(void *ud, int n, const stub_req *rq, stub_resp *rs)
{
    scenario *sc = ud;
    sc->last = *rq;
    sc->last.body = NULL;
    static char body[512];
    snprintf(body, sizeof body,
             "<ListBucketResult><IsTruncated>true</IsTruncated>"
             "<NextContinuationToken>t%d</NextContinuationToken></ListBucketResult>",
             n);
    rs->status = 200;
    rs->body = body;
}

Test(s3_resilience, endless_listing_is_refused, .timeout = 60)
{
    scenario sc = {0};
    stub *st = stub_start(endless_listing, &sc);
    kl_objstore *os = open_at(stub_port(st), "0", "5000");
    kl_store_config cfg;
    kl_store_config_init(&cfg);
    kl_error e = {0};
    char **keys = NULL;
    size_t n = 0;
    kl_status s = kl_list_keys(os, &cfg, "ks", &keys, &n, &e);
    cr_assert_eq(s, KL_EBADDATA, "%s", e.msg);
    cr_assert(strstr(e.msg, "never ends"), "%s", e.msg);
    cr_assert_leq(stub_count(st), KL_S3_LIST_MAX_EMPTY_FOR_TEST + 1, "%d requests", stub_count(st));
    kl_os_destroy(os);
    stub_stop(st);
}

/* A 206 answer longer than the range asked for yields the range's length,
 * never more. */
Test(s3_resilience, range_answer_longer_than_the_range_is_cut, .timeout = 30)
{
    scenario sc = {.ok_status = 206, .ok_body = "0123456789"};
    stub *st = stub_start(handle, &sc);
    kl_objstore *os = open_at(stub_port(st), "0", "5000");
    kl_error e = {0};
    uint8_t *d;
    size_t n;
    cr_assert_eq(kl_os_get(os, "o", 2, 3, &d, &n, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(n, 3);
    cr_assert(memcmp(d, "012", 3) == 0);
    free(d);
    kl_os_destroy(os);
    stub_stop(st);
}
