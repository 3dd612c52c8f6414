/* claimgc.h -- deleting what the concurrent-writer protocol leaves
 * behind: claims, once below the watermark and held claim_hold_ms since
 * their slots were seen published, and objects that others cover.  Used
 * by tail.c (loading a key) and compact.c (as the watermark moves). */
#ifndef KL_CLAIMGC_H
#define KL_CLAIMGC_H
#include "keycache.h"

/* cfg->claim_hold_ms in nanoseconds. */
uint64_t Kl_claimgc_hold_ns(const kl_store_config *cfg);

/* At a load: lists the key's claims, deletes those below s->watermark that
 * the store's times show were held long enough, and keeps the others in
 * s->claims (timed from now) for Kl_claimgc_run.  Deleting is best effort
 * (logged): what is left is found by the next load. */
kl_status Kl_claimgc_sweep(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                           kl_keystate *s, kl_error *err);

/* Deletes the claims in s->claims below the watermark and seen published
 * at least cfg->claim_hold_ms ago, once there are at least `min` of them
 * (one request for all on S3). */
kl_status Kl_claimgc_run(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                         kl_keystate *s, size_t min, kl_error *err);

/* Deletes the claims of the given slots and removes them from s->claims,
 * then the objects a late publish of one may have brought back (listing
 * from the object that holds the lowest slot). */
kl_status Kl_claimgc_delete(kl_objstore *os, const char *dir, kl_keystate *s, const uint64_t *v,
                            size_t n, kl_error *err);

/* Deletes objects v[0, n) (as Kl_index_list_covered gives them): others
 * cover them with the same bytes, so readers lose nothing. */
kl_status Kl_claimgc_drop_covered(kl_objstore *os, const char *dir, const kl_object_meta *v,
                                  size_t n, kl_error *err);

/* Deletes the objects from `first` on that others cover.  One LIST. */
kl_status Kl_claimgc_drop_covered_from(kl_objstore *os, const char *dir, uint64_t first,
                                       kl_error *err);
#endif
