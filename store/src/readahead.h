/* readahead.h -- fetching the next objects of a forward walk in parallel.
 *
 * On S3 a GET costs a round trip; a walker that fetches one object at a
 * time is latency-bound.  The walker pushes the objects it will need next;
 * a few threads fetch them into the object cache, where the walker (which
 * waits for a fetch in flight rather than repeating it) finds them.
 * Pushes never block: when the queue is full the hint is dropped and the
 * walker simply fetches that object itself. */
#ifndef KL_READAHEAD_H
#define KL_READAHEAD_H
#include "objcache.h"

typedef struct kl_readahead kl_readahead;

/* NULL (and no readahead) if threads is 0 or on ENOMEM. */
kl_readahead *Kl_readahead_new(kl_objcache *c, kl_objstore *os, int threads);
void Kl_readahead_push(kl_readahead *ra, const char *name, const kl_object_meta *m);
/* Stops the threads (waiting for fetches in flight) and frees. */
void Kl_readahead_free(kl_readahead *ra);
#endif
