/* token.h -- continuation tokens: opaque to callers, stateless for us.
 * A token is "kl1.{f|b}.{offset}.{check}" where check is a hash over the
 * keyspace, key, direction and offset: a token pasted onto another key, or
 * edited, is KL_EBADTOKEN instead of silently reading the wrong place. */
#ifndef KL_TOKEN_H
#define KL_TOKEN_H
#include "klstore.h"

#define KL_TOKEN_MAX 64

void kl_token_make(const char *keyspace, const char *key, kl_direction dir,
                   uint64_t offset, char out[KL_TOKEN_MAX]);
kl_status kl_token_parse(const char *keyspace, const char *key, const char *tok,
                         kl_direction *dir, uint64_t *offset, kl_error *err);
#endif
