/* token.c -- making and checking continuation tokens (see token.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hash.h"
#include "token.h"

static uint32_t check(const char *keyspace, const char *key, char d, uint64_t offset, uint64_t hint)
{
    uint64_t h = Kl_hash(keyspace, strlen(keyspace) + 1, KL_HASH_SEED);
    h = Kl_hash(key, strlen(key) + 1, h);
    h = Kl_hash(&d, 1, h);
    h = Kl_hash(&offset, sizeof offset, h);
    h = Kl_hash(&hint, sizeof hint, h);
    return (uint32_t)(h ^ (h >> 32));
}

void Kl_token_make(const char *keyspace, const char *key, kl_direction dir, uint64_t offset,
                   uint64_t hint, char out[KL_TOKEN_MAX])
{
    char d = dir == KL_BACKWARDS ? 'b' : 'f';
    snprintf(out, KL_TOKEN_MAX, "kl1.%c.%" PRIu64 ".%" PRIu64 ".%08" PRIx32, d, offset, hint,
             check(keyspace, key, d, offset, hint));
}

kl_status Kl_token_parse(const char *keyspace, const char *key, const char *tok, kl_direction *dir,
                         uint64_t *offset, uint64_t *hint, kl_error *err)
{
    char d = 0, tail = 0;
    uint64_t off = 0, h = 0;
    uint32_t sum = 0;
    int used = 0;
    if (!tok || strlen(tok) >= KL_TOKEN_MAX ||
        sscanf(tok, "kl1.%c.%" SCNu64 ".%" SCNu64 ".%8" SCNx32 "%n%c", &d, &off, &h, &sum, &used,
               &tail) != 4 ||
        (d != 'f' && d != 'b') || tok[used] != 0)
        return kl_seterr(err, KL_EBADTOKEN, "continuation token '%.40s' is malformed",
                         tok ? tok : "(null)");
    /* Canonical form only (no signs, spaces or leading zeros): rebuild and
     * compare, which also verifies the check. */
    char canon[KL_TOKEN_MAX];
    Kl_token_make(keyspace, key, d == 'b' ? KL_BACKWARDS : KL_FORWARDS, off, h, canon);
    if (strcmp(canon, tok) != 0)
        return kl_seterr(err, KL_EBADTOKEN,
                         "continuation token '%.40s' does not "
                         "belong to %s/%s (or was altered)",
                         tok, keyspace, key);
    *dir = d == 'b' ? KL_BACKWARDS : KL_FORWARDS;
    *offset = off;
    *hint = h;
    return KL_OK;
}
