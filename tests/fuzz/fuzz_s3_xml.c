/* fuzz_s3_xml.c -- the S3 documents we read (ListObjectsV2, Error,
 * DeleteObjects results) and the listing positions we hand back: any body
 * is either read or refused, bounded, never crashing. */
#include "fuzz_common.h"
#include "s3/s3_listpage.h"
#include "s3/s3_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *body = (const char *)data;
    kl_listing l;
    kl_error err = {0};
    if (kl_s3_xml_parse_list(body, size, &l, &err) == KL_OK) {
        kl_s3_list_pos pos = {0};
        if (kl_s3_list_page_check(&pos, NULL, &l, "fuzz", &err) == KL_OK && l.next) {
            kl_s3_list_pos back;
            if (kl_s3_list_pos_parse(l.next, &back, &err) != KL_OK) abort();
            kl_s3_list_pos_free(&back);
        }
        kl_listing_free(&l);
    }
    kl_s3_xml_error x;
    kl_s3_xml_parse_error(body, size, &x);
    char *s = fuzz_str(data, size);
    kl_s3_list_pos pos;
    if (kl_s3_list_pos_parse(s, &pos, &err) == KL_OK) kl_s3_list_pos_free(&pos);
    free(s);
    return 0;
}
