/* hash.h -- FNV-1a: the one stable hash klstore uses (key -> writer
 * thread, key -> lock stripe, continuation-token checks).  Stable across
 * runs and machines, which std hashes with random seeds are not. */
#ifndef KL_HASH_H
#define KL_HASH_H
#include <stddef.h>
#include <stdint.h>

#include "klstore.h"

/* kl_hash (klstore.h), inline for the hot paths. */
static inline uint64_t Kl_hash(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
#endif
