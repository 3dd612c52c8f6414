/* fuzz_codec.c -- the record codec on arbitrary object bodies: decoding
 * must accept exactly the well-framed bodies its name promises, and never
 * read outside them.  The first 8 bytes choose the promised record count. */
#include "codec.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8) return 0;
    uint64_t count = (Kl_le64(data) % 64) + 1;
    const uint8_t *body = data + 8;
    size_t len = size - 8;
    kl_object_meta m = {.first_offset = 1, .last_offset = count, .size = len};
    kl_record *recs = NULL;
    size_t n = 0;
    kl_error err = {0};
    if (Kl_codec_decode(body, len, &m, "fuzz", &recs, &n, &err) == KL_OK) {
        if (n != count) abort();
        for (size_t i = 0; i < n; i++)
            if ((const uint8_t *)recs[i].data < body ||
                (const uint8_t *)recs[i].data + recs[i].len > body + len)
                abort();
    } else if (!err.msg[0]) {
        abort(); /* every refusal names its reason */
    }
    free(recs);
    return 0;
}
