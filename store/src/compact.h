/* compact.h -- per-key compaction of the objects written after the
 * watermark (FORMAT.md "Compaction"). */
#ifndef KL_COMPACT_H
#define KL_COMPACT_H
#include "keycache.h"

/* Compacts s->pending if a threshold is reached: records or bytes reached
 * -> merge into one object and move the watermark to it (a complete batch);
 * only the object count reached -> merge, keep the watermark (partial).
 * The merged object is written before the merged ones are deleted, so
 * readers never miss data.  Updates s to match what is in the store even
 * when a later step fails (the next append retries what is left).
 * With `fenced`, the claims of the merged objects are deleted before the
 * objects (tail.h: no late publish can bring one back).  KL_ENOTFOUND
 * when an object to merge vanished: another writer compacted first, and s
 * is stale. */
kl_status Kl_compact_maybe(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                           kl_keystate *s, int fenced, kl_error *err);

/* Stores the watermark if it lags what s knows (at shutdown).  Fenced
 * writers store it lazily: every WM_EVERY complete batches or WM_MS. */
kl_status Kl_compact_store_watermark(kl_objstore *os, const char *dir, kl_keystate *s,
                                     kl_error *err);

/* The watermark object pointing at `first`: its name (malloc'd, NULL when
 * out of memory) and its 8-byte body in v. */
char *Kl_compact_watermark(const char *dir, uint64_t first, uint8_t v[8]);
#endif
