/* compact.h -- per-key compaction of the objects written after the
 * watermark (FORMAT.md "Compaction"). */
#ifndef KL_COMPACT_H
#define KL_COMPACT_H
#include "keycache.h"

/* Compaction runs off the appender's path (writer.c hands keys to a
 * compactor thread, compactor.h), in steps that take the key's lock only
 * to read and update its state:
 *
 *   Kl_compact_plan     (locked)   moves the watermark past objects that
 *                                  are complete batches by themselves and
 *                                  picks the next run of objects to merge;
 *   Kl_compact_merge    (unlocked) reads them and writes the merged object;
 *   Kl_compact_apply    (locked)   puts it into the state, if the state is
 *                                  still the one planned on;
 *   Kl_compact_cleanup  (unlocked) deletes the merged objects and what the
 *                                  merged one covers.
 *
 * The merged object is written before its parts are deleted, so readers
 * never miss data, and a merge reads at most compact_objects_threshold
 * objects, so each step is bounded whatever the key's history. */

/* A merge planned on a key's state. */
typedef struct kl_merge {
    uint64_t epoch;        /* of the state planned on (kl_keystate.epoch) */
    kl_object_meta *parts; /* the run to merge, from the watermark on */
    size_t n_parts;        /* 0: nothing to merge */
    int complete;          /* the run is a complete batch */
    kl_object_meta merged; /* set by Kl_compact_merge */
} kl_merge;

/* Whether s has compaction work: a complete batch after the watermark, or
 * compact_objects_threshold objects.  No I/O. */
int Kl_compact_due(const kl_store_config *cfg, const kl_keystate *s);

/* Moves the watermark past pending objects that are complete batches by
 * themselves (storing it lazily, deleting claims held long enough: a few
 * requests at most) and plans the next merge into *m (m->n_parts == 0:
 * none).  KL_ENOTFOUND when s is not one contiguous run: it is stale,
 * drop it. */
kl_status Kl_compact_plan(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                          kl_keystate *s, int fenced, kl_merge *m, kl_error *err);
/* Reads and verifies m's parts and writes the merged object.  KL_ENOTFOUND
 * when a part vanished (another writer compacted it). */
kl_status Kl_compact_merge(kl_objstore *os, const char *dir, kl_merge *m, kl_error *err);
/* If s is the state m was planned on and still starts with its parts,
 * replaces them with the merged object (and, for a complete batch, moves
 * the watermark to it); otherwise leaves s alone (it was reloaded). */
kl_status Kl_compact_apply(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                           kl_keystate *s, int fenced, const kl_merge *m, kl_error *err);
/* Deletes m's parts and, fenced, the objects the merged one covers. */
kl_status Kl_compact_cleanup(kl_objstore *os, const char *dir, const kl_merge *m, int fenced,
                             kl_error *err);
void Kl_merge_free(kl_merge *m);

/* Stores the watermark if it lags what s knows (at shutdown).  Fenced
 * writers store it lazily: every WM_EVERY complete batches or WM_MS. */
kl_status Kl_compact_store_watermark(kl_objstore *os, const char *dir, kl_keystate *s,
                                     kl_error *err);

/* The watermark object pointing at `first`: its name (malloc'd, NULL when
 * out of memory) and its 8-byte body in v. */
char *Kl_compact_watermark(const char *dir, uint64_t first, uint8_t v[8]);
#endif
