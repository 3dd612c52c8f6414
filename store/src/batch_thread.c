/* batch_thread.c -- a writer thread of the batching writer: its queue,
 * when it wakes up, the requests it serves, and its loop.
 *
 * Appenders queue on their key's thread and return: the thread moves the
 * queue into key batches at every check interval, and earlier only when
 * an appender sees that a batch may have reached a threshold (the thread
 * keeps the "room", the fewest records or bytes that could fill one) or
 * that many appends wait, because a wake-up per append would cost a
 * context switch per record.  A full queue (writer_thread_queue_capacity)
 * blocks the appender instead: backpressure.
 *
 * Flushes and duty cycles are requests: the caller posts one and waits.
 * The thread first drains what was queued before the request, so a flush
 * covers every append that returned before it, then writes the batches
 * (batch_flush.c) and hands back the outcome.  Requests are served before
 * the timer's due batches, and both before the thread sleeps.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "batch_internal.h"
#include "qarena.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* Appenders wake their writer thread at most once per this many queued
 * appends (or earlier when a threshold may be reached, see room_*): one
 * wake-up per append would cost a context switch per record, and under a
 * hypervisor even one per 256 appends was a fifth of the append path. */
#define WAKE_APPENDS 4096

/* Batch ages and retry times use the monotonic clock (kl_mono_ms), so
 * that a wall clock step neither flushes everything nor stalls flushing. */
static struct timespec mono_deadline(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    return ts;
}

/* ------------------------------------------------------------------ */
/* The room: when appenders wake the thread                            */
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
    if (r < t->room_records) t->room_records = r;
    if (b < t->room_bytes) t->room_bytes = b;
}

static void room_note_key(writer_thread *t, key_batch *kb, void *arg)
{
    (void)arg;
    if (kb->records) room_note(t, kb);
}

/* Recomputes the room from every key (after writes freed some). */
static void room_recompute(writer_thread *t)
{
    t->room_records = t->owner->cfg.batch_flush_record_count_threshold;
    t->room_bytes = t->owner->cfg.batch_flush_size_threshold;
    Kl_batch_keys_each(t, room_note_key, NULL);
    t->room_stale = 0;
}

/* ------------------------------------------------------------------ */
/* Draining the queue into batches                                     */
/* ------------------------------------------------------------------ */

/* How many full batches wait to be written together. */
static size_t ready_cap(const batch_writer *bw) { return bw->cfg.writes_in_flight; }

/* Writes the full batches found while draining, in parallel. */
static void ready_write(writer_thread *t)
{
    if (!t->n_ready) return;
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
    if (!t->q_head) t->q_tail = NULL;
    qa->next = NULL;
    t->queued--;
    t->queued_records -= qa->count;
    t->queued_bytes -= qa->bytes;
    t->drained_total++;
    if (t->space_waiters) pthread_cond_broadcast(&t->space_cv);

    /* A full batch is written before it takes more (so a batch exceeds
     * the size threshold by its last append at most) -- unless one write
     * may hold several objects' worth (a store writer pipelines them):
     * then a full batch keeps taking its key's queued appends until it
     * holds that much, and is written at the latest when the drain ends,
     * as before.  Writing may free the key, hence the second lookup. */
    key_batch *kb = Kl_batch_key_find(t, qa->hash, qa->keyspace, qa->key);
    if (kb && kb->ready && Kl_batch_write_full(bw, kb)) ready_write(t);
    kb = Kl_batch_key_get(t, qa);
    if (!kb) {
        Kl_batch_log("%s/%s: %zu records DROPPED: out of memory", qa->keyspace, qa->key, qa->count);
        Kl_qarena_free(qa, qa->chunk);
        return;
    }
    /* A batch's age counts from its oldest append, not from when this
     * thread got round to it: the flush interval bounds the real delay. */
    if (!kb->records) kb->oldest_ms = qa->queued_ms;
    if (kb->tail)
        kb->tail->next = qa;
    else
        kb->head = qa;
    kb->tail = qa;
    kb->records += qa->count;
    kb->bytes += qa->bytes;
    if (kb->ready) {
        if (Kl_batch_write_full(bw, kb)) ready_write(t);
    } else if (Kl_batch_full(bw, kb) && Kl_batch_due(bw, kb, kl_mono_ms())) {
        kb->ready = 1;
        t->ready[t->n_ready++] = kb;
        if (t->n_ready == ready_cap(bw)) ready_write(t);
    } else {
        room_note(t, kb);
        Kl_batch_key_release_if_idle(t, kb);
    }
}

/* Moves appends into batches until everything queued before `seq` is. */
static void drain_until(writer_thread *t, uint64_t seq)
{
    while (t->drained_total < seq && t->q_head) take_one(t);
    ready_write(t);
}

/* ------------------------------------------------------------------ */
/* Requests, the timer and the loop                                    */
/* ------------------------------------------------------------------ */

static void outcome_to_request(const flush_outcome *o, request *r)
{
    r->status = o->status;
    if (o->failed_keys > 1)
        kl_seterr(&r->err, o->status,
                  "%zu keys have unwritten or lost "
                  "records; the first: %s",
                  o->failed_keys, o->err.msg);
    else if (o->failed_keys)
        r->err = o->err;
}

static void handle_request(writer_thread *t, request *r)
{
    flush_outcome o = {.status = KL_OK};
    drain_until(t, r->queued_before);
    switch (r->kind) {
    case REQ_FLUSH_KEY: {
        key_batch *kb = Kl_batch_key_find(t, r->hash, r->keyspace, r->key);
        if (kb) Kl_batch_flush_key(t, kb, &o);
        break;
    }
    case REQ_FLUSH_ALL: Kl_batch_flush_keys(t, &o); break;
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
        next = r->next; /* r may be gone once done is seen */
        handle_request(t, r);
    }
    room_recompute(t);
    pthread_cond_broadcast(&t->done_cv);
}

/* The timer: writes the batches that are due. */
static void write_due_batches(writer_thread *t)
{
    flush_outcome o = {.only_due = 1, .now = kl_mono_ms()};
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
    flush_outcome o = {.status = KL_OK};
    Kl_batch_flush_keys(t, &o); /* frees the keys that were written */
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
            for (size_t budget = t->queued; budget && t->q_head; budget--) take_one(t);
            ready_write(t);
            if (t->room_stale) room_recompute(t);
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
        if (t->wake) continue;
        if (t->stopping) break;
        struct timespec deadline = mono_deadline(next_check);
        pthread_cond_timedwait(&t->work_cv, &t->mu, &deadline);
    }
    thread_shutdown(t);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Caller side: appenders and flush callers (any thread)               */
/* ------------------------------------------------------------------ */

/* Appenders wait here for queue space, and ask for a drain when the
 * queue may fill a batch (the room), holds WAKE_APPENDS or is full. */
kl_status Kl_batch_thread_enqueue(writer_thread *t, queued_append *qa, uint64_t hash,
                                  const char *keyspace, const char *key, kl_error *err)
{
    kl_status st;
    size_t cap = t->owner->cfg.writer_thread_queue_capacity;
    pthread_mutex_lock(&t->mu);
    /* The key's error is checked again after every wait: it may have
     * appeared while this caller was blocked on a full queue. */
    while (!(st = Kl_batch_error_for_append(t, hash, keyspace, key, err)) && qa && cap &&
           t->queued >= cap) {
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
        if (!t->wake &&
            (t->queued >= WAKE_APPENDS || (cap && t->queued >= cap) ||
             t->queued_records >= t->room_records || t->queued_bytes >= t->room_bytes)) {
            t->wake = 1;
            pthread_cond_signal(&t->work_cv);
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (qa) /* not queued: the key has an error */
        Kl_qarena_free(qa, qa->chunk);
    return st;
}

void Kl_batch_thread_post(writer_thread *t, request *r)
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

kl_status Kl_batch_thread_wait(writer_thread *t, request *r, kl_error *err)
{
    pthread_mutex_lock(&t->mu);
    while (!r->done) pthread_cond_wait(&t->done_cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    if (r->status) copy_error(err, &r->err);
    return r->status;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */

int Kl_batch_thread_init(batch_writer *bw, writer_thread *t)
{
    pthread_condattr_t ca;
    t->owner = bw;
    t->room_records = bw->cfg.batch_flush_record_count_threshold;
    t->room_bytes = bw->cfg.batch_flush_size_threshold;
    if (Kl_batch_keys_init(t) < 0 || !(t->ready = calloc(ready_cap(bw), sizeof *t->ready)))
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

int Kl_batch_thread_start(writer_thread *t)
{
    int rc = pthread_create(&t->tid, NULL, thread_main, t);
    if (!rc) t->started = 1;
    return rc;
}

void Kl_batch_thread_stop(writer_thread *t)
{
    if (!t->started) return;
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_cond_signal(&t->work_cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->tid, NULL);
    t->started = 0;
}

void Kl_batch_thread_free(writer_thread *t)
{
    Kl_batch_keys_free(t);
    free(t->ready);
    pthread_cond_destroy(&t->work_cv);
    pthread_cond_destroy(&t->space_cv);
    pthread_cond_destroy(&t->done_cv);
    pthread_mutex_destroy(&t->mu);
}
