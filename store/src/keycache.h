/* keycache.h -- the store writer's per-key state, kept in an LRU bounded by
 * max_cached_keys.  A miss costs a reload from the store (watermark + one
 * LIST), so the bound trades memory for requests, never correctness.
 *
 * Take/put instead of lookup: the writer takes a key's state out of the
 * cache for the duration of an append and puts it back after, so an
 * eviction by another thread can never free state in use.  (Appends to one
 * key are serialised by the writer, so nobody else looks for it meanwhile.)
 * Thread-safe. */
#ifndef KL_KEYCACHE_H
#define KL_KEYCACHE_H
#include "hash.h"
#include "klstore.h"

/* A claim to delete once held long enough: its slot and when this writer
 * first knew the slot published (Kl_boot_ns, after the response). */
typedef struct kl_claim {
    uint64_t slot;
    uint64_t seen_ns;
} kl_claim;

/* An object another writer claimed at this writer's tail, taken as the
 * tail's next link before it is known published (tail.c). */
typedef struct kl_link {
    kl_object_meta m;
    char *claim, *object, *tag;
} kl_link;

/* An object of a failed append that may have landed: insertions [from,
 * from + n) of the call, encoded at this tail (next offset, prior, next
 * nonce) with this time for records without a timestamp. */
typedef struct kl_attempt_obj {
    size_t from, n;
    uint64_t at_offset, at_prior;
    kl_u128 at_nonce;
    int64_t now;
} kl_attempt_obj;

/* What an append leaves when it failed after its objects may have landed
 * (a claim or PUT sent, its answer an error): enough for a retry of the
 * same records to encode those objects again, byte for byte, and find out
 * whether they are in (append.c, Kl_tail_resume).  A pipelined append
 * (append.h) may leave two: one being published, the next claimed. */
typedef struct kl_attempt {
    size_t n;    /* insertions of the failed call */
    size_t n_in; /* the first n_in of them are known to be in the log */
    /* The objects holding them, as reported PUBLISHED (a retry names them
     * IN_AGAIN, klstore.h); malloc'd, owned by the attempt; in_objs_lost:
     * out of memory, not all are here. */
    kl_object_meta *in_objs;
    size_t n_in_objs;
    int in_objs_lost;
    size_t n_objs;            /* objects right after them that may have landed */
    kl_attempt_obj obj[2];    /*   in order */
    unsigned char digest[32]; /* SHA-256 of the n insertions */
} kl_attempt;

typedef struct kl_keystate {
    uint64_t next_offset; /* offset the next record gets */
    kl_u128 next_nonce;
    uint64_t last_first;     /* first offset of the newest object (prior) */
    uint64_t watermark;      /* first offset of the newest complete batch */
    uint64_t stored_wm;      /* what the watermark object says (may lag) */
    int64_t wm_written_ms;   /* when this writer last stored it */
    unsigned wm_lag;         /* complete batches since */
    kl_object_meta *pending; /* objects after the watermark's object */
    size_t n_pending, cap_pending;
    kl_claim *claims;            /* slots this writer saw published whose */
    size_t n_claims, cap_claims; /* claims are still to delete (tail.h) */
    uint64_t view_ns;            /* Kl_boot_ns when the request began that showed
                                    this tail (tail.h: the tail check may be skipped
                                    shortly after) */
    uint64_t epoch;              /* unique per load: a merge planned on this state
                                    applies only to it (compact.h) */
    int compact_queued;          /* handed to the compactor, not yet planned */
    uint64_t gc_ns;              /* Kl_boot_ns of the last round of claim deletes */
    kl_link *chain;              /* others' claims after the last published object, */
    size_t n_chain;              /* in order; next_offset etc. are past them */
    int stale;                   /* an append failed: reload before use (the
                                    claims to delete and the attempt stay) */
    kl_attempt *attempt;         /* that append's, or NULL */
} kl_keystate;

typedef struct kl_keycache kl_keycache;

kl_keycache *Kl_keycache_new(size_t max_keys);
void Kl_keycache_free(kl_keycache *c);
/* Removes and returns the state of `id` (caller owns it), or NULL. */
kl_keystate *Kl_keycache_take(kl_keycache *c, const char *id);
/* Inserts `s` (ownership moves to the cache) as most recently used and
 * evicts the least recently used states beyond the bound.  A state with
 * an attempt (s->attempt) is kept outside the bound until taken: its
 * retry needs it, and its caller holds the failed records meanwhile (one
 * that gives them up and never appends to the key again leaves it there
 * until the writer goes). */
void Kl_keycache_put(kl_keycache *c, const char *id, kl_keystate *s);
size_t Kl_keycache_count(kl_keycache *c);
/* Calls fn for every cached state, most recent first (those with an
 * attempt last), under the cache's
 * lock (fn must not call back into the cache).  For a writer's last work
 * at destroy. */
void Kl_keycache_each(kl_keycache *c, void (*fn)(const char *id, kl_keystate *s, void *ctx),
                      void *ctx);
void Kl_keystate_free(kl_keystate *s);
void Kl_attempt_free(kl_attempt *a);
/* Marks s as needing a reload before use (kl_keystate.stale); a merge
 * planned on it no longer applies. */
void Kl_keystate_mark_stale(kl_keystate *s);
/* Frees v[0, n) with their strings. */
void Kl_links_free(kl_link *v, size_t n);
/* Appends an object to s->pending.  Returns 0 or -1 (ENOMEM). */
int Kl_keystate_add_pending(kl_keystate *s, const kl_object_meta *m);
/* Adds a slot to s->claims, seen published at seen_ns, unless it is there
 * already (the earlier time stays).  Returns 0 or -1 (ENOMEM). */
int Kl_keystate_add_claim(kl_keystate *s, uint64_t slot, uint64_t seen_ns);
#endif
