/* batch_writer.c -- the batching writer (the spec's BatchingStoreWriter).
 *
 * Wraps any kl_writer and turns many small appends into few large ones:
 * every append is validated, copied, stamped with its time and queued to
 * one of writer_thread_count writer threads, chosen by a stable hash of
 * keyspace+key so that a key's records are always handled by the same
 * thread, in append order.  Each thread moves its queue, one append at a
 * time, into a per-key batch, and hands a batch to the inner writer as ONE
 * append when it reaches the record-count or size threshold, or when its
 * oldest append is older than the flush interval (checked every check
 * interval; due batches are written oldest first).  The thread drains its
 * queue at every check, and earlier only when an appender sees that a
 * threshold may have been reached (or many appends wait): appenders do
 * not pay a wake-up per record.
 *
 * Memory is bounded as follows.  Each thread's queue holds at most
 * writer_thread_queue_capacity appends (0 = unbounded); a full queue blocks
 * the appending caller (backpressure).  Each key holds one batch, written
 * as soon as it reaches batch_flush_size_threshold payload bytes, so a
 * batch exceeds that only by its last append -- over a store writer, a
 * batch that reached it takes the appends already queued for its key, up
 * to KL_BATCH_OBJECTS_PER_WRITE times the threshold, and goes out as that
 * many objects, pipelined (batch_thread.c).  A key whose write failed
 * keeps its batch for a retry but refuses further appends (they return the
 * error and queue nothing) until a retry succeeds, so a failing store does
 * not make batches grow without bound either.  Per-key state is freed as
 * soon as its batch is written and it has no error left to report.
 *
 * How several batches are written at once: batch_flush.c.  How errors of
 * the inner writer are kept and reported, never swallowed: batch_errors.c.
 *
 * Ownership and locking, and how the files divide the work:
 * batch_internal.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "batch_internal.h"
#include "writer.h"
#include "workpool.h"

#include <stdlib.h>
#include <string.h>

/* More threads than this is certainly a configuration mistake. */
#define MAX_WRITER_THREADS   1024
#define MAX_WRITES_IN_FLIGHT 256

/* Threads use the high bits, the key table (klstore.h kl_htab) the low ones, so that
 * a thread's keys still spread over all its buckets. */
static writer_thread *thread_for(batch_writer *bw, uint64_t hash)
{
    return &bw->threads[(hash >> 32) % bw->n_threads];
}

/* ------------------------------------------------------------------ */
/* Caller side                                                         */
/* ------------------------------------------------------------------ */

static kl_status validate_append(const char *keyspace, const char *key, const kl_insertion *ins,
                                 size_t n, kl_error *err)
{
    kl_status st;
    if ((st = kl_validate_name("keyspace", keyspace, err)) ||
        (st = kl_validate_name("key", key, err)))
        return st;
    if (n && !ins) return kl_seterr(err, KL_EINVAL, "append: %zu records but no array", n);
    for (size_t i = 0; i < n; i++) {
        if (ins[i].len > KL_RECORD_MAX)
            return kl_seterr(err, KL_EINVAL,
                             "%s/%s: record %zu is %zu bytes, "
                             "over the limit of %u",
                             keyspace, key, i, ins[i].len, KL_RECORD_MAX);
        if (ins[i].len && !ins[i].data)
            return kl_seterr(err, KL_EINVAL, "%s/%s: record %zu has no data", keyspace, key, i);
        if (ins[i].has_nonce && ins[i].nonce == KL_NONCE_NONE)
            return kl_seterr(err, KL_EINVAL,
                             "%s/%s: record %zu uses the "
                             "reserved nonce 2^128-1",
                             keyspace, key, i);
    }
    return KL_OK;
}

static kl_status bw_append(kl_writer *w, const char *keyspace, const char *key,
                           const kl_insertion *ins, size_t n, kl_error *err)
{
    batch_writer *bw = (batch_writer *)w;
    kl_status st = validate_append(keyspace, key, ins, n, err);
    if (st) return st;
    uint64_t hash = Kl_batch_key_hash(keyspace, key);
    writer_thread *t = thread_for(bw, hash);
    queued_append *qa = NULL;
    if (n && !(qa = Kl_batch_append_new(keyspace, key, hash, ins, n)))
        return kl_seterr(err, KL_ENOMEM,
                         "%s/%s: out of memory queueing %zu "
                         "records",
                         keyspace, key, n);
    return Kl_batch_thread_enqueue(t, qa, hash, keyspace, key, err);
}

/* Runs one request kind on every thread in parallel; the first error wins. */
static kl_status request_all_threads(batch_writer *bw, request_kind kind, kl_error *err)
{
    request *reqs = calloc(bw->n_threads, sizeof *reqs);
    if (!reqs) return kl_seterr(err, KL_ENOMEM, "out of memory");
    for (size_t i = 0; i < bw->n_threads; i++) {
        reqs[i].kind = kind;
        Kl_batch_thread_post(&bw->threads[i], &reqs[i]);
    }
    kl_status first = KL_OK;
    for (size_t i = 0; i < bw->n_threads; i++) {
        kl_error e;
        kl_status st = Kl_batch_thread_wait(&bw->threads[i], &reqs[i], &e);
        if (st && !first) {
            first = st;
            copy_error(err, &e);
        }
    }
    free(reqs);
    return first;
}

static kl_status bw_flush_key(kl_writer *w, const char *keyspace, const char *key, kl_error *err)
{
    batch_writer *bw = (batch_writer *)w;
    kl_status st;
    if ((st = kl_validate_name("keyspace", keyspace, err)) ||
        (st = kl_validate_name("key", key, err)))
        return st;
    request r = {.kind = REQ_FLUSH_KEY,
                 .keyspace = keyspace,
                 .key = key,
                 .hash = Kl_batch_key_hash(keyspace, key)};
    writer_thread *t = thread_for(bw, r.hash);
    Kl_batch_thread_post(t, &r);
    if ((st = Kl_batch_thread_wait(t, &r, err))) return st;
    return bw->inner->ops->flush_key(bw->inner, keyspace, key, err);
}

static kl_status bw_flush_all(kl_writer *w, kl_error *err)
{
    batch_writer *bw = (batch_writer *)w;
    kl_status st = request_all_threads(bw, REQ_FLUSH_ALL, err);
    if (st) return st;
    return bw->inner->ops->flush_all(bw->inner, err);
}

/* Runs the due flushes on every thread now and waits for them (the threads
 * also do this on their own every check interval).  Returns the first
 * error of a write it ran.  The inner writer's duty cycle runs too. */
static kl_status bw_duty_cycle(kl_writer *w, kl_error *err)
{
    batch_writer *bw = (batch_writer *)w;
    kl_status st = request_all_threads(bw, REQ_CHECK, err);
    if (st) return st;
    return bw->inner->ops->duty_cycle(bw->inner, err);
}

static kl_status bw_create_keyspace(kl_writer *w, const char *keyspace, int64_t *created,
                                    kl_error *err)
{
    batch_writer *bw = (batch_writer *)w;
    return bw->inner->ops->create_keyspace(bw->inner, keyspace, created, err);
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */

static void batch_writer_free(batch_writer *bw, size_t n_initialised)
{
    for (size_t i = 0; i < n_initialised; i++) Kl_batch_thread_stop(&bw->threads[i]);
    for (size_t i = 0; i < n_initialised; i++) Kl_batch_thread_free(&bw->threads[i]);
    free(bw->threads);
    Kl_workpool_free(bw->pool);
    free(bw);
}

static void bw_destroy(kl_writer *w)
{
    batch_writer *bw = (batch_writer *)w;
    if (!bw) return;
    for (size_t i = 0; i < bw->n_threads; i++) Kl_batch_thread_stop(&bw->threads[i]);
    kl_error e;
    if (bw->inner->ops->flush_all(bw->inner, &e))
        Kl_batch_log("flushing the inner writer at shutdown failed: %s", e.msg);
    batch_writer_free(bw, bw->n_threads);
}

static const kl_writer_ops batch_writer_ops = {
    .create_keyspace = bw_create_keyspace,
    .append = bw_append,
    .flush_key = bw_flush_key,
    .flush_all = bw_flush_all,
    .duty_cycle = bw_duty_cycle,
    .destroy = bw_destroy,
};

static kl_status check_config(const kl_batch_config *c, kl_error *err)
{
    if (c->writer_thread_count < 1 || c->writer_thread_count > MAX_WRITER_THREADS)
        return kl_seterr(err, KL_EINVAL,
                         "batcher: writer_thread_count must be "
                         "1..%d, not %zu",
                         MAX_WRITER_THREADS, c->writer_thread_count);
    if (c->batch_check_interval_millis < 1 || c->batch_check_interval_millis > INT32_MAX)
        return kl_seterr(err, KL_EINVAL,
                         "batcher: batch_check_interval_millis "
                         "must be 1..%d",
                         INT32_MAX);
    if (c->writes_in_flight < 1 || c->writes_in_flight > MAX_WRITES_IN_FLIGHT)
        return kl_seterr(err, KL_EINVAL,
                         "batcher: writes_in_flight must be "
                         "1..%d, not %zu",
                         MAX_WRITES_IN_FLIGHT, c->writes_in_flight);
    if (c->batch_flush_interval_millis > INT32_MAX)
        return kl_seterr(err, KL_EINVAL,
                         "batcher: batch_flush_interval_millis "
                         "must be at most %d",
                         INT32_MAX);
    return KL_OK;
}

kl_status kl_batch_writer_new(kl_writer *inner, const kl_batch_config *cfg, kl_writer **out,
                              kl_error *err)
{
    kl_batch_config defaults;
    kl_status st;
    *out = NULL;
    if (!inner) return kl_seterr(err, KL_EINVAL, "batch writer: no inner writer");
    if (!cfg) {
        kl_batch_config_init(&defaults);
        cfg = &defaults;
    }
    if ((st = check_config(cfg, err))) return st;
    batch_writer *bw = calloc(1, sizeof *bw);
    if (!bw || !(bw->threads = calloc(cfg->writer_thread_count, sizeof *bw->threads))) {
        free(bw);
        return kl_seterr(err, KL_ENOMEM, "batch writer: out of memory");
    }
    bw->base.ops = &batch_writer_ops;
    bw->inner = inner;
    bw->cfg = *cfg;
    bw->n_threads = cfg->writer_thread_count;
    /* A store writer pipelines the objects of one key's write (append.h):
     * a key written faster than an object at a time gets up to four in a
     * write, at the time of about one claim or publish each. */
    bw->objects_per_write = Kl_store_writer_is(inner) ? KL_BATCH_OBJECTS_PER_WRITE : 1;
    /* Each writer thread writes too: with writes_in_flight - 1 helpers it
     * has writes_in_flight going at most (all threads together: up to
     * writes_in_flight - 1 + writer_thread_count, batch_flush.c). */
    if (cfg->writes_in_flight > 1 && !(bw->pool = Kl_workpool_new(cfg->writes_in_flight - 1))) {
        batch_writer_free(bw, 0);
        return kl_seterr(err, KL_ENOMEM,
                         "batch writer: cannot start %zu "
                         "write threads",
                         (size_t)cfg->writes_in_flight - 1);
    }
    for (size_t i = 0; i < bw->n_threads; i++) {
        writer_thread *t = &bw->threads[i];
        if (Kl_batch_thread_init(bw, t) < 0) {
            batch_writer_free(bw, i);
            return kl_seterr(err, KL_ENOMEM, "batch writer: out of memory");
        }
        int rc = Kl_batch_thread_start(t);
        if (rc) {
            batch_writer_free(bw, i + 1);
            return kl_seterr(err, KL_ENOMEM,
                             "batch writer: cannot start "
                             "writer thread %zu: %s",
                             i, strerror(rc));
        }
    }
    *out = &bw->base;
    return KL_OK;
}
