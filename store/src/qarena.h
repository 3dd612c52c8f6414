/* qarena.h -- bump-pointer chunks for the batching writer's queued appends.
 *
 * Why: every queued append used to be one malloc of fresh memory, and a
 * burst of a million one-record appends first-touches ~200 MB a page at a
 * time (measured ~20 us per 4 KiB fault under a hypervisor: over a second
 * per million records, more than everything else the append path does).
 * Appends are carved from 256 KiB chunks owned by the appending thread,
 * each populated by one madvise call, and a chunk is reused once every
 * append carved from it has been written.
 *
 * Memory: a chunk lives while any append in it is queued or pending, so a
 * long-pending append can pin up to one chunk; a few idle chunks (4 MiB at
 * most) are kept for reuse.  Allocations above 32 KiB come from the
 * pool of large buffers (recycle.h).
 * Thread-safe: any thread may allocate (from its own chunk) and any thread
 * may free. */
#ifndef KL_QARENA_H
#define KL_QARENA_H
#include <stddef.h>

/* Returns size bytes (16-byte aligned) or NULL; *chunk is what
 * Kl_qarena_free needs back. */
void *Kl_qarena_alloc(size_t size, void **chunk);
void Kl_qarena_free(void *p, void *chunk);
#endif
