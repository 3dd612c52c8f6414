/* writer.h -- what the store writer (writer.c) offers the batching writer
 * beyond the kl_writer ops: an append of several objects to one key, so
 * that a full batch of a key written faster than one object at a time
 * goes out pipelined, of records the batching writer queued already
 * encoded, so that they are not copied again (append.h). */
#ifndef KL_WRITER_H
#define KL_WRITER_H
#include "klstore.h"

/* Whether w is a store writer (kl_store_writer_new). */
int Kl_store_writer_is(const kl_writer *w);
/* kl_append of ins[0, n) as objects of cuts[0], cuts[1], ... records, in
 * order (n_cuts 0: one object); framed: the records lie encoded in memory
 * lent for writing (append.h Kl_append_records), and are sent from there.
 * A failure leaves what a retry of the same records needs to put each
 * record in once (append.h).  KL_EINVAL for another kind of writer.
 * Thread-safe as kl_append. */
kl_status Kl_store_writer_append_objects(kl_writer *w, const char *keyspace, const char *key,
                                         const kl_insertion *ins, size_t n, int framed,
                                         const size_t *cuts, size_t n_cuts, kl_error *err);
#endif
