/* batch_flush.c -- writing batches to the inner writer: a set of keys at
 * once, one key alone, and the flushes that cover many keys.
 *
 * Writes in flight: a thread that has several batches to write (a flush,
 * the timer, full batches found in one drain, shutdown) hands them to the
 * inner writer at once (workpool.h): a store write is a round trip or an
 * fsync, and doing them one after another made a flush of many keys as
 * slow as the sum of their latencies.  The writer thread writes batches
 * of its set itself, helped by the pool's writes_in_flight - 1 threads,
 * so one thread has at most writes_in_flight writes going.  The helpers
 * are shared by all writer threads (oldest set first), and each writer
 * thread writes its own set too: with N = writer_thread_count threads
 * writing together, up to writes_in_flight - 1 + N writes are in flight
 * in all (N when writes_in_flight is 1).
 *
 * A key is in at most one write at a time -- it has one batch -- so its
 * records still reach the store in append order, one object after the
 * other (the store writer's slot for the next object is only known once
 * the previous one is placed).
 *
 * Called by the writer thread with its mutex held; the mutex is released
 * while the inner writer runs. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "batch_internal.h"
#include "recycle.h"
#include "workpool.h"
#include "writer.h"

#include <stdlib.h>
#include <string.h>

/* Gathers the batch into one insertion array: one inner append (of one
 * object, or of several pipelined: object_cuts). */
static kl_insertion *batch_gather(const key_batch *kb)
{
    kl_insertion *ins = Kl_recycle_get(kb->records * sizeof *ins);
    if (!ins) return NULL;
    size_t i = 0;
    for (const queued_append *qa = kb->head; qa; qa = qa->next) {
        Kl_batch_append_unpack(qa, &ins[i]);
        i += qa->count;
    }
    return ins;
}

static size_t object_cuts(const batch_writer *bw, const key_batch *kb, size_t **cuts);

/* One key's batch being written, and the inner writer's answer. */
typedef struct write_job {
    key_batch *kb;
    kl_status st;
    kl_error e;
} write_job;

typedef struct write_set {
    batch_writer *bw;
    write_job *jobs;
} write_set;

/* Runs without the thread's mutex, on the writer thread or a pool helper:
 * while a set is in flight the writer thread only waits for it, and it
 * alone changes batches, so kb stays put (appenders only queue). */
static void write_job_run(void *ctx, size_t i)
{
    write_set *ws = ctx;
    write_job *j = &ws->jobs[i];
    kl_insertion *ins = batch_gather(j->kb);
    if (!ins) {
        j->st = kl_seterr(&j->e, KL_ENOMEM, "out of memory gathering a batch");
        return;
    }
    size_t *cuts, n_cuts = object_cuts(ws->bw, j->kb, &cuts);
    /* A store writer sends the queued frames as they lie (append.h). */
    if (Kl_store_writer_is(ws->bw->inner))
        j->st = Kl_store_writer_append_objects(ws->bw->inner, j->kb->keyspace, j->kb->key, ins,
                                               j->kb->records, 1, cuts, n_cuts, &j->e);
    else
        j->st = ws->bw->inner->ops->append(ws->bw->inner, j->kb->keyspace, j->kb->key, ins,
                                           j->kb->records, &j->e);
    free(cuts);
    Kl_recycle_put(ins);
}

/* Hands the batches of keys v[0..n) to the inner writer, up to the pool's
 * size at once (different keys only: a key has one batch, so one write in
 * flight, which keeps its records in append order), releasing the mutex
 * meanwhile.  st[i] gets each key's outcome as Kl_batch_result says, errs[i]
 * its message (either may be NULL).  Keys without records count as
 * written. */
void Kl_batch_write_set(writer_thread *t, key_batch **v, size_t n, kl_status *st, kl_error *errs)
{
    batch_writer *bw = t->owner;
    write_job one, *jobs = n > 1 ? calloc(n, sizeof *jobs) : &one;
    size_t m = 0;
    if (!jobs) { /* out of memory: one at a time */
        for (size_t i = 0; i < n; i++)
            Kl_batch_write_set(t, &v[i], 1, st ? &st[i] : NULL, errs ? &errs[i] : NULL);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (v[i]->records) jobs[m++] = (write_job){.kb = v[i]};
    if (m) {
        write_set ws = {.bw = bw, .jobs = jobs};
        pthread_mutex_unlock(&t->mu);
        Kl_workpool_run(bw->pool, write_job_run, &ws, m);
        pthread_mutex_lock(&t->mu);
    }
    for (size_t i = 0, k = 0; i < n; i++) {
        kl_status r = KL_OK;
        if (k < m && jobs[k].kb == v[i]) {
            Kl_batch_note_result(bw, v[i], jobs[k].st, &jobs[k].e);
            r = Kl_batch_result(v[i], jobs[k].st, errs ? &errs[i] : NULL);
            k++;
        }
        if (st) st[i] = r;
    }
    if (jobs != &one) free(jobs);
}

/* One key's batch, alone (explicit flush of a key, or out of memory). */
static kl_status batch_write(writer_thread *t, key_batch *kb, kl_error *err)
{
    kl_status st;
    Kl_batch_write_set(t, &kb, 1, &st, err);
    return st;
}

int Kl_batch_full(const batch_writer *bw, const key_batch *kb)
{
    return kb->records >= bw->cfg.batch_flush_record_count_threshold ||
           kb->bytes >= bw->cfg.batch_flush_size_threshold;
}

static uint64_t times(uint64_t threshold, uint64_t k)
{
    return threshold > UINT64_MAX / k ? UINT64_MAX : threshold * k;
}

int Kl_batch_write_full(const batch_writer *bw, const key_batch *kb)
{
    uint64_t k = bw->objects_per_write;
    return kb->records >= times(bw->cfg.batch_flush_record_count_threshold, k) ||
           kb->bytes >= times(bw->cfg.batch_flush_size_threshold, k);
}

/* Where a write of kb cuts its objects: after the append that brings an
 * object to a threshold (so an object exceeds one only by its last
 * append, as a batch does).  Returns the number of cuts (malloc'd in
 * *cuts: records per object), 0 for one object or out of memory. */
static size_t object_cuts(const batch_writer *bw, const key_batch *kb, size_t **cuts)
{
    size_t n = 0, cap = 0, recs = 0;
    uint64_t bytes = 0;
    *cuts = NULL;
    if (bw->objects_per_write < 2 || !Kl_batch_full(bw, kb)) return 0;
    for (const queued_append *qa = kb->head; qa; qa = qa->next) {
        recs += qa->count;
        bytes += qa->bytes;
        if (qa->next && recs < bw->cfg.batch_flush_record_count_threshold &&
            bytes < bw->cfg.batch_flush_size_threshold)
            continue;
        if (n == cap) {
            size_t *v = realloc(*cuts, (cap = cap ? cap * 2 : 8) * sizeof *v);
            if (!v) {
                free(*cuts);
                *cuts = NULL;
                return 0;
            }
            *cuts = v;
        }
        (*cuts)[n++] = recs;
        recs = 0;
        bytes = 0;
    }
    return n;
}

int Kl_batch_due(const batch_writer *bw, const key_batch *kb, int64_t now)
{
    if (!kb->records) return 0;
    if (kb->failing) return now >= kb->retry_at_ms;
    return Kl_batch_full(bw, kb) ||
           now - kb->oldest_ms >= (int64_t)bw->cfg.batch_flush_interval_millis;
}

static void outcome_add(flush_outcome *o, kl_status st, const kl_error *e)
{
    if (st == KL_OK) return;
    if (!o->failed_keys++) {
        o->status = st;
        o->err = *e;
    }
}

/* Records the outcome of writing kb (st, e: Kl_batch_result) in o and frees
 * kb if nothing is left of it. */
static void flush_done(writer_thread *t, key_batch *kb, flush_outcome *o, kl_status st,
                       const kl_error *e)
{
    if (o->only_due) {
        outcome_add(o, st, e);
    } else {
        kl_error fe;
        kl_status fst = Kl_batch_error_for_flush(kb, &fe);
        outcome_add(o, fst, &fe);
    }
    Kl_batch_key_release_if_idle(t, kb);
}

typedef struct key_list {
    key_batch **v;
    size_t n;
    const flush_outcome *o;
} key_list;

static int by_age(const void *a, const void *b)
{
    const key_batch *x = *(key_batch *const *)a, *y = *(key_batch *const *)b;
    return (x->oldest_ms > y->oldest_ms) - (x->oldest_ms < y->oldest_ms);
}

static void collect_key(writer_thread *t, key_batch *kb, void *arg)
{
    key_list *l = arg;
    if (!l->o->only_due || Kl_batch_due(t->owner, kb, l->o->now)) l->v[l->n++] = kb;
}

void Kl_batch_flush_key(writer_thread *t, key_batch *kb, flush_outcome *o)
{
    kl_error e;
    kl_status st = batch_write(t, kb, &e);
    flush_done(t, kb, o, st, &e);
}

/* Out of memory for the list: writes the key alone, at once. */
static void flush_one_key(writer_thread *t, key_batch *kb, void *arg)
{
    flush_outcome *o = arg;
    if (o->only_due && !Kl_batch_due(t->owner, kb, o->now)) return;
    Kl_batch_flush_key(t, kb, o);
}

/* Writes the batches a flush covers -- every key, or (only_due) the due
 * ones, oldest first so that the keys that waited longest go first when
 * there are more than can be in flight -- and records the outcome in o.
 * Only this thread adds or frees keys, so the list stays valid while the
 * mutex is released for the writes. */
void Kl_batch_flush_keys(writer_thread *t, flush_outcome *o)
{
    size_t cap = Kl_batch_keys_count(t) ? Kl_batch_keys_count(t) : 1;
    key_list l = {.v = malloc(cap * sizeof *l.v), .o = o};
    kl_status *st = malloc(cap * sizeof *st);
    kl_error *errs = malloc(cap * sizeof *errs);
    if (!l.v || !st || !errs) { /* out of memory: one key at a time */
        free(l.v);
        free(st);
        free(errs);
        Kl_batch_keys_each(t, flush_one_key, o);
        return;
    }
    Kl_batch_keys_each(t, collect_key, &l);
    if (o->only_due) qsort(l.v, l.n, sizeof *l.v, by_age);
    Kl_batch_write_set(t, l.v, l.n, st, errs);
    for (size_t i = 0; i < l.n; i++) flush_done(t, l.v[i], o, st[i], &errs[i]);
    free(l.v);
    free(st);
    free(errs);
}
