/* sink.c -- the store side of the bridge: a batching writer over a store
 * writer over the object store.
 *
 * The writers are created at each partition assignment and destroyed at
 * each revocation (after the final flush).  Why: the store writer caches
 * every key's next offset and nonce.  When a partition moves to another
 * bridge process and later comes back, the cached state is stale; a fresh
 * writer reloads it at once instead of learning the new tail from a lost
 * slot claim (which would also be correct: concurrent writers are fenced,
 * and nonces are checked at the true tail).  The object store itself lives
 * for the whole run (it holds connections, not key state). */
#include <string.h>

#include "bridge.h"

void br_sink_init(br_sink *s, kl_config *cfg, kl_objstore *os)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->os = os;
}

kl_status br_sink_open(br_sink *s, kl_error *err)
{
    kl_status st;
    br_sink_close(s);
    if ((st = kl_store_writer_new(s->os, &s->cfg->store, &s->store_w, err))) return st;
    if ((st = kl_batch_writer_new(s->store_w, &s->cfg->batch, &s->batch_w, err))) {
        kl_writer_destroy(s->store_w);
        s->store_w = NULL;
    }
    return st;
}

/* The batching writer makes one last attempt at whatever is pending and
 * logs what it could not write; the caller has not committed those
 * records, so Kafka re-delivers them to the partition's next owner. */
void br_sink_close(br_sink *s)
{
    kl_writer_destroy(s->batch_w);
    kl_writer_stats last;
    if (s->store_w && kl_store_writer_stats(s->store_w, &last, NULL) == KL_OK) {
        s->retired.appends += last.appends;
        s->retired.records_written += last.records_written;
        s->retired.records_duplicate += last.records_duplicate;
        s->retired.objects += last.objects;
        s->retired.append_failures += last.append_failures;
    }
    kl_writer_destroy(s->store_w);
    s->batch_w = s->store_w = NULL;
}
