/* compactor.h -- a thread that runs a function for keys handed to it, one
 * key at a time, in the order they came: the store writer's compaction,
 * so that no append waits for a merge (compact.h).  A key is queued at
 * most once at a time by the caller's own bookkeeping (keystate
 * compact_queued); the compactor keeps no set of its own.  Thread-safe. */
#ifndef KL_COMPACTOR_H
#define KL_COMPACTOR_H

typedef void (*kl_compact_fn)(void *ctx, const char *dir);
typedef struct kl_compactor kl_compactor;

/* Starts the thread.  NULL when it cannot (out of memory or threads): the
 * caller then runs its work inline. */
kl_compactor *Kl_compactor_new(kl_compact_fn fn, void *ctx);
/* Queues dir (copied) for fn.  Returns 0, or -1 when out of memory (the
 * caller runs the work inline). */
int Kl_compactor_queue(kl_compactor *c, const char *dir);
/* Returns once the queue is empty and fn is not running. */
void Kl_compactor_wait(kl_compactor *c);
/* Runs what is queued, stops the thread and frees c.  NULL is a no-op. */
void Kl_compactor_free(kl_compactor *c);
#endif
