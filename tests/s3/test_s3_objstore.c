/* test_s3_objstore.c -- the S3 object store against a real S3 server.
 *
 * Runs against the Ceph RADOS Gateway that scripts/test.sh starts (it
 * exports KL_S3_ENDPOINT, KL_S3_BUCKET, KL_S3_ACCESS_KEY, KL_S3_SECRET_KEY,
 * KL_S3_REGION); skipped without it.  Each test works under its own object
 * prefix and removes what it wrote, so the suite can share the bucket.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "klstore.h"

#define SKIP_MSG "needs a real S3 server: set KL_S3_ENDPOINT (scripts/test.sh starts Ceph RGW)"

static char prefix[128];

static void need_rgw(void)
{
    if (!getenv("KL_S3_ENDPOINT") || !getenv("KL_S3_BUCKET") || !getenv("KL_S3_ACCESS_KEY") ||
        !getenv("KL_S3_SECRET_KEY"))
        cr_skip_test(SKIP_MSG);
}

/* A config for the test server; the caller may alter it before opening. */
static void rgw_config(kl_config *c)
{
    kl_config_init(c);
    kl_error e = {0};
    const char *region = getenv("KL_S3_REGION");
    cr_assert_eq(kl_config_set(c, "s3", "endpoint", getenv("KL_S3_ENDPOINT"), &e), KL_OK);
    cr_assert_eq(kl_config_set(c, "s3", "bucket_name", getenv("KL_S3_BUCKET"), &e), KL_OK);
    cr_assert_eq(kl_config_set(c, "s3", "region", region ? region : "us-east-1", &e), KL_OK);
    cr_assert_eq(kl_config_set(c, "s3", "access_key", getenv("KL_S3_ACCESS_KEY"), &e), KL_OK);
    cr_assert_eq(kl_config_set(c, "s3", "secret_key", getenv("KL_S3_SECRET_KEY"), &e), KL_OK);
    cr_assert_eq(kl_config_set(c, "s3", "use_default_credentials", "false", &e), KL_OK);
    cr_assert_eq(kl_config_set(c, "s3", "path_style", "true", &e), KL_OK);
    cr_assert_eq(kl_config_set(c, "s3", "connect_timeout_ms", "2000", &e), KL_OK);
}

static kl_objstore *rgw_open(void)
{
    need_rgw();
    kl_config c;
    rgw_config(&c);
    kl_objstore *os = NULL;
    kl_error e = {0};
    kl_status st = kl_objstore_s3_new(&c.s3, &os, &e);
    kl_config_free(&c);
    cr_assert_eq(st, KL_OK, "%s", e.msg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(prefix, sizeof prefix, "s3t-%d-%ld%09ld/", (int)getpid(), (long)ts.tv_sec, ts.tv_nsec);
    return os;
}

static char *N(const char *rest)
{
    char *s;
    cr_assert(asprintf(&s, "%s%s", prefix, rest) > 0);
    return s;
}

/* Deletes everything under the test prefix (paging as needed). */
static void cleanup(kl_objstore *os)
{
    kl_error e = {0};
    for (;;) {
        kl_list_req rq = {.prefix = prefix};
        kl_listing l;
        cr_assert_eq(kl_os_list(os, &rq, &l, &e), KL_OK, "%s", e.msg);
        if (l.n_objects == 0) {
            kl_listing_free(&l);
            break;
        }
        const char **names = calloc(l.n_objects, sizeof *names);
        for (size_t i = 0; i < l.n_objects; i++) names[i] = l.objects[i].name;
        cr_assert_eq(kl_os_del(os, names, l.n_objects, &e), KL_OK, "%s", e.msg);
        free(names);
        kl_listing_free(&l);
    }
    kl_os_destroy(os);
}

static void put_str(kl_objstore *os, const char *name, const char *data)
{
    kl_error e = {0};
    cr_assert_eq(kl_os_put(os, name, data, strlen(data), 0, &e), KL_OK, "put %s: %s", name, e.msg);
}

static void assert_content(kl_objstore *os, const char *name, uint64_t off, uint64_t len,
                           const char *want)
{
    uint8_t *d = NULL;
    size_t n = 0;
    kl_error e = {0};
    cr_assert_eq(kl_os_get(os, name, off, len, &d, &n, &e), KL_OK, "get %s: %s", name, e.msg);
    cr_assert_not_null(d);
    cr_assert_eq(n, strlen(want), "get %s [%llu,+%llu): %zu bytes, want %zu", name,
                 (unsigned long long)off, (unsigned long long)len, n, strlen(want));
    cr_assert(memcmp(d, want, n) == 0);
    free(d);
}

Test(s3_objstore, put_get_range_head_delete, .timeout = 60)
{
    kl_objstore *os = rgw_open();
    kl_error e = {0};
    cr_assert(strncmp(os->ops->describe(os), "s3://", 5) == 0);
    char *a = N("obj");
    put_str(os, a, "0123456789");
    assert_content(os, a, 0, UINT64_MAX, "0123456789");
    assert_content(os, a, 2, 3, "234");
    assert_content(os, a, 7, UINT64_MAX, "789");
    assert_content(os, a, 8, 100, "89");       /* past the end: clipped */
    assert_content(os, a, 10, 5, "");          /* at the end: empty (416) */
    assert_content(os, a, 50, UINT64_MAX, ""); /* beyond: empty */
    assert_content(os, a, 3, 0, "");
    uint64_t size = 0;
    cr_assert_eq(kl_os_head(os, a, &size, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(size, 10);

    /* Overwrite without flags replaces. */
    put_str(os, a, "xyz");
    assert_content(os, a, 0, UINT64_MAX, "xyz");

    /* Empty object. */
    char *z = N("empty");
    put_str(os, z, "");
    assert_content(os, z, 0, UINT64_MAX, "");
    cr_assert_eq(kl_os_head(os, z, &size, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(size, 0);

    const char *one[] = {a};
    cr_assert_eq(kl_os_del(os, one, 1, &e), KL_OK, "%s", e.msg);
    uint8_t *d = NULL;
    size_t n;
    cr_assert_eq(kl_os_get(os, a, 0, UINT64_MAX, &d, &n, &e), KL_ENOTFOUND);
    cr_assert(strstr(e.msg, "no such object"), "%s", e.msg);
    cr_assert_eq(kl_os_get(os, a, 0, 0, &d, &n, &e), KL_ENOTFOUND);
    cr_assert_eq(kl_os_get(os, a, 5, 2, &d, &n, &e), KL_ENOTFOUND);
    cr_assert_eq(kl_os_head(os, a, &size, &e), KL_ENOTFOUND);
    /* Deleting what is not there is fine, one or many. */
    cr_assert_eq(kl_os_del(os, one, 1, &e), KL_OK, "%s", e.msg);
    const char *two[] = {a, z};
    cr_assert_eq(kl_os_del(os, two, 2, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(kl_os_head(os, z, &size, &e), KL_ENOTFOUND);
    free(a);
    free(z);
    cleanup(os);
}

Test(s3_objstore, large_object_round_trip, .timeout = 120)
{
    kl_objstore *os = rgw_open();
    kl_error e = {0};
    size_t len = 9 << 20;
    uint8_t *buf = malloc(len);
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(i * 2654435761u >> 13);
    char *a = N("big");
    cr_assert_eq(kl_os_put(os, a, buf, len, 0, &e), KL_OK, "%s", e.msg);
    uint8_t *d;
    size_t n;
    cr_assert_eq(kl_os_get(os, a, 0, UINT64_MAX, &d, &n, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(n, len);
    cr_assert(memcmp(d, buf, len) == 0);
    free(d);
    cr_assert_eq(kl_os_get(os, a, 5000000, 123457, &d, &n, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(n, 123457);
    cr_assert(memcmp(d, buf + 5000000, n) == 0);
    free(d);
    free(buf);
    free(a);
    cleanup(os);
}

Test(s3_objstore, put_if_absent, .timeout = 60)
{
    kl_objstore *os = rgw_open();
    kl_error e = {0};
    char *a = N("ks_config.ini");
    cr_assert_eq(kl_os_put(os, a, "first", 5, KL_PUT_IF_ABSENT, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(kl_os_put(os, a, "second", 6, KL_PUT_IF_ABSENT, &e), KL_EEXIST);
    cr_assert_eq(e.code, KL_EEXIST);
    cr_assert(strstr(e.msg, "already exists") && strstr(e.msg, "ks_config.ini"), "%s", e.msg);
    assert_content(os, a, 0, UINT64_MAX, "first");
    free(a);
    cleanup(os);
}

/* Names as keyspaces and keys may spell them: spaces, unicode, and the
 * characters that URL encoders get wrong ('+', '=', '%', '?', '#', ...). */
static const char *const odd_names[] = {
    "a b/c d",
    "plus+sign=equals@at",
    "unicod\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/\xf0\x9f\x99\x82",
    "percent%20literal%",
    "query?x=1&y=2",
    "hash#frag;semi,comma",
    "quote'dq\"paren(1)[2]{3}",
    "tilde~star*bang!dollar$colon:",
    "amp&lt;not-an-entity",
    "back\\slash^caret`tick|pipe",
};

Test(s3_objstore, odd_names_round_trip, .timeout = 60)
{
    kl_objstore *os = rgw_open();
    kl_error e = {0};
    size_t n = sizeof odd_names / sizeof *odd_names;
    char *names[32];
    for (size_t i = 0; i < n; i++) {
        names[i] = N(odd_names[i]);
        put_str(os, names[i], odd_names[i]);
    }
    for (size_t i = 0; i < n; i++) {
        assert_content(os, names[i], 0, UINT64_MAX, odd_names[i]);
        assert_content(
            os, names[i], 1, 4,
            (char[5]){odd_names[i][1], odd_names[i][2], odd_names[i][3], odd_names[i][4], 0});
        uint64_t size;
        cr_assert_eq(kl_os_head(os, names[i], &size, &e), KL_OK, "%s: %s", names[i], e.msg);
        cr_assert_eq(size, strlen(odd_names[i]));
    }
    /* Listing returns each name exactly, and start-after / prefix work
     * with them too. */
    kl_list_req rq = {.prefix = prefix};
    kl_listing l;
    cr_assert_eq(kl_os_list(os, &rq, &l, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(l.n_objects, n);
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (size_t j = 0; j < l.n_objects; j++) found |= strcmp(l.objects[j].name, names[i]) == 0;
        cr_assert(found, "'%s' not listed", names[i]);
        if (i) cr_assert(strcmp(l.objects[i - 1].name, l.objects[i].name) < 0, "not sorted");
    }
    rq.start_after = l.objects[2].name;
    kl_listing l2;
    cr_assert_eq(kl_os_list(os, &rq, &l2, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(l2.n_objects, n - 3);
    cr_assert_str_eq(l2.objects[0].name, l.objects[3].name);
    kl_listing_free(&l2);
    char *pp = N("plus+sign=");
    kl_list_req rq2 = {.prefix = pp};
    cr_assert_eq(kl_os_list(os, &rq2, &l2, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(l2.n_objects, 1);
    kl_listing_free(&l2);
    free(pp);
    kl_listing_free(&l);

    /* Batch delete of all of them, names XML-escaped on the way. */
    cr_assert_eq(kl_os_del(os, (const char *const *)names, n, &e), KL_OK, "%s", e.msg);
    for (size_t i = 0; i < n; i++) {
        uint64_t size;
        cr_assert_eq(kl_os_head(os, names[i], &size, &e), KL_ENOTFOUND, "%s", names[i]);
        free(names[i]);
    }
    cleanup(os);
}

Test(s3_objstore, list_prefix_delimiter_start_after, .timeout = 60)
{
    kl_objstore *os = rgw_open();
    kl_error e = {0};
    const char *rel[] = {"ks1/k1/data_o1",
                         "ks1/k1/data_o2",
                         "ks1/k2/data_o1",
                         "ks1_config.ini",
                         "ks2/k/data_o1",
                         "ks2_config.ini",
                         "top"};
    size_t n = sizeof rel / sizeof *rel;
    for (size_t i = 0; i < n; i++) {
        char *s = N(rel[i]);
        put_str(os, s, "x");
        free(s);
    }
    /* Delimiter: keyspace markers as objects, keyspaces as prefixes. */
    kl_list_req rq = {.prefix = prefix, .delimiter = '/'};
    kl_listing l;
    cr_assert_eq(kl_os_list(os, &rq, &l, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(l.n_objects, 3);
    cr_assert_eq(l.n_prefixes, 2);
    char *want = N("ks1/");
    cr_assert_str_eq(l.prefixes[0], want);
    free(want);
    want = N("ks1_config.ini");
    cr_assert_str_eq(l.objects[0].name, want);
    cr_assert_eq(l.objects[0].size, 1);
    free(want);
    cr_assert_null(l.next);
    kl_listing_free(&l);

    /* Prefix + start-after inside a key. */
    char *kp = N("ks1/k1/"), *sa = N("ks1/k1/data_o1");
    kl_list_req rq2 = {.prefix = kp, .start_after = sa};
    cr_assert_eq(kl_os_list(os, &rq2, &l, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(l.n_objects, 1);
    want = N("ks1/k1/data_o2");
    cr_assert_str_eq(l.objects[0].name, want);
    free(want);
    kl_listing_free(&l);
    free(kp);
    free(sa);

    /* Paging with max_keys and the continuation token (prefixes count). */
    kl_list_req rq3 = {.prefix = prefix, .delimiter = '/', .max_keys = 2};
    size_t objs = 0, pres = 0, pages = 0;
    char *cont = NULL;
    do {
        rq3.continuation = cont;
        cr_assert_eq(kl_os_list(os, &rq3, &l, &e), KL_OK, "%s", e.msg);
        cr_assert_leq(l.n_objects + l.n_prefixes, 2);
        objs += l.n_objects;
        pres += l.n_prefixes;
        pages++;
        free(cont);
        cont = l.next ? strdup(l.next) : NULL;
        kl_listing_free(&l);
    } while (cont && pages < 10);
    cr_assert_eq(objs, 3);
    cr_assert_eq(pres, 2);
    cr_assert_eq(pages, 3);

    /* A prefix nothing has. */
    char *none = N("nothing-here/");
    kl_list_req rq4 = {.prefix = none};
    cr_assert_eq(kl_os_list(os, &rq4, &l, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(l.n_objects + l.n_prefixes, 0);
    cr_assert_null(l.next);
    kl_listing_free(&l);
    free(none);
    cleanup(os);
}

typedef struct filler {
    kl_objstore *os;
    int from, to;
} filler;

static void *fill(void *arg)
{
    filler *f = arg;
    for (int i = f->from; i < f->to; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "many/o%05d", i);
        char *s = N(rel);
        kl_error e = {0};
        kl_status st = kl_os_put(f->os, s, rel, strlen(rel), 0, &e);
        free(s);
        if (st) return strdup(e.msg);
    }
    return NULL;
}

Test(s3_objstore, paging_beyond_1000_and_batch_delete, .timeout = 300)
{
    kl_objstore *os = rgw_open();
    kl_error e = {0};
    enum { TOTAL = 1105, THREADS = 6 };
    /* Several threads at once: the handle pool must keep them apart. */
    pthread_t th[THREADS];
    filler fl[THREADS];
    for (int t = 0; t < THREADS; t++) {
        fl[t] = (filler){os, t * TOTAL / THREADS, (t + 1) * TOTAL / THREADS};
        pthread_create(&th[t], NULL, fill, &fl[t]);
    }
    for (int t = 0; t < THREADS; t++) {
        char *msg;
        pthread_join(th[t], (void **)&msg);
        cr_assert_null(msg, "%s", msg);
    }

    /* Default page (1000), then the rest via the continuation token. */
    char *pfx = N("many/");
    kl_list_req rq = {.prefix = pfx};
    kl_listing l;
    cr_assert_eq(kl_os_list(os, &rq, &l, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(l.n_objects, 1000);
    cr_assert_not_null(l.next);
    char *all[TOTAL];
    for (size_t i = 0; i < l.n_objects; i++) all[i] = strdup(l.objects[i].name);
    char *token = strdup(l.next);
    rq.continuation = token;
    kl_listing l2;
    cr_assert_eq(kl_os_list(os, &rq, &l2, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(l2.n_objects, TOTAL - 1000);
    cr_assert_null(l2.next);
    for (size_t i = 0; i < l2.n_objects; i++) all[1000 + i] = strdup(l2.objects[i].name);
    for (int i = 0; i < TOTAL; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "many/o%05d", i);
        char *want = N(rel);
        cr_assert_str_eq(all[i], want);
        free(want);
    }
    kl_listing_free(&l);
    kl_listing_free(&l2);
    free(token);

    /* max_keys smaller than a page, from start-after. */
    kl_list_req rq3 = {.prefix = pfx, .start_after = all[1099], .max_keys = 3};
    cr_assert_eq(kl_os_list(os, &rq3, &l, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(l.n_objects, 3);
    cr_assert_str_eq(l.objects[0].name, all[1100]);
    cr_assert_not_null(l.next);
    kl_listing_free(&l);

    /* More than 1000 names per call is refused, 1000 works in one call. */
    cr_assert_eq(kl_os_del(os, (const char *const *)all, 1001, &e), KL_EINVAL);
    cr_assert_eq(kl_os_del(os, (const char *const *)all, 1000, &e), KL_OK, "%s", e.msg);
    kl_list_req rq4 = {.prefix = pfx};
    cr_assert_eq(kl_os_list(os, &rq4, &l, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(l.n_objects, TOTAL - 1000);
    kl_listing_free(&l);
    for (int i = 0; i < TOTAL; i++) free(all[i]);
    free(pfx);
    cleanup(os);
}

Test(s3_objstore, wrong_secret_is_a_clear_error, .timeout = 60)
{
    need_rgw();
    kl_config c;
    rgw_config(&c);
    kl_error e = {0};
    cr_assert_eq(kl_config_set(&c, "s3", "secret_key", "definitely-not-the-secret", &e), KL_OK);
    kl_objstore *os;
    cr_assert_eq(kl_objstore_s3_new(&c.s3, &os, &e), KL_OK, "%s", e.msg);
    kl_config_free(&c);
    cr_assert_eq(kl_os_put(os, "s3t-wrong/x", "x", 1, 0, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "SignatureDoesNotMatch") && strstr(e.msg, "secret key"), "%s", e.msg);
    cr_assert(strstr(e.msg, "s3t-wrong/x") && strstr(e.msg, getenv("KL_S3_BUCKET")), "%s", e.msg);
    cr_assert_null(strstr(e.msg, "definitely-not-the-secret"), "secret leaked: %s", e.msg);
    kl_list_req rq = {.prefix = ""};
    kl_listing l;
    cr_assert_eq(kl_os_list(os, &rq, &l, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "SignatureDoesNotMatch"), "%s", e.msg);
    /* HEAD answers carry no body, but must still not look like "missing". */
    uint64_t size;
    cr_assert_eq(kl_os_head(os, "s3t-wrong/x", &size, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "403") && strstr(e.msg, "credentials"), "%s", e.msg);
    kl_os_destroy(os);
}

Test(s3_objstore, unknown_access_key_is_a_clear_error, .timeout = 60)
{
    need_rgw();
    kl_config c;
    rgw_config(&c);
    kl_error e = {0};
    cr_assert_eq(kl_config_set(&c, "s3", "access_key", "NOSUCHACCESSKEY", &e), KL_OK);
    kl_objstore *os;
    cr_assert_eq(kl_objstore_s3_new(&c.s3, &os, &e), KL_OK, "%s", e.msg);
    kl_config_free(&c);
    uint8_t *d;
    size_t n;
    cr_assert_eq(kl_os_get(os, "s3t-wrong/x", 0, UINT64_MAX, &d, &n, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "InvalidAccessKeyId") && strstr(e.msg, "NOSUCHACCESSKEY"), "%s", e.msg);
    kl_os_destroy(os);
}

Test(s3_objstore, missing_bucket_is_a_clear_error, .timeout = 60)
{
    need_rgw();
    kl_config c;
    rgw_config(&c);
    kl_error e = {0};
    cr_assert_eq(kl_config_set(&c, "s3", "bucket_name", "kl-no-such-bucket-4711", &e), KL_OK);
    kl_objstore *os;
    cr_assert_eq(kl_objstore_s3_new(&c.s3, &os, &e), KL_OK, "%s", e.msg);
    kl_config_free(&c);
    cr_assert_eq(kl_os_put(os, "x", "x", 1, 0, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "kl-no-such-bucket-4711") && strstr(e.msg, "does not exist"), "%s",
              e.msg);
    uint8_t *d;
    size_t n;
    cr_assert_eq(kl_os_get(os, "x", 0, UINT64_MAX, &d, &n, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "NoSuchBucket"), "%s", e.msg);
    kl_list_req rq = {.prefix = ""};
    kl_listing l;
    cr_assert_eq(kl_os_list(os, &rq, &l, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "does not exist"), "%s", e.msg);
    kl_os_destroy(os);
}

Test(s3_objstore, open_s3_url, .timeout = 60)
{
    need_rgw();
    kl_config c;
    rgw_config(&c);
    kl_error e = {0};
    char url[300];
    snprintf(url, sizeof url, "s3://%s/s3t-open-%d/", getenv("KL_S3_BUCKET"), (int)getpid());
    kl_objstore *os;
    cr_assert_eq(kl_objstore_open(url, &c, &os, &e), KL_OK, "%s", e.msg);
    char want[64];
    snprintf(want, sizeof want, "s3t-open-%d/", (int)getpid());
    cr_assert_str_eq(c.store.object_prefix, want);
    cr_assert(c.has_s3);
    put_str(os, "s3t-open-probe", "p");
    assert_content(os, "s3t-open-probe", 0, UINT64_MAX, "p");
    const char *one[] = {"s3t-open-probe"};
    cr_assert_eq(kl_os_del(os, one, 1, &e), KL_OK, "%s", e.msg);
    kl_os_destroy(os);
    kl_config_free(&c);
}
