/* test_objstore.c -- the object-store contract, run against every store
 * (local directory, and S3 with KL_TEST_STORE=s3): what klstore relies on
 * is that LIST is S3's LIST, a missing object is KL_ENOTFOUND, and writes
 * are whole. */
#include "test_env.h"

static kt_store T;
static void setup(void) { kt_open(&T); }
static void teardown(void) { kt_close(&T); }
TestSuite(objstore, .init = setup, .fini = teardown);

static void put(const char *rest, const char *body)
{
    char *n = kt_name(&T, rest);
    kl_error err = {0};
    cr_assert_eq(kl_os_put(T.os, n, body, strlen(body), 0, &err), KL_OK, "put %s: %s", n, err.msg);
    free(n);
}

static char *get(const char *rest, uint64_t off, uint64_t len, kl_status *st)
{
    char *n = kt_name(&T, rest);
    uint8_t *d = NULL;
    size_t l = 0;
    kl_error err = {0};
    *st = kl_os_get(T.os, n, off, len, &d, &l, &err);
    free(n);
    if (*st) return NULL;
    char *s = malloc(l + 1);
    memcpy(s, d, l);
    s[l] = 0;
    free(d);
    return s;
}

Test(objstore, put_get_range_head_delete)
{
    kl_status st;
    put("a/b/c.bin", "hello world");
    char *s = get("a/b/c.bin", 0, UINT64_MAX, &st);
    cr_assert_str_eq(s, "hello world");
    free(s);
    s = get("a/b/c.bin", 6, 3, &st);
    cr_assert_str_eq(s, "wor");
    free(s);
    s = get("a/b/c.bin", 6, 1000, &st);
    cr_assert_str_eq(s, "world");
    free(s);
    put("a/b/c.bin", "replaced");
    s = get("a/b/c.bin", 0, UINT64_MAX, &st);
    cr_assert_str_eq(s, "replaced");
    free(s);
    char *n = kt_name(&T, "a/b/c.bin");
    uint64_t size = 0;
    cr_assert_eq(kl_os_head(T.os, n, &size, NULL), KL_OK);
    cr_assert_eq(size, 8);
    const char *names[] = {n};
    cr_assert_eq(kl_os_del(T.os, names, 1, NULL), KL_OK);
    cr_assert_eq(kl_os_del(T.os, names, 1, NULL), KL_OK, "deleting a missing object is fine");
    kl_error err = {0};
    cr_assert_eq(kl_os_head(T.os, n, &size, &err), KL_ENOTFOUND);
    free(n);
    cr_assert_null(get("a/b/c.bin", 0, UINT64_MAX, &st));
    cr_assert_eq(st, KL_ENOTFOUND);
    cr_assert_null(get("never/was", 0, UINT64_MAX, &st));
    cr_assert_eq(st, KL_ENOTFOUND);
}

Test(objstore, put_if_absent)
{
    char *n = kt_name(&T, "ks_config.ini");
    kl_error err = {0};
    cr_assert_eq(kl_os_put(T.os, n, "1", 1, KL_PUT_IF_ABSENT, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_os_put(T.os, n, "2", 1, KL_PUT_IF_ABSENT, &err), KL_EEXIST);
    kl_status st;
    char *s = get("ks_config.ini", 0, UINT64_MAX, &st);
    cr_assert_str_eq(s, "1", "the first writer wins");
    free(s);
    free(n);
}

static void list_all(const char *prefix_rest, const char *after_rest, int delim, size_t max,
                     char *out, size_t cap)
{
    char *prefix = kt_name(&T, prefix_rest);
    char *after = after_rest ? kt_name(&T, after_rest) : NULL;
    char *cont = NULL;
    size_t plen = strlen(T.prefix);
    out[0] = 0;
    int pages = 0;
    do {
        kl_list_req req = {.prefix = prefix,
                           .start_after = after,
                           .delimiter = delim,
                           .max_keys = max,
                           .continuation = cont};
        kl_listing l;
        kl_error err = {0};
        cr_assert_eq(kl_os_list(T.os, &req, &l, &err), KL_OK, "%s", err.msg);
        cr_assert_leq(l.n_objects + l.n_prefixes, max ? max : 1000);
        /* Merge objects and prefixes in name order, as S3 presents them. */
        size_t i = 0, j = 0;
        while (i < l.n_objects || j < l.n_prefixes) {
            const char *s;
            if (j >= l.n_prefixes ||
                (i < l.n_objects && strcmp(l.objects[i].name, l.prefixes[j]) < 0))
                s = l.objects[i++].name;
            else
                s = l.prefixes[j++];
            strncat(out, s + plen, cap - strlen(out) - 2);
            strcat(out, " ");
        }
        free(cont);
        cont = l.next ? strdup(l.next) : NULL;
        kl_listing_free(&l);
        cr_assert_lt(++pages, 100);
    } while (cont);
    free(prefix);
    free(after);
}

Test(objstore, list_order_prefix_delimiter_paging)
{
    /* '-' (0x2d) sorts before '/' (0x2f): a recursive listing must be in
     * byte order of whole names, not directory order. */
    put("ks/k/data_2", "x");
    put("ks/k/data_1", "x");
    put("ks/k/watermark", "x");
    put("ks/k-2/data_1", "x");
    put("ks_config.ini", "x");
    put("other/x", "x");
    char out[2048];
    list_all("ks", NULL, 0, 0, out, sizeof out);
    cr_assert_str_eq(out, "ks/k-2/data_1 ks/k/data_1 ks/k/data_2 ks/k/watermark ks_config.ini ");
    list_all("", NULL, '/', 0, out, sizeof out);
    cr_assert_str_eq(out, "ks/ ks_config.ini other/ ");
    list_all("ks/", NULL, '/', 0, out, sizeof out);
    cr_assert_str_eq(out, "ks/k-2/ ks/k/ ");
    list_all("ks/k/data_", "ks/k/data_1", 0, 0, out, sizeof out);
    cr_assert_str_eq(out, "ks/k/data_2 ");
    list_all("ks/k/", NULL, 0, 1, out, sizeof out);
    cr_assert_str_eq(out, "ks/k/data_1 ks/k/data_2 ks/k/watermark ", "paging one at a time");
    list_all("nothing/", NULL, '/', 0, out, sizeof out);
    cr_assert_str_eq(out, "");
}

Test(objstore, empty_prefix_dirs_are_not_listed)
{
    put("ks/k/a", "x");
    char *n = kt_name(&T, "ks/k/a");
    const char *names[] = {n};
    cr_assert_eq(kl_os_del(T.os, names, 1, NULL), KL_OK);
    free(n);
    char out[256];
    list_all("", NULL, '/', 0, out, sizeof out);
    cr_assert_str_eq(out, "", "S3 has no directories: nothing left means nothing listed");
}

Test(objstore, unusual_names)
{
    put("ks/key with space/d", "1");
    put("ks/ünï=+@/d", "2");
    char out[512];
    list_all("ks/", NULL, '/', 0, out, sizeof out);
    cr_assert_str_eq(out, "ks/key with space/ ks/ünï=+@/ ");
    kl_status st;
    char *s = get("ks/ünï=+@/d", 0, UINT64_MAX, &st);
    cr_assert_str_eq(s, "2");
    free(s);
}

/* The counters kl_os_stats_read reports, as "op calls [status=n...]" lines
 * for the operations whose counts changed since `before`. */
static char *stats_delta(const kl_os_stats *before, const kl_os_stats *after)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    for (int op = 0; op < KL_OP_COUNT; op++) {
        uint64_t calls = after->calls[op] - before->calls[op];
        if (!calls) continue;
        fprintf(f, "%s %llu", kl_os_op_name(op), (unsigned long long)calls);
        for (int st = 0; st < KL_STATUS_COUNT; st++) {
            uint64_t n = after->failed[op][st] - before->failed[op][st];
            if (n) fprintf(f, " %s=%llu", kl_status_name(st), (unsigned long long)n);
        }
        cr_assert_gt(after->seconds[op], before->seconds[op], "time of %s", kl_os_op_name(op));
        fputc('\n', f);
    }
    fprintf(f, "put %llu bytes, got %llu bytes\n",
            (unsigned long long)(after->bytes_put - before->bytes_put),
            (unsigned long long)(after->bytes_got - before->bytes_got));
    fclose(f);
    return out;
}

Test(objstore, requests_are_counted_by_operation_and_outcome)
{
    kl_os_stats before, after;
    kl_os_stats_read(T.os, &before);
    kl_status st;
    put("s/one", "12345");
    put("s/two", "1234567890");
    free(get("s/one", 0, UINT64_MAX, &st));
    free(get("s/two", 2, 3, &st));
    cr_assert_null(get("s/missing", 0, UINT64_MAX, &st));
    char *n = kt_name(&T, "s/one"), *pfx = kt_name(&T, "s/");
    uint64_t size;
    cr_assert_eq(kl_os_head(T.os, n, &size, NULL), KL_OK);
    kl_error err = {0};
    cr_assert_eq(kl_os_put(T.os, n, "x", 1, KL_PUT_IF_ABSENT, &err), KL_EEXIST);
    kl_list_req req = {.prefix = pfx};
    kl_listing l = {0};
    cr_assert_eq(kl_os_list(T.os, &req, &l, NULL), KL_OK);
    kl_listing_free(&l);
    const char *v[] = {n};
    cr_assert_eq(kl_os_del(T.os, v, 1, NULL), KL_OK);
    kl_os_stats_read(T.os, &after);
    char *got = stats_delta(&before, &after);
    cr_assert_str_eq(got, "put 3 exists=1\n"
                          "get 3 not_found=1\n"
                          "head 1\n"
                          "list 1\n"
                          "del 1\n"
                          "put 15 bytes, got 8 bytes\n");
    free(got);
    free(n);
    free(pfx);
}
