/* keyindex.h -- finding a key's data objects with few LIST requests.
 *
 * A key's objects are named so that LIST order is offset order, and a LIST
 * "start-after {dir}data_o{X:020}" returns exactly the objects whose first
 * offset is >= X.  That makes every search here a binary search over the
 * offset space costing O(log n) LISTs (each LIST also returns up to a page
 * of following objects, so a small key resolves in one).  No search ever
 * lists a whole key.
 *
 * Concurrent compaction may leave a merged object next to the objects it
 * replaces (same first offset, overlapping ranges) or make a listed object
 * vanish; callers that walk objects track the next wanted offset and
 * re-seek on KL_ENOTFOUND. */
#ifndef KL_KEYINDEX_H
#define KL_KEYINDEX_H
#include "klstore.h"

/* The listing pages one operation has seen -- one read finds the key's
 * end, then a timestamp, then walks -- so that a later probe falling
 * inside an earlier page is answered without a LIST.  For one operation a
 * page is as good as a fresh LIST: objects are immutable, and what a page
 * a few milliseconds old misses, callers cope with as with any listing.
 * A zeroed struct is empty; free with Kl_index_pages_free.  Not
 * thread-safe.  Functions below take one (or NULL: no caching). */
#define KL_INDEX_PAGES 12 /* a key's end and a search in it: 2 x log2(pages) */
typedef struct kl_index_pages {
    struct kl_index_page {
        uint64_t from;     /* the page lists first offsets >= from */
        kl_object_meta *v; /* raw, in LIST order */
        size_t n;
        int more; /* the LIST was truncated after v[n-1] */
    } p[KL_INDEX_PAGES];
    unsigned next; /* the slot the next page replaces */
} kl_index_pages;
void Kl_index_pages_free(kl_index_pages *pc);

/* A predicate over objects, monotone in offset order (false...true). */
typedef int (*kl_obj_pred)(const kl_object_meta *m, void *ctx);

/* Lists objects with first offset >= from, in offset order, at most max
 * (0 = all), deduplicating overlaps left by a compaction (the covering
 * object wins).  *more is set when objects remain beyond what was returned. */
kl_status Kl_index_list(kl_objstore *os, const char *dir, uint64_t from, size_t max,
                        kl_object_meta **out, size_t *n, int *more, kl_error *err);

/* Kl_index_list of everything from `from`, and also the objects it dropped
 * as covered by another (*covered, malloc'd): leftovers of concurrent
 * merges, the same bytes as what covers them. */
kl_status Kl_index_list_covered(kl_objstore *os, const char *dir, uint64_t from,
                                kl_object_meta **out, size_t *n, kl_object_meta **covered,
                                size_t *n_covered, kl_error *err);

/* The object with the highest offsets.  *found = 0 for a key without data. */
kl_status Kl_index_last(kl_objstore *os, kl_index_pages *pc, const char *dir, int *found,
                        kl_object_meta *out, kl_error *err);

/* The first object for which pred holds, searching first offsets in
 * [1, hi] (hi = 0: the whole key).  `guess`, if not 0, is probed first
 * (a hint such as a prior pointer).  `exact`, if given, ends the search as
 * soon as a candidate satisfies it. */
kl_status Kl_index_find(kl_objstore *os, kl_index_pages *pc, const char *dir, kl_obj_pred pred,
                        kl_obj_pred exact, void *ctx, uint64_t hi, uint64_t guess, int *found,
                        kl_object_meta *out, kl_error *err);

/* The object holding `offset` (guess: a likely first offset, or 0). */
kl_status Kl_index_seek_offset(kl_objstore *os, kl_index_pages *pc, const char *dir,
                               uint64_t offset, uint64_t guess, int *found, kl_object_meta *out,
                               kl_error *err);

/* Reads the watermark (0 when absent).  *valid = 0 if it is present but not
 * a u64 (the caller decides whether that matters). */
kl_status Kl_index_watermark(kl_objstore *os, const char *dir, uint64_t *wm, int *valid,
                             kl_error *err);

/* Full object name of m in dir (malloc'd), or NULL on ENOMEM. */
char *Kl_index_name(const char *dir, const kl_object_meta *m);

/* Number of LIST requests made by this thread (for tests of the O(log n)
 * promise). */
unsigned long Kl_index_list_count(void);
#endif
