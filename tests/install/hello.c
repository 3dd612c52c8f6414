/* hello.c -- a program a user of the installed libklstore would write:
 * built by tests/install/test_install.c against a staged install through
 * `pkg-config klstore` only (no source tree), then run.  It appends three
 * records (one a retried duplicate by nonce) to a local store given as
 * argv[1], pages them back, and prints them and the library's version. */
#include <klstore.h>
#include <stdio.h>

static int check(kl_status st, const kl_error *err)
{
    if (st == KL_OK) return 0;
    fprintf(stderr, "hello: %s: %s\n", kl_status_str(st), err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    kl_error err = {0};
    kl_objstore *os = NULL;
    kl_writer *w = NULL;
    kl_reader *r = NULL;
    kl_store_config cfg;
    kl_store_config_init(&cfg);
    int rc = check(kl_objstore_local_new(argv[1], &os, &err), &err) ||
             check(kl_store_writer_new(os, &cfg, &w, &err), &err) ||
             check(kl_store_reader_new(os, &cfg, &r, &err), &err);
    kl_insertion recs[3] = {
        {.data = "hello", .len = 5, .has_nonce = 1, .nonce = 7},
        {.data = "again", .len = 5, .has_nonce = 1, .nonce = 7}, /* a retry: dropped */
        {.data = "world", .len = 5, .has_nonce = 1, .nonce = 8},
    };
    if (!rc) rc = check(kl_append(w, "app", "web-1", recs, 3, &err), &err);
    kl_page page = {0};
    kl_start from = {.kind = KL_START_FIRST};
    if (!rc)
        rc =
            check(kl_read_first_page(r, "app", "web-1", KL_FORWARDS, &from, 10, &page, &err), &err);
    for (size_t i = 0; !rc && i < page.count; i++) {
        char nonce[40];
        printf("%llu %s %.*s\n", (unsigned long long)page.records[i].offset,
               kl_u128_str(page.records[i].nonce, nonce), (int)page.records[i].len,
               (const char *)page.records[i].data);
    }
    if (!rc) printf("libklstore %s\n", KL_VERSION);
    kl_page_free(&page);
    kl_reader_destroy(r);
    kl_writer_destroy(w);
    kl_os_destroy(os);
    return rc;
}
