/* htab.c -- the library's one hash table (klstore.h kl_htab) and its
 * hash.  Bucket index is the hash's low bits: callers that also split by
 * the high bits (the batching writer picks a thread with them) keep all
 * buckets in use. */
#include <stdlib.h>

#include "hash.h"

uint64_t kl_hash(const void *p, size_t n, uint64_t h) { return Kl_hash(p, n, h); }

int kl_htab_init(kl_htab *t, size_t initial)
{
    size_t n = 8;
    while (n < initial) n *= 2;
    t->buckets = calloc(n, sizeof *t->buckets);
    t->n_buckets = t->buckets ? n : 0;
    t->count = 0;
    return t->buckets ? 0 : -1;
}

void kl_htab_free(kl_htab *t)
{
    free(t->buckets);
    *t = (kl_htab){0};
}

static void grow(kl_htab *t)
{
    size_t n = t->n_buckets ? t->n_buckets * 2 : 8;
    kl_hnode **b = calloc(n, sizeof *b);
    if (!b) return; /* longer chains, still correct */
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (kl_hnode *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = n;
}

int kl_htab_insert(kl_htab *t, kl_hnode *n, uint64_t hash)
{
    if (t->count >= t->n_buckets) grow(t);
    if (t->n_buckets == 0) return -1; /* a zeroed table, out of memory */
    kl_hnode **head = &t->buckets[hash & (t->n_buckets - 1)];
    n->hash = hash;
    n->next = *head;
    *head = n;
    t->count++;
    return 0;
}

void kl_htab_remove(kl_htab *t, kl_hnode *n)
{
    kl_hnode **pp = &t->buckets[n->hash & (t->n_buckets - 1)];
    while (*pp != n) pp = &(*pp)->next;
    *pp = n->next;
    n->next = NULL;
    t->count--;
}

kl_hnode *kl_htab_find(const kl_htab *t, uint64_t hash,
                       int (*eq)(const kl_hnode *n, const void *key), const void *key)
{
    if (t->n_buckets == 0) return NULL;
    for (kl_hnode *e = t->buckets[hash & (t->n_buckets - 1)]; e; e = e->next)
        if (e->hash == hash && eq(e, key)) return e;
    return NULL;
}
