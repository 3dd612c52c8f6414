/* buf.c -- growable byte buffer (see buf.h).  Doubling growth keeps
 * appending a record amortised O(1). */
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int Kl_buf_reserve(kl_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    size_t need = b->len + extra;
    if (need < b->len) return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int Kl_buf_append(kl_buf *b, const void *p, size_t n)
{
    if (Kl_buf_reserve(b, n) != 0) return -1;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

uint8_t *Kl_buf_steal(kl_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void Kl_buf_free(kl_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int Kl_body_eq(const kl_body *b, const uint8_t *p, size_t len)
{
    if (b->len != len) return 0;
    for (size_t i = 0; i < b->n; p += b->v[i].iov_len, i++)
        if (b->v[i].iov_len && memcmp(p, b->v[i].iov_base, b->v[i].iov_len) != 0) return 0;
    return 1;
}
