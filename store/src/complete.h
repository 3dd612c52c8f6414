/* complete.h -- when objects make a complete batch (FORMAT.md
 * "Compaction"): their records or their bytes reach a compaction
 * threshold.  Compaction cuts batches there and moves the watermark to
 * them (compact.c); loading a key's tail takes the newest object that is
 * a complete batch by itself as the watermark when the stored one lags
 * (tail.c).  Both must judge alike, so the rule is written once. */
#ifndef KL_COMPLETE_H
#define KL_COMPLETE_H
#include "klstore.h"

/* Whether `records` records of `bytes` bytes in all are a complete batch. */
int Kl_complete_batch(const kl_store_config *cfg, uint64_t records, uint64_t bytes);

/* Whether object m is a complete batch by itself.  Then compacting it is
 * only moving the watermark. */
int Kl_complete_object(const kl_store_config *cfg, const kl_object_meta *m);
#endif
