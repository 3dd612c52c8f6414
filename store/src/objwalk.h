/* objwalk.h -- records read straight out of a cached object body into a
 * page, validated as they are read.
 *
 * Objects are never decoded into record arrays: that cost a 64-byte
 * kl_record per record per load, and a second copy into every page.  A
 * page's records are filled from the body in one pass that checks framing,
 * trailers and contiguous offsets as it goes, so a corrupt object is still
 * KL_EBADDATA (never a crash, never a short or wrong record), found where
 * a read first touches the damage. */
#ifndef KL_OBJWALK_H
#define KL_OBJWALK_H
#include "objcache.h"
#include "page.h"

/* Adds o's records from offset *want (which o holds) upwards until the
 * page holds `limit` records or o ends; *want becomes the next offset. */
kl_status Kl_objwalk_forward(kl_cobj *o, kl_pagebuf *pb, uint64_t limit, uint64_t *want,
                             kl_error *err);
/* The same downwards: from *want to o's first record; *want becomes the
 * offset before the last one added. */
kl_status Kl_objwalk_backward(kl_cobj *o, kl_pagebuf *pb, uint64_t limit, uint64_t *want,
                              kl_error *err);
/* The offset of o's first record satisfying pred, in *offset; *found = 0
 * when none does. */
kl_status Kl_objwalk_find(kl_cobj *o, int (*pred)(const kl_record *, void *), void *ctx, int *found,
                          uint64_t *offset, kl_error *err);
#endif
