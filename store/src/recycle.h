/* recycle.h -- a small process-wide pool of the reader's large, short-lived
 * buffers (object bodies fetched locally, page record arrays).
 *
 * Why: each such buffer lives for one object or one page.  Freed, its
 * memory goes back to the kernel (glibc unmaps big chunks and trims the
 * heap top), and the next buffer pays a first-touch page fault per 4 KiB:
 * measured at 15-25 us each under a hypervisor, more than reading the data
 * from the page cache.  Recycling keeps a scan in warm memory.  Bounded
 * (KL_RECYCLE_SLOTS buffers, KL_RECYCLE_BYTES in all); thread-safe.
 * The batching writer's large queued appends come from here too (a FUSE
 * write of 128 KiB is one): pending_mb's worth of them and the objects
 * being written are in flight at once, some 60 buffers, and with 16
 * slots most of them were fresh memory (a 256 MB `cat >> key` through
 * klstorefs took ~95,000 page faults; with 128 slots ~15,000). */
#ifndef KL_RECYCLE_H
#define KL_RECYCLE_H
#include <stddef.h>

#define KL_RECYCLE_SLOTS 128
#define KL_RECYCLE_BYTES (64u << 20)

/* A buffer of at least `size` bytes (16-byte aligned), or NULL. */
void *Kl_recycle_get(size_t size);
/* Gives back a buffer from Kl_recycle_get (NULL is ignored). */
void Kl_recycle_put(void *p);
/* Maps fresh memory in one call rather than a page fault per 4 KiB
 * (MADV_POPULATE_WRITE, Linux >= 5.14; older kernels take the faults). */
void Kl_populate(void *p, size_t len);
#endif
