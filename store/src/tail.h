/* tail.h -- a key's tail as the store writer sees it: loading that view
 * from the store, and publishing an object at the tail so that concurrent
 * writers (threads, processes, hosts) never overlap, lose or duplicate an
 * acknowledged append.  The protocol is FORMAT.md "Concurrent writers":
 *
 *   1. claim the slot (the object's first offset) with a create-only write
 *      that also carries the object's body and name;
 *   2. check that the slot is really the tail: nothing published covers it
 *      (one LIST, from the newest object we know) -- unless the claim came
 *      back within claim_hold_ms / 6 of the request that showed this tail
 *      (s->view_ns): claims live claim_hold_ms after their slot is seen
 *      published, so such a claim cannot be the second of its slot;
 *   3. publish: copy / link the claimed body to the data object's name.
 *
 * A writer that finds the slot claimed takes the other claim as the next
 * link of a chain and retries after it at once, its records re-encoded
 * (so nonces are checked against the tail); when a claim of its own
 * succeeds, one load settles the chain: the links from where the key ends
 * are published in order (helping writers that stopped), then its own.  A claim keeps its body
 * until a complete batch lies after it (slot < watermark) and claim_hold_ms have passed since its
 * slot was seen published; only then is it deleted, and the check in step 2 always catches a writer
 * that claims that slot again (no writer skips it that long after its view).  A late publish from a
 * live claim can only bring back the same bytes under the same name: checks delete such objects
 * when another covers them. */
#ifndef KL_TAIL_H
#define KL_TAIL_H
#include "keycache.h"

/* Rebuilds a key's state from the store: the watermark, then the objects
 * after it.  The watermark may lag (fenced writers store it lazily): the
 * newest object after it that is a complete batch by itself (cfg's
 * thresholds) is taken as the effective one.  With `fenced`, deletes the
 * claims below it (left by writers that stopped before deleting them)
 * that the store's times show were published long enough ago, and keeps
 * the others in s->claims for Kl_claimgc_run. */
kl_status Kl_tail_load(kl_objstore *os, const kl_store_config *cfg, const char *dir, int fenced,
                       kl_keystate **out, kl_error *err);

/* Replaces s with a fresh load (Kl_tail_load; `sweep` as its `fenced`),
 * keeping what is this writer's: the claims still to delete, the pacing
 * of its requests and the failed attempt. */
kl_status Kl_tail_reload(kl_objstore *os, const kl_store_config *cfg, const char *dir, int sweep,
                         kl_keystate *s, kl_error *err);

/* Tries to publish object m (encoded from s; body its bytes) at the
 * tail.  *won = 1: the records are in the log exactly once, s has moved
 * past them (m is in s->pending, or s was reloaded).  *won = 0: another
 * writer had the slot; s now describes the newer tail (the caller
 * re-encodes and tries again).  On an error s may be stale (reload it),
 * and *sent says whether a claim of m may exist: then the records may be
 * in, or be published later (Kl_tail_resume finds out). */
kl_status Kl_tail_publish(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                          kl_keystate *s, const kl_object_meta *m, const kl_body *body, int *won,
                          int *sent, kl_error *err);

/* (resume.c) For a retry of an append that failed after sending object m (body:
 * its bytes, encoded again exactly): finds whether m is in the log -- its
 * claim published by anyone, or its PUT landed (unfenced) -- and if it is
 * claimed but not yet published at the tail, publishes it (and the claims
 * of others before it).  *in = 1: m's records are in exactly once, s is
 * past them.  *in = 0: they are not, and that attempt can no longer put
 * them in; s is the key's tail.  An error leaves it undecided.  A claim
 * holding m's exact bytes at m's slot is taken as the attempt's own. */
kl_status Kl_tail_resume(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                         kl_keystate *s, int fenced, const kl_object_meta *m, const kl_body *body,
                         int *in, kl_error *err);

/* Settles the slots s took as lost to others since its last published
 * object (its chain, tail.c): publishes them where the key ends, or drops
 * them when the key shows they were a stale view.  One load, and a publish
 * per link not yet published.  For an append whose records all turned out
 * duplicates of the links' nonces. */
kl_status Kl_tail_settle(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                         kl_keystate *s, kl_error *err);

/* ---- for resume.c: tail.c's checks and chains ------------------------ */

/* Chains longer than this are settled at once (tail.c). */
#define KL_CHAIN_MAX 64
/* Whether the log holds exactly body (the records of m) at m's offsets. */
kl_status Kl_tail_holds_body(kl_objstore *os, const char *dir, const kl_object_meta *m,
                             const kl_body *body, int *yes, kl_error *err);
/* Reads `claim` (kl_os_claim_target: *other and *tag, malloc'd, and its
 * errors) and whether it is ours: it names `name` and holds exactly body
 * (gone meanwhile is "not ours"). */
kl_status Kl_tail_read_claim(kl_objstore *os, const char *claim, const char *name,
                             const kl_body *body, int *mine, char **other, char **tag,
                             kl_error *err);
/* s's tail moves past om, another's claim (strings: ownership moves). */
kl_status Kl_tail_chain_add(kl_keystate *s, const kl_object_meta *om, char **claim, char **object,
                            char **tag, kl_error *err);
/* Reloads s and publishes its chain's links from where the key ends. */
kl_status Kl_tail_chain_settle(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                               kl_keystate *s, kl_error *err);

/* Pipelining (append.c): while one object is being published, the next
 * one's slot is claimed (FORMAT.md "Pipelined appends").  Kl_tail_fresh:
 * whether s's view allows it (no chain, the tail check skippable).
 * Kl_tail_claim_ahead: claims m's slot, which must follow s's tail or the
 * object claimed just before; *won: the claim is ours (*tag its tag,
 * malloc'd) and needs only a publish once the object before it is
 * published; not won: the slot is another's, and the full protocol
 * (Kl_tail_publish) must place m.  *sent as for Kl_tail_publish.
 * Kl_tail_advance: s moves past m, published. */
int Kl_tail_fresh(const kl_store_config *cfg, const kl_keystate *s);
kl_status Kl_tail_claim_ahead(kl_objstore *os, const char *dir, const kl_object_meta *m,
                              const kl_body *body, int *won, int *sent, char **tag, kl_error *err);
kl_status Kl_tail_advance(kl_keystate *s, const kl_object_meta *m, kl_error *err);
/* For a claim won ahead whose answer came back too late to skip the tail
 * check (s's view no longer fresh), m following s's tail: checks the tail
 * (a LIST) and places it as Kl_tail_publish does after winning a claim.  *won: the
 * records are in; not won and *sent 0: they are not, nor ever will be
 * from this claim. */
kl_status Kl_tail_place_claimed(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                                kl_keystate *s, const kl_object_meta *m, const kl_body *body,
                                const char *tag, int *won, int *sent, kl_error *err);
#endif
