/* token.h -- continuation tokens: opaque to callers, stateless for us.
 * A token is "kl1.{f|b}.{offset}.{hint}.{check}": the next offset to read,
 * a hint (the first offset of the object holding it, 0 = none) that lets
 * the next page find that object with one LIST instead of a search, and a
 * hash over keyspace, key, direction, offset and hint.  A token pasted onto
 * another key, or edited, is KL_EBADTOKEN instead of silently reading the
 * wrong place; a stale hint (after a compaction) only costs a search. */
#ifndef KL_TOKEN_H
#define KL_TOKEN_H
#include "klstore.h"

#define KL_TOKEN_MAX 80

void Kl_token_make(const char *keyspace, const char *key, kl_direction dir, uint64_t offset,
                   uint64_t hint, char out[KL_TOKEN_MAX]);
kl_status Kl_token_parse(const char *keyspace, const char *key, const char *tok, kl_direction *dir,
                         uint64_t *offset, uint64_t *hint, kl_error *err);
#endif
