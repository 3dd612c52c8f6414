/* append.h -- one store-writer append: the records encoded as one data
 * object and put at the key's tail (fenced: tail.h; unfenced: a checked
 * PUT), and the retry of an append whose outcome was unknown.
 *
 * Exactly once across retries: a request can fail after it took effect
 * (its answer lost) or before, and the writer cannot tell which.  An
 * append that fails after its object may have landed leaves a kl_attempt
 * in the key's state.  When the next append to the key starts with the
 * same records (the batching writer retries its batch so), the object is
 * encoded again byte for byte and looked for (Kl_tail_resume): found or
 * published now, those records count as written; only the rest is
 * appended.  A different append drops the attempt, whose records then
 * may or may not be in, as the failure said. */
#ifndef KL_APPEND_H
#define KL_APPEND_H
#include "keycache.h"

/* Called for each object an append encodes (KL_OBJECT_ENCODED, before any
 * request that may publish it) and publishes (or finds in, for a retry:
 * KL_OBJECT_PUBLISHED), in order, under the key's lock. */
typedef void (*kl_published_fn)(kl_publish_event ev, const kl_object_meta *m, void *ctx);

/* Appends ins[0, n) (validated) to the key at dir whose state is s, as
 * objects of cuts[0], cuts[1], ... records (n_cuts 0: one object),
 * pipelined where the protocol allows.  *n_before: leading records an
 * earlier, failed call already put in (and reported).  On an error s is
 * marked stale (reload before use), with an attempt when records may be
 * in; the objects published before the error were reported.
 *
 * framed: each ins[i].data is the payload of a record already encoded as
 * FORMAT.md says (header before it, trailer after it; timestamp, nonce,
 * length and trailer set, the offset anything), in memory the caller
 * lends for writing until the call returns.  The writer then writes each
 * record's offset where it lies and sends the frames as the body, in
 * pieces, instead of copying the records into one (the batching writer's
 * queue, batch_keys.c).  It still copies when the nonce filter drops a
 * record, without fencing (one PUT of one buffer), and when the frames
 * lie in many small pieces.  *n_copied: records copied into a body. */
kl_status Kl_append_records(kl_objstore *os, const kl_store_config *cfg, int fenced,
                            const char *dir, kl_keystate *s, const kl_insertion *ins, size_t n,
                            int framed, const size_t *cuts, size_t n_cuts, kl_published_fn fn,
                            void *ctx, size_t *n_before, size_t *n_copied, kl_error *err);
#endif
