/* fuzz_s3_xml.c -- the S3 documents we read (ListObjectsV2, Error,
 * DeleteObjects results) and the listing positions we hand back: any body
 * is either read or refused, bounded, never crashing. */
#define _GNU_SOURCE
#include "fuzz_common.h"
#include "s3/s3_listpage.h"
#include "s3/s3_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    kl_listing l;
    kl_error err = {0};
    if (Kl_s3_xml_parse_list(body, size, &l, &err) == KL_OK) {
        kl_s3_list_pos pos = {0};
        if (Kl_s3_list_page_check(&pos, NULL, &l, "fuzz", &err) == KL_OK && l.next) {
            kl_s3_list_pos back;
            if (Kl_s3_list_pos_parse(l.next, &back, &err) != KL_OK) abort();
            Kl_s3_list_pos_free(&back);
        }
        kl_listing_free(&l);
    }
    kl_s3_xml_error x;
    Kl_s3_xml_parse_error(body, size, &x);
    size_t failed;
    Kl_s3_xml_parse_delete(body, size, &failed, &x, &err);
    /* The names as a DeleteObjects body: made or refused, and what is made
     * is a document we can read back. */
    char *names[2];
    fuzz_split(data, size, names, 2);
    size_t blen;
    char *req = Kl_s3_xml_delete_body((const char *const *)names, 2, &blen, &err);
    if (req && blen > 0 && !memmem(req, blen, "<Delete", 7)) abort();
    free(req);
    free(names[0]);
    free(names[1]);
    char *s = fuzz_str(data, size);
    kl_s3_list_pos pos;
    if (Kl_s3_list_pos_parse(s, &pos, &err) == KL_OK) Kl_s3_list_pos_free(&pos);
    free(s);
    return 0;
}
