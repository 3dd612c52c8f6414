/* tail.h -- a key's tail as the store writer sees it: loading that view
 * from the store, and publishing an object at the tail so that concurrent
 * writers (threads, processes, hosts) never overlap, lose or duplicate an
 * acknowledged append.  The protocol is FORMAT.md "Concurrent writers":
 *
 *   1. claim the slot (the object's first offset) with a create-only write
 *      that also carries the object's body and name;
 *   2. check that the slot is really the tail: nothing published covers it
 *      (one LIST, from the newest object we know);
 *   3. publish: copy / link the claimed body to the data object's name.
 *
 * A writer that finds the slot claimed helps: it publishes the other
 * claim (when step 2 says it is the tail), moves its view past it and
 * retries with its records re-encoded (so nonces are checked against the
 * true tail).  A claim keeps its body until a complete batch lies after
 * it (slot < watermark); only then is it deleted, and the check in step 2
 * always catches a writer that claims that slot again.  A late publish
 * from a live claim can only bring back the same bytes under the same
 * name: checks delete such objects when another covers them. */
#ifndef KL_TAIL_H
#define KL_TAIL_H
#include "keycache.h"

/* Rebuilds a key's state from the store: the watermark, then the objects
 * after it.  The watermark may lag (fenced writers store it lazily): the
 * newest object after it that is a complete batch by itself (cfg's
 * thresholds) is taken as the effective one.  With `fenced`, deletes the
 * claims below it (left by writers that stopped before deleting them). */
kl_status Kl_tail_load(kl_objstore *os, const kl_store_config *cfg, const char *dir, int fenced,
                       kl_keystate **out, kl_error *err);

/* Tries to publish object m (encoded from s; body/len its bytes) at the
 * tail.  *won = 1: the records are in the log exactly once, s has moved
 * past them (m is in s->pending, or s was reloaded).  *won = 0: another
 * writer had the slot; s now describes the newer tail (the caller
 * re-encodes and tries again).  On an error s may be stale: drop it. */
kl_status Kl_tail_publish(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                          kl_keystate *s, const kl_object_meta *m, const void *body, size_t len,
                          int *won, kl_error *err);

/* Deletes the claims of the given slots and removes them from s->claims. */
kl_status Kl_tail_unclaim(kl_objstore *os, const char *dir, kl_keystate *s, const uint64_t *v,
                          size_t n, kl_error *err);

/* Deletes objects that others cover (v as Kl_index_list_covered returns
 * them): same bytes as what covers them, so readers lose nothing. */
kl_status Kl_tail_drop_covered(kl_objstore *os, const char *dir, const kl_object_meta *v, size_t n,
                               kl_error *err);

/* Deletes the claims in s->claims below the watermark once there are at
 * least `min` of them (one request for all on S3). */
kl_status Kl_tail_gc(kl_objstore *os, const char *dir, kl_keystate *s, size_t min, kl_error *err);
#endif
