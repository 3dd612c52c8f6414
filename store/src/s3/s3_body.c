/* s3_body.c -- the bounded, wiped answer buffer of s3_body.h. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "s3_body.h"

size_t Kl_s3_body_write(char *p, size_t sz, size_t nm, void *ud)
{
    kl_s3_body *b = ud;
    size_t n = sz * nm;
    if (b->len + n > b->max) {
        b->too_big = 1;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    char *d = realloc(b->data, b->len + n + 1);
    if (!d) return 0;
    memcpy(d + b->len, p, n);
    b->data = d;
    b->len += n;
    d[b->len] = '\0';
    return n;
}

void Kl_s3_body_wipe(kl_s3_body *b)
{
    if (b->data) OPENSSL_cleanse(b->data, b->len);
    free(b->data);
    *b = (kl_s3_body){.max = b->max};
}
