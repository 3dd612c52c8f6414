/* s3_keys.h -- a set of AWS credentials as a value: who holds the keys
 * (kl_s3_creds), copying them, wiping them.
 *
 * At the bottom of the credential code, so that the chain (s3_creds.c)
 * and every source it asks can hand over the same type without any of
 * them calling back up into the chain. */
#ifndef KL_S3_KEYS_H
#define KL_S3_KEYS_H

#include <stdint.h>

#include "klstore.h"

typedef struct kl_s3_creds {
    char *access_key;
    char *secret_key;
    char *token;        /* session token, or NULL */
    int64_t expires_ms; /* ms since the epoch; 0 = does not expire */
    const char *source; /* static text naming where they came from */
} kl_s3_creds;

/* Wipes the secrets and frees the strings; c may be partly filled. */
void Kl_s3_creds_clear(kl_s3_creds *c);

/* *dst = a copy of *src (zeroed first).  KL_ENOMEM naming "S3
 * credentials" when out of memory, with *dst left empty. */
kl_status Kl_s3_creds_copy(const kl_s3_creds *src, kl_s3_creds *dst, kl_error *err);

/* *c = copies of borrowed strings; an empty or NULL token is none. */
kl_status Kl_s3_creds_set(kl_s3_creds *c, const char *ak, const char *sk, const char *tok,
                          int64_t expires_ms, const char *source, kl_error *err);

/* OPENSSL_cleanse then free; NULL is fine. */
void Kl_s3_wipe_free(char *s);

#endif /* KL_S3_KEYS_H */
