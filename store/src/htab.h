/* htab.h -- the library's one hash table: intrusive, chained, growing.
 *
 * Entries embed a kl_hnode and carry their own keys, so one table serves
 * the writer's key-state cache (keycache.c), the reader's object cache
 * (objcache.c) and the batching writer's per-thread key table without a
 * copy of the key or an allocation per entry.  The caller computes the
 * hash (Kl_hash, hash.h) and supplies equality at lookup; entries with
 * equal hashes are told apart by it.  The table grows (doubling) when it
 * holds as many entries as buckets; if that allocation fails the chains
 * just get longer, so insertion never fails.
 *
 * Not thread-safe: each owner guards its table with its own lock. */
#ifndef KL_HTAB_H
#define KL_HTAB_H
#include <stddef.h>
#include <stdint.h>

typedef struct kl_hnode {
    struct kl_hnode *next; /* chain, owned by the table */
    uint64_t hash;
} kl_hnode;

typedef struct kl_htab {
    kl_hnode **buckets;
    size_t n_buckets; /* a power of two */
    size_t count;
} kl_htab;

/* The entry of type T whose kl_hnode member `field` is at n. */
#define KL_HENTRY(n, T, field) ((T *)((char *)(n)-offsetof(T, field)))

/* 0, or -1 when out of memory.  `initial` is rounded up to a power of 2. */
int Kl_htab_init(kl_htab *t, size_t initial);
/* Frees the buckets only: the entries belong to the caller. */
void Kl_htab_free(kl_htab *t);
void Kl_htab_insert(kl_htab *t, kl_hnode *n, uint64_t hash);
/* n must be in t. */
void Kl_htab_remove(kl_htab *t, kl_hnode *n);
/* The first entry with this hash for which eq(entry, key) is true. */
kl_hnode *Kl_htab_find(const kl_htab *t, uint64_t hash,
                       int (*eq)(const kl_hnode *n, const void *key), const void *key);
#endif
