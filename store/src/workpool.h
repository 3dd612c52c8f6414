/* workpool.h -- run a set of independent jobs on a few threads at once.
 *
 * Writing to a store is latency-bound (an S3 PUT is a round trip, a local
 * object an fsync), so a caller with many keys to write keeps several
 * writes in flight rather than one.  The caller runs jobs too: with a pool
 * of 0 helper threads Kl_workpool_run is a plain loop.  Several callers
 * may run sets at once; helpers take jobs from the oldest set first. */
#ifndef KL_WORKPOOL_H
#define KL_WORKPOOL_H
#include <stddef.h>

typedef struct kl_workpool kl_workpool;

/* A pool of `helpers` threads; NULL on ENOMEM or when no thread could be
 * started (callers then run their jobs alone). */
kl_workpool *Kl_workpool_new(size_t helpers);

/* Calls fn(ctx, i) once for every i in [0, n), on the calling thread and
 * the pool's helpers, and returns when all calls have returned.  p may be
 * NULL.  fn must be safe to run concurrently for different i. */
void Kl_workpool_run(kl_workpool *p, void (*fn)(void *ctx, size_t i), void *ctx, size_t n);

/* Stops the helpers (no set may be running) and frees. */
void Kl_workpool_free(kl_workpool *p);
#endif
