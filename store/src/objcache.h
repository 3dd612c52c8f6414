/* objcache.h -- the reader's cache of fetched data objects.
 *
 * Objects are immutable under a given name, so a cached copy is never
 * stale; paging through a key then costs one GET per object, not one per
 * page.  Bounded by bytes (LRU).  Entries are reference-counted atomically:
 * pages point straight into object bodies (no payload copies) and hold a
 * reference, so a page stays valid after its object is evicted and even
 * after the reader is destroyed.  A fetch in flight is visible to other
 * threads, which wait for it instead of fetching the same object twice
 * (that is what makes readahead pay).  Thread-safe. */
#ifndef KL_OBJCACHE_H
#define KL_OBJCACHE_H
#include <stdatomic.h>

#include "klstore.h"

typedef struct kl_cobj {
    atomic_int refs;
    char *name;
    uint64_t name_hash;            /* Kl_hash of name */
    kl_hnode h;                    /* in the cache's table while linked (guarded by it) */
    kl_mapping body;               /* mapped by the store, or a malloc'd GET */
    size_t len;                    /* bytes charged to the cache (the body) */
    uint64_t first, count;         /* offsets its name promises (objwalk.h reads them) */
    _Atomic uint64_t hint;         /* where the last walk stopped (objwalk.c) */
    struct kl_cobj *older, *newer; /* LRU links, guarded by the cache */
    int linked;                    /* in the LRU list (guarded by the cache) */
    int loading;                   /* being fetched by another thread */
    kl_status load_st;             /* how that fetch ended */
} kl_cobj;

typedef struct kl_objcache kl_objcache;

kl_objcache *Kl_objcache_new(uint64_t max_bytes);
void Kl_objcache_free(kl_objcache *c);
/* The object `name` (described by m), fetched on a miss.  The caller owns
 * one reference (Kl_cobj_release).  KL_ENOTFOUND if it vanished (compacted
 * away), KL_EBADDATA if its size cannot match m (the records themselves
 * are checked as they are read, objwalk.h). */
kl_status Kl_objcache_get(kl_objcache *c, kl_objstore *os, const char *name,
                          const kl_object_meta *m, kl_cobj **out, kl_error *err);
/* Fetches without caching; one reference for the caller. */
kl_status Kl_cobj_fetch(kl_objstore *os, const char *name, const kl_object_meta *m, kl_cobj **out,
                        kl_error *err);
/* Drops o from the cache (if it is there) ahead of its LRU turn: for an
 * object a walk has read through, whose bytes nobody is likely to want
 * again soon.  The caller's own reference stays valid. */
void Kl_objcache_drop(kl_objcache *c, kl_cobj *o);
/* Lookups that found the object (hits) or fetched it, and what is held. */
void Kl_objcache_stats(kl_objcache *c, kl_cache_stats *out);
void Kl_cobj_retain(kl_cobj *o);
void Kl_cobj_release(kl_cobj *o);
#endif
