/* objcache.h -- the reader's cache of fetched, decoded data objects.
 * Objects are immutable under a given name, so a cached copy is never
 * stale; paging through a key then costs one GET per object, not one per
 * page.  Bounded by bytes (LRU); entries are reference-counted so a page
 * being built keeps its object alive across an eviction.  Thread-safe. */
#ifndef KL_OBJCACHE_H
#define KL_OBJCACHE_H
#include "klstore.h"

typedef struct kl_cobj {
    int refs;              /* guarded by the cache mutex */
    char *name;
    uint8_t *body;
    size_t len;
    kl_record *recs;       /* decoded, pointing into body */
    size_t n;
    struct kl_cobj *older, *newer;
    int cached;
} kl_cobj;

typedef struct kl_objcache kl_objcache;

kl_objcache *kl_objcache_new(uint64_t max_bytes);
void kl_objcache_free(kl_objcache *c);
/* The decoded object `name` (described by m), fetched on a miss.  The
 * caller must kl_objcache_release it.  KL_ENOTFOUND if it vanished
 * (compacted away), KL_EBADDATA if its body does not match its name. */
kl_status kl_objcache_get(kl_objcache *c, kl_objstore *os, const char *name,
                          const kl_object_meta *m, kl_cobj **out, kl_error *err);
void kl_objcache_release(kl_objcache *c, kl_cobj *o);
#endif
