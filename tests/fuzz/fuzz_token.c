/* fuzz_token.c -- read continuation tokens: any string is either refused
 * with KL_EBADTOKEN and a message, or parses to a position that makes the
 * same token again. */
#include "fuzz_common.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_str(data, size);
    kl_direction dir;
    uint64_t off, hint;
    kl_error err = {0};
    kl_status st = Kl_token_parse("ks", "key", s, &dir, &off, &hint, &err);
    if (st != KL_OK && (st != KL_EBADTOKEN || !err.msg[0])) abort();
    if (st == KL_OK) { /* canonical: the position makes the same token */
        char again[KL_TOKEN_MAX];
        Kl_token_make("ks", "key", dir, off, hint, again);
        if (strcmp(again, s) != 0) abort();
    }
    free(s);
    return 0;
}
