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
 * batch exceeds that only by its last append.  A key whose write failed
 * keeps its batch for a retry but refuses further appends (they return the
 * error and queue nothing) until a retry succeeds, so a failing store does
 * not make batches grow without bound either.  Per-key state is freed as
 * soon as its batch is written and it has no error left to report.
 *
 * Several writes in flight (batch_flush.c); errors of the inner writer
 * are never swallowed (batch_errors.c).
 *
 * Ownership and locking, and how the files divide the work:
 * batch_internal.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "batch_internal.h"
#include "qarena.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* More threads than this is certainly a configuration mistake. */
#define MAX_WRITER_THREADS 1024
#define MAX_WRITES_IN_FLIGHT 256
/* Appenders wake their writer thread at most once per this many queued
 * appends (or earlier when a threshold may be reached, see room_*): one
 * wake-up per append would cost a context switch per record, and under a
 * hypervisor even one per 256 appends was a fifth of the append path. */
#define WAKE_APPENDS 4096

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/* Batch ages and retry times use the monotonic clock (kl_mono_ms), so
 * that a wall clock step neither flushes everything nor stalls flushing. */
static struct timespec mono_deadline(int64_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000,
                           .tv_nsec = (long)(ms % 1000) * 1000000L };
    return ts;
}

/* Threads use the high bits, the key table (htab.h) the low ones, so that
 * a thread's keys still spread over all its buckets. */
static writer_thread *thread_for(batch_writer *bw, uint64_t hash)
{
    return &bw->threads[(hash >> 32) % bw->n_threads];
}

/* ------------------------------------------------------------------ */
/* The writer thread                                                   */
/* ------------------------------------------------------------------ */

static uint64_t room_left(uint64_t threshold, uint64_t used)
{
    return used >= threshold ? 0 : threshold - used;
}

/* Lowers the thread's room to what this key's batch has left. */
static void room_note(writer_thread *t, const key_batch *kb)
{
    const kl_batch_config *c = &t->owner->cfg;
    uint64_t r = room_left(c->batch_flush_record_count_threshold, kb->records);
    uint64_t b = room_left(c->batch_flush_size_threshold, kb->bytes);
    if (r < t->room_records)
        t->room_records = r;
    if (b < t->room_bytes)
        t->room_bytes = b;
}

static void room_note_key(writer_thread *t, key_batch *kb, void *arg)
{
    (void)arg;
    if (kb->records)
        room_note(t, kb);
}

/* Recomputes the room from every key (after writes freed some). */
static void room_recompute(writer_thread *t)
{
    t->room_records = t->owner->cfg.batch_flush_record_count_threshold;
    t->room_bytes = t->owner->cfg.batch_flush_size_threshold;
    Kl_batch_keys_each(t, room_note_key, NULL);
    t->room_stale = 0;
}

/* How many full batches wait to be written together. */
static size_t ready_cap(const batch_writer *bw)
{
    return bw->cfg.writes_in_flight;
}

/* Writes the full batches found while draining, in parallel. */
static void ready_write(writer_thread *t)
{
    if (!t->n_ready)
        return;
    Kl_batch_write_set(t, t->ready, t->n_ready, NULL, NULL);
    for (size_t i = 0; i < t->n_ready; i++) {
        t->ready[i]->ready = 0;
        Kl_batch_key_release_if_idle(t, t->ready[i]);
    }
    t->n_ready = 0;
    t->room_stale = 1;
}

/* Moves the oldest queued append into its key's batch, and writes the
 * batch if that made it reach a threshold. */
static void take_one(writer_thread *t)
{
    batch_writer *bw = t->owner;
    queued_append *qa = t->q_head;
    t->q_head = qa->next;
    if (!t->q_head)
        t->q_tail = NULL;
    qa->next = NULL;
    t->queued--;
    t->queued_records -= qa->count;
    t->queued_bytes -= qa->bytes;
    t->drained_total++;
    if (t->space_waiters)
        pthread_cond_broadcast(&t->space_cv);

    /* A full batch is written before it takes more (so a batch exceeds
     * the size threshold by its last append at most); writing may free
     * the key, hence the second lookup. */
    key_batch *kb = Kl_batch_key_find(t, qa->hash, qa->keyspace, qa->key);
    if (kb && kb->ready)
        ready_write(t);
    kb = Kl_batch_key_get(t, qa);
    if (!kb) {
        Kl_batch_log("%s/%s: %zu records DROPPED: out of memory",
                     qa->keyspace, qa->key, qa->count);
        Kl_qarena_free(qa, qa->chunk);
        return;
    }
    /* A batch's age counts from its oldest append, not from when this
     * thread got round to it: the flush interval bounds the real delay. */
    if (!kb->records)
        kb->oldest_ms = qa->queued_ms;
    if (kb->tail)
        kb->tail->next = qa;
    else
        kb->head = qa;
    kb->tail = qa;
    kb->records += qa->count;
    kb->bytes += qa->bytes;
    if (Kl_batch_full(bw, kb) && Kl_batch_due(bw, kb, kl_mono_ms())) {
        kb->ready = 1;
        t->ready[t->n_ready++] = kb;
        if (t->n_ready == ready_cap(bw))
            ready_write(t);
    } else {
        room_note(t, kb);
        Kl_batch_key_release_if_idle(t, kb);
    }
}

/* Moves appends into batches until everything queued before `seq` is. */
static void drain_until(writer_thread *t, uint64_t seq)
{
    while (t->drained_total < seq && t->q_head)
        take_one(t);
    ready_write(t);
}

static void outcome_to_request(const flush_outcome *o, request *r)
{
    r->status = o->status;
    if (o->failed_keys > 1)
        kl_seterr(&r->err, o->status, "%zu keys have unwritten or lost "
                  "records; the first: %s", o->failed_keys, o->err.msg);
    else if (o->failed_keys)
        r->err = o->err;
}

static void handle_request(writer_thread *t, request *r)
{
    flush_outcome o = { .status = KL_OK };
    drain_until(t, r->queued_before);
    switch (r->kind) {
    case REQ_FLUSH_KEY: {
        key_batch *kb = Kl_batch_key_find(t, r->hash, r->keyspace, r->key);
        if (kb)
            Kl_batch_flush_key(t, kb, &o);
        break;
    }
    case REQ_FLUSH_ALL:
        Kl_batch_flush_keys(t, &o);
        break;
    case REQ_CHECK:
        o.only_due = 1;
        o.now = kl_mono_ms();
        Kl_batch_flush_keys(t, &o);
        break;
    }
    outcome_to_request(&o, r);
    r->done = 1;
}

static void handle_requests(writer_thread *t)
{
    request *list = t->requests;
    t->requests = NULL;
    /* Oldest first: requests were pushed on the front. */
    request *rev = NULL;
    while (list) {
        request *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    for (request *r = rev, *next; r; r = next) {
        next = r->next;      /* r may be gone once done is seen */
        handle_request(t, r);
    }
    room_recompute(t);
    pthread_cond_broadcast(&t->done_cv);
}

/* The timer: writes the batches that are due. */
static void write_due_batches(writer_thread *t)
{
    flush_outcome o = { .only_due = 1, .now = kl_mono_ms() };
    Kl_batch_flush_keys(t, &o);
    room_recompute(t);
}

/* Destroy: one last attempt for every batch (in parallel, so that the
 * time it takes is bounded by the slowest writes, not by the count of
 * keys), then report what is lost. */
static void report_lost_at_shutdown(writer_thread *t, key_batch *kb, void *arg)
{
    (void)arg;
    Kl_batch_report_lost(kb);
    Kl_batch_key_drop(t, kb);
}

static void thread_shutdown(writer_thread *t)
{
    drain_until(t, t->enqueued_total);
    flush_outcome o = { .status = KL_OK };
    Kl_batch_flush_keys(t, &o);           /* frees the keys that were written */
    Kl_batch_keys_each(t, report_lost_at_shutdown, NULL);
}

static void *thread_main(void *arg)
{
    writer_thread *t = arg;
    batch_writer *bw = t->owner;
    int64_t next_check = kl_mono_ms() + (int64_t)bw->cfg.batch_check_interval_millis;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        int64_t now = kl_mono_ms();
        /* Appends are moved into batches when an appender asks (a
         * threshold may be reached, or many are queued) and at every
         * check; in between they wait in the queue, stamped with their
         * append time.  A bounded number per round, so that requests and
         * time checks are not starved by a steady stream of appends. */
        if (t->wake || now >= next_check) {
            t->wake = 0;
            for (size_t budget = t->queued; budget && t->q_head; budget--)
                take_one(t);
            ready_write(t);
            if (t->room_stale)
                room_recompute(t);
        }
        if (t->requests) {
            handle_requests(t);
            continue;
        }
        now = kl_mono_ms();
        if (now >= next_check) {
            write_due_batches(t);
            next_check = kl_mono_ms() + (int64_t)bw->cfg.batch_check_interval_millis;
            continue;
        }
        if (t->wake)
            continue;
        if (t->stopping)
            break;
        struct timespec deadline = mono_deadline(next_check);
        pthread_cond_timedwait(&t->work_cv, &t->mu, &deadline);
    }
    thread_shutdown(t);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Caller side                                                         */
/* ------------------------------------------------------------------ */

static kl_status validate_append(const char *keyspace, const char *key,
                                 const kl_insertion *ins, size_t n,
                                 kl_error *err)
{
    kl_status st;
    if ((st = kl_validate_name("keyspace", keyspace, err))
        || (st = kl_validate_name("key", key, err)))
        return st;
    if (n && !ins)
        return kl_seterr(err, KL_EINVAL, "append: %zu records but no array", n);
    for (size_t i = 0; i < n; i++) {
        if (ins[i].len > KL_RECORD_MAX)
            return kl_seterr(err, KL_EINVAL, "%s/%s: record %zu is %zu bytes, "
                             "over the limit of %u", keyspace, key, i,
                             ins[i].len, KL_RECORD_MAX);
        if (ins[i].len && !ins[i].data)
            return kl_seterr(err, KL_EINVAL, "%s/%s: record %zu has no data",
                             keyspace, key, i);
        if (ins[i].has_nonce && ins[i].nonce == KL_NONCE_NONE)
            return kl_seterr(err, KL_EINVAL, "%s/%s: record %zu uses the "
                             "reserved nonce 2^128-1", keyspace, key, i);
    }
    return KL_OK;
}

static kl_status bw_append(kl_writer *w, const char *keyspace, const char *key,
                           const kl_insertion *ins, size_t n, kl_error *err)
{
    batch_writer *bw = (batch_writer *)w;
    kl_status st = validate_append(keyspace, key, ins, n, err);
    if (st)
        return st;
    uint64_t hash = Kl_batch_key_hash(keyspace, key);
    writer_thread *t = thread_for(bw, hash);
    queued_append *qa = NULL;
    if (n && !(qa = Kl_batch_append_new(keyspace, key, hash, ins, n)))
        return kl_seterr(err, KL_ENOMEM, "%s/%s: out of memory queueing %zu "
                         "records", keyspace, key, n);
    size_t cap = bw->cfg.writer_thread_queue_capacity;
    pthread_mutex_lock(&t->mu);
    /* The key's error is checked again after every wait: it may have
     * appeared while this caller was blocked on a full queue. */
    while (!(st = Kl_batch_error_for_append(t, hash, keyspace, key, err))
           && qa && cap && t->queued >= cap) {
        t->wake = 1;
        pthread_cond_signal(&t->work_cv);
        t->space_waiters++;
        pthread_cond_wait(&t->space_cv, &t->mu);
        t->space_waiters--;
    }
    if (!st && qa) {
        if (t->q_tail)
            t->q_tail->next = qa;
        else
            t->q_head = qa;
        t->q_tail = qa;
        t->queued++;
        t->queued_records += qa->count;
        t->queued_bytes += qa->bytes;
        t->enqueued_total++;
        qa = NULL;
        if (!t->wake && (t->queued >= WAKE_APPENDS || (cap && t->queued >= cap)
                         || t->queued_records >= t->room_records
                         || t->queued_bytes >= t->room_bytes)) {
            t->wake = 1;
            pthread_cond_signal(&t->work_cv);
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (qa)                       /* not queued: the key has an error */
        Kl_qarena_free(qa, qa->chunk);
    return st;
}

/* Hands a request to a thread; wait_request() collects the result. */
static void post_request(writer_thread *t, request *r)
{
    pthread_mutex_lock(&t->mu);
    r->done = 0;
    r->status = KL_OK;
    r->queued_before = t->enqueued_total;
    r->next = t->requests;
    t->requests = r;
    pthread_cond_signal(&t->work_cv);
    pthread_mutex_unlock(&t->mu);
}

static kl_status wait_request(writer_thread *t, request *r, kl_error *err)
{
    pthread_mutex_lock(&t->mu);
    while (!r->done)
        pthread_cond_wait(&t->done_cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    if (r->status)
        copy_error(err, &r->err);
    return r->status;
}

/* Runs one request kind on every thread in parallel; the first error wins. */
static kl_status request_all_threads(batch_writer *bw, request_kind kind,
                                     kl_error *err)
{
    request *reqs = calloc(bw->n_threads, sizeof *reqs);
    if (!reqs)
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    for (size_t i = 0; i < bw->n_threads; i++) {
        reqs[i].kind = kind;
        post_request(&bw->threads[i], &reqs[i]);
    }
    kl_status first = KL_OK;
    for (size_t i = 0; i < bw->n_threads; i++) {
        kl_error e;
        kl_status st = wait_request(&bw->threads[i], &reqs[i], &e);
        if (st && !first) {
            first = st;
            copy_error(err, &e);
        }
    }
    free(reqs);
    return first;
}

static kl_status bw_flush_key(kl_writer *w, const char *keyspace,
                              const char *key, kl_error *err)
{
    batch_writer *bw = (batch_writer *)w;
    kl_status st;
    if ((st = kl_validate_name("keyspace", keyspace, err))
        || (st = kl_validate_name("key", key, err)))
        return st;
    request r = { .kind = REQ_FLUSH_KEY, .keyspace = keyspace, .key = key,
                  .hash = Kl_batch_key_hash(keyspace, key) };
    writer_thread *t = thread_for(bw, r.hash);
    post_request(t, &r);
    if ((st = wait_request(t, &r, err)))
        return st;
    return bw->inner->ops->flush_key(bw->inner, keyspace, key, err);
}

static kl_status bw_flush_all(kl_writer *w, kl_error *err)
{
    batch_writer *bw = (batch_writer *)w;
    kl_status st = request_all_threads(bw, REQ_FLUSH_ALL, err);
    if (st)
        return st;
    return bw->inner->ops->flush_all(bw->inner, err);
}

/* Runs the due flushes on every thread now and waits for them (the threads
 * also do this on their own every check interval).  Returns the first
 * error of a write it ran.  The inner writer's duty cycle runs too. */
static kl_status bw_duty_cycle(kl_writer *w, kl_error *err)
{
    batch_writer *bw = (batch_writer *)w;
    kl_status st = request_all_threads(bw, REQ_CHECK, err);
    if (st)
        return st;
    return bw->inner->ops->duty_cycle(bw->inner, err);
}

static kl_status bw_create_keyspace(kl_writer *w, const char *keyspace,
                                    int64_t *created, kl_error *err)
{
    batch_writer *bw = (batch_writer *)w;
    return bw->inner->ops->create_keyspace(bw->inner, keyspace, created, err);
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */

static void thread_stop(writer_thread *t)
{
    if (!t->started)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_cond_signal(&t->work_cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->tid, NULL);
    t->started = 0;
}

static void thread_free(writer_thread *t)
{
    Kl_batch_keys_free(t);
    free(t->ready);
    pthread_cond_destroy(&t->work_cv);
    pthread_cond_destroy(&t->space_cv);
    pthread_cond_destroy(&t->done_cv);
    pthread_mutex_destroy(&t->mu);
}

static void batch_writer_free(batch_writer *bw, size_t n_initialised)
{
    for (size_t i = 0; i < n_initialised; i++)
        thread_stop(&bw->threads[i]);
    for (size_t i = 0; i < n_initialised; i++)
        thread_free(&bw->threads[i]);
    free(bw->threads);
    Kl_workpool_free(bw->pool);
    free(bw);
}

static void bw_destroy(kl_writer *w)
{
    batch_writer *bw = (batch_writer *)w;
    if (!bw)
        return;
    for (size_t i = 0; i < bw->n_threads; i++)
        thread_stop(&bw->threads[i]);
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
        return kl_seterr(err, KL_EINVAL, "batcher: writer_thread_count must be "
                         "1..%d, not %zu", MAX_WRITER_THREADS,
                         c->writer_thread_count);
    if (c->batch_check_interval_millis < 1
        || c->batch_check_interval_millis > INT32_MAX)
        return kl_seterr(err, KL_EINVAL, "batcher: batch_check_interval_millis "
                         "must be 1..%d", INT32_MAX);
    if (c->writes_in_flight < 1 || c->writes_in_flight > MAX_WRITES_IN_FLIGHT)
        return kl_seterr(err, KL_EINVAL, "batcher: writes_in_flight must be "
                         "1..%d, not %zu", MAX_WRITES_IN_FLIGHT,
                         c->writes_in_flight);
    if (c->batch_flush_interval_millis > INT32_MAX)
        return kl_seterr(err, KL_EINVAL, "batcher: batch_flush_interval_millis "
                         "must be at most %d", INT32_MAX);
    return KL_OK;
}

static int thread_init(batch_writer *bw, writer_thread *t)
{
    pthread_condattr_t ca;
    t->owner = bw;
    t->room_records = bw->cfg.batch_flush_record_count_threshold;
    t->room_bytes = bw->cfg.batch_flush_size_threshold;
    if (Kl_batch_keys_init(t) < 0
        || !(t->ready = calloc(ready_cap(bw), sizeof *t->ready)))
        return -1;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->work_cv, &ca);
    pthread_cond_init(&t->space_cv, NULL);
    pthread_cond_init(&t->done_cv, NULL);
    pthread_condattr_destroy(&ca);
    return 0;
}

kl_status kl_batch_writer_new(kl_writer *inner, const kl_batch_config *cfg,
                              kl_writer **out, kl_error *err)
{
    kl_batch_config defaults;
    kl_status st;
    *out = NULL;
    if (!inner)
        return kl_seterr(err, KL_EINVAL, "batch writer: no inner writer");
    if (!cfg) {
        kl_batch_config_init(&defaults);
        cfg = &defaults;
    }
    if ((st = check_config(cfg, err)))
        return st;
    batch_writer *bw = calloc(1, sizeof *bw);
    if (!bw || !(bw->threads = calloc(cfg->writer_thread_count,
                                      sizeof *bw->threads))) {
        free(bw);
        return kl_seterr(err, KL_ENOMEM, "batch writer: out of memory");
    }
    bw->base.ops = &batch_writer_ops;
    bw->inner = inner;
    bw->cfg = *cfg;
    bw->n_threads = cfg->writer_thread_count;
    /* The writer threads write too: writes_in_flight - 1 helpers. */
    if (cfg->writes_in_flight > 1
        && !(bw->pool = Kl_workpool_new(cfg->writes_in_flight - 1))) {
        batch_writer_free(bw, 0);
        return kl_seterr(err, KL_ENOMEM, "batch writer: cannot start %zu "
                         "write threads", (size_t)cfg->writes_in_flight - 1);
    }
    for (size_t i = 0; i < bw->n_threads; i++) {
        writer_thread *t = &bw->threads[i];
        if (thread_init(bw, t) < 0) {
            batch_writer_free(bw, i);
            return kl_seterr(err, KL_ENOMEM, "batch writer: out of memory");
        }
        int rc = pthread_create(&t->tid, NULL, thread_main, t);
        if (rc) {
            batch_writer_free(bw, i + 1);
            return kl_seterr(err, KL_ENOMEM, "batch writer: cannot start "
                             "writer thread %zu: %s", i, strerror(rc));
        }
        t->started = 1;
    }
    *out = &bw->base;
    return KL_OK;
}
