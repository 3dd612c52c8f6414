/* token.c -- making and checking continuation tokens (see token.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hash.h"
#include "token.h"

static uint32_t check(const char *keyspace, const char *key, char d, uint64_t offset) {
    uint64_t h = kl_hash(keyspace, strlen(keyspace) + 1, KL_HASH_SEED);
    h = kl_hash(key, strlen(key) + 1, h);
    h = kl_hash(&d, 1, h);
    h = kl_hash(&offset, sizeof offset, h);
    return (uint32_t)(h ^ (h >> 32));
}

void kl_token_make(const char *keyspace, const char *key, kl_direction dir,
                   uint64_t offset, char out[KL_TOKEN_MAX]) {
    char d = dir == KL_BACKWARDS ? 'b' : 'f';
    snprintf(out, KL_TOKEN_MAX, "kl1.%c.%" PRIu64 ".%08" PRIx32, d, offset,
             check(keyspace, key, d, offset));
}

kl_status kl_token_parse(const char *keyspace, const char *key, const char *tok,
                         kl_direction *dir, uint64_t *offset, kl_error *err) {
    char d = 0, tail = 0;
    uint64_t off = 0;
    uint32_t sum = 0;
    int used = 0;
    if (!tok || strlen(tok) >= KL_TOKEN_MAX ||
        sscanf(tok, "kl1.%c.%" SCNu64 ".%8" SCNx32 "%n%c", &d, &off, &sum, &used, &tail) != 3 ||
        (d != 'f' && d != 'b') || tok[used] != 0 || !strchr("0123456789", tok[6]))
        return kl_seterr(err, KL_EBADTOKEN, "continuation token '%.40s' is malformed",
                         tok ? tok : "(null)");
    char canon[KL_TOKEN_MAX];
    kl_token_make(keyspace, key, d == 'b' ? KL_BACKWARDS : KL_FORWARDS, off, canon);
    if (strcmp(canon, tok) != 0)
        return kl_seterr(err, KL_EBADTOKEN, "continuation token '%.40s' does not "
                         "belong to %s/%s (or was altered)", tok, keyspace, key);
    *dir = d == 'b' ? KL_BACKWARDS : KL_FORWARDS;
    *offset = off;
    return KL_OK;
}
