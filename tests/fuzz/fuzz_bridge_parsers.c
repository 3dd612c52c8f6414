/* fuzz_bridge_parsers.c -- the bridge's parser specifications and their
 * evaluation against arbitrary Kafka keys: a spec is taken or refused with
 * a message; evaluating never reads outside the message. */
#include "fuzz_common.h"
#include "parsers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p[2];
    fuzz_split(data, size, p, 2);
    for (int numeric = 0; numeric < 2; numeric++) {
        br_parser bp;
        char err[512] = "";
        if (br_parser_parse(p[0], numeric, &bp, err, sizeof err) != 0) {
            if (!err[0]) abort();
            continue;
        }
        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, "ks", -1, p[1], (ssize_t)strlen(p[1]));
        rd_kafka_header_add(h, "empty", -1, NULL, 0);
        br_msg m = {
            .key = p[1], .key_len = strlen(p[1]), .partition = 3, .offset = 42, .headers = h};
        if (numeric) {
            int has;
            kl_u128 nonce;
            int64_t ts;
            br_eval_nonce(&bp, &m, &has, &nonce, err, sizeof err);
            br_eval_timestamp(&bp, &m, &has, &ts, err, sizeof err);
        } else {
            char buf[KL_NAME_MAX + 1];
            const char *out;
            if (br_eval_name(&bp, &m, "key", buf, &out, err, sizeof err) == 0 &&
                kl_validate_name("key", out, NULL) != KL_OK)
                abort(); /* a name the store would refuse */
        }
        br_parser_free(&bp);
        rd_kafka_headers_destroy(h);
    }
    free(p[0]);
    free(p[1]);
    return 0;
}
