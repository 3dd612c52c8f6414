/* buf.h -- a growable byte buffer, the one dynamic array the codec and the
 * object stores build bodies in.  Plain struct, caller-owned. */
#ifndef KL_BUF_H
#define KL_BUF_H
#include <stddef.h>
#include <stdint.h>

#include "klstore.h"

typedef struct kl_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} kl_buf;

/* Ensures room for `extra` more bytes.  Returns 0, or -1 on ENOMEM. */
int Kl_buf_reserve(kl_buf *b, size_t extra);
int Kl_buf_append(kl_buf *b, const void *p, size_t n);
/* Hands the bytes to the caller (free(3)) and empties b. */
uint8_t *Kl_buf_steal(kl_buf *b, size_t *len);
void Kl_buf_free(kl_buf *b);

/* A one-piece body for a call's arguments: kl_os_claim(os, c, o,
 * KL_BODY_ONE(p, len), ...).  C only (compound literals, which live until
 * the end of the enclosing block); l is evaluated twice. */
#define KL_BODY_ONE(p, l) (&(const kl_body){&(const struct iovec){(void *)(p), (l)}, 1, (l)})

/* Whether body b holds exactly the `len` bytes at p. */
int Kl_body_eq(const kl_body *b, const uint8_t *p, size_t len);

#endif
