/* s3_keys.c -- credentials as values (see s3_keys.h): copied with strdup,
 * wiped with OPENSSL_cleanse before they are freed, so that no secret
 * outlives its use in freed heap memory. */
#define _GNU_SOURCE
#include "s3/s3_keys.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void Kl_s3_wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void Kl_s3_creds_clear(kl_s3_creds *c)
{
    if (!c) return;
    Kl_s3_wipe_free(c->access_key);
    Kl_s3_wipe_free(c->secret_key);
    Kl_s3_wipe_free(c->token);
    memset(c, 0, sizeof *c);
}

kl_status Kl_s3_creds_copy(const kl_s3_creds *src, kl_s3_creds *dst, kl_error *err)
{
    memset(dst, 0, sizeof *dst);
    dst->access_key = strdup(src->access_key);
    dst->secret_key = strdup(src->secret_key);
    dst->token = src->token ? strdup(src->token) : NULL;
    dst->expires_ms = src->expires_ms;
    dst->source = src->source;
    if (!dst->access_key || !dst->secret_key || (src->token && !dst->token)) {
        Kl_s3_creds_clear(dst);
        return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
    }
    return KL_OK;
}

kl_status Kl_s3_creds_set(kl_s3_creds *c, const char *ak, const char *sk, const char *tok,
                          int64_t expires_ms, const char *source, kl_error *err)
{
    kl_s3_creds tmp = {(char *)ak, (char *)sk, (char *)(tok && *tok ? tok : NULL), expires_ms,
                       source};
    return Kl_s3_creds_copy(&tmp, c, err);
}
