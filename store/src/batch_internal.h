/* batch_internal.h -- what the files of the batching writer share.
 *
 * The batching writer (kl_batch_writer_new, batch_writer.c) is split by
 * job; each file calls only the ones listed below it, never back up:
 *   batch_writer.c   the kl_writer the caller sees: validation, routing of
 *                    a key to its thread, flushes of every thread, life
 *                    cycle
 *   batch_thread.c   a writer thread: its queue and when it wakes up, the
 *                    request protocol of flushes, its loop
 *   batch_flush.c    writing batches, several keys in flight at once, and
 *                    flushes covering many keys
 *   batch_errors.c   per-key errors kept for later appends and flushes
 *   batch_keys.c     queued appends and the per-thread key table
 *
 * Ownership and locking.  A batch_writer owns its threads, the pool, and
 * through each thread its queue, key table and key batches; its own fields
 * are set at creation and only read afterwards.  Each writer_thread has
 * one mutex, mu, which guards the thread's fields declared after it,
 * every key_batch in its table and the requests on its list (owner, tid
 * and started belong to whoever creates and stops the thread):
 *  - appenders (any thread) queue appends, and read and consume their
 *    key's error, under mu;
 *  - flush and duty-cycle callers push a request and wait for it to be
 *    done, under mu;
 *  - only the writer thread takes appends off the queue, creates, changes
 *    and frees key batches and changes the table.  It releases mu while
 *    the inner writer runs; meanwhile write jobs (on the writer thread and
 *    on pool helpers) read the batches being written (names, appends,
 *    counts) without mu.  That is safe because nobody changes those then:
 *    appenders touch no field of a batch but its error ones, and the
 *    writer thread only waits for its jobs.
 * The inner writer is called from several threads at once, for different
 * keys: it must be thread-safe (every kl_writer is).
 * A queued_append belongs to its thread's queue, then to its key's batch,
 * and is freed by the writer thread once written or dropped; nothing in
 * it changes after queueing except `next`.  A request belongs to its
 * caller: the writer thread fills in status and err, sets done under mu,
 * and does not touch it after that. */
#ifndef KL_BATCH_INTERNAL_H
#define KL_BATCH_INTERNAL_H

/* Objects' worth a key's write may hold over a store writer (batch_thread.c). */
#define KL_BATCH_OBJECTS_PER_WRITE 4
#include <pthread.h>
#include <stdint.h>

#include "klstore.h"
#include "workpool.h"

/* One queued append: header, insertions, names and payloads in one block,
 * so that queueing costs a single allocation (carved from qarena.c). */
typedef struct queued_append {
    struct queued_append *next;
    void *chunk; /* for Kl_qarena_free */
    uint64_t hash;
    const char *keyspace;
    const char *key;
    size_t count;
    uint64_t bytes;    /* payload bytes */
    int64_t queued_ms; /* monotonic time of the append */
    /* The records, encoded as in a data object but for their offsets
     * (batch_keys.c), then the names.  The store writer sends them from
     * here (append.h "framed"); Kl_batch_append_unpack lists them. */
    unsigned char data[];
} queued_append;

/* Fills ins[0, qa->count) from qa's records; data points into qa, at
 * each record's payload inside its frame. */
void Kl_batch_append_unpack(const queued_append *qa, kl_insertion *ins);

/* The pending records and error state of one key. */
typedef struct key_batch {
    kl_hnode node; /* in its thread's key table; the key hash */
    char *keyspace;
    char *key;
    queued_append *head, *tail; /* pending appends, oldest first */
    uint64_t records;
    uint64_t bytes;
    int64_t oldest_ms; /* monotonic time the batch became non-empty */
    int ready;         /* full, in its thread's ready list */
    /* A retryable write failure: records stay pending, appends refused. */
    int failing;
    unsigned failed_attempts;
    int64_t retry_at_ms; /* monotonic; no automatic retry before */
    kl_error fail_err;
    /* Dropped records, still to be reported to an append and a flush. */
    int lost_unseen_by_append;
    int lost_unseen_by_flush;
    kl_error lost_err;
} key_batch;

typedef enum request_kind {
    REQ_FLUSH_KEY,
    REQ_FLUSH_ALL,
    REQ_CHECK /* duty_cycle: run the due flushes now */
} request_kind;

/* A caller waiting for its writer thread; the caller's memory (its stack,
 * or an array for a request to every thread). */
typedef struct request {
    struct request *next;
    request_kind kind;
    const char *keyspace;
    const char *key;
    uint64_t hash;
    uint64_t queued_before; /* appends queued before the request */
    int done;
    kl_status status;
    kl_error err;
} request;

typedef struct batch_writer batch_writer;

typedef struct writer_thread {
    batch_writer *owner;
    pthread_t tid;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* queue, requests or stop for the thread */
    pthread_cond_t space_cv; /* queue space for blocked appenders */
    pthread_cond_t done_cv;  /* completed requests for their callers */
    queued_append *q_head, *q_tail;
    size_t queued;
    uint64_t queued_records, queued_bytes;
    /* The fewest records/bytes that could bring some key's batch to a
     * flush threshold (never more than the truth: a stale value only
     * wakes the thread early).  While the queue holds less, no batch can
     * be full, so the thread may sleep until the next check. */
    uint64_t room_records, room_bytes;
    int room_stale; /* a batch was written: recompute */
    int wake;       /* an appender asked for a drain */
    size_t space_waiters;
    uint64_t enqueued_total; /* sequence numbers of queued appends */
    uint64_t drained_total;
    request *requests;
    int stopping;
    kl_htab keys; /* key_batch by keyspace+key (batch_keys.c) */
    /* Full batches found while draining, written together (in parallel)
     * at the end of the round or when writes_in_flight are ready. */
    key_batch **ready;
    size_t n_ready;
} writer_thread;

struct batch_writer {
    kl_writer base;
    kl_writer *inner;
    kl_batch_config cfg;
    size_t n_threads;
    writer_thread *threads;
    kl_workpool *pool;          /* writes_in_flight - 1 helpers shared by
                                   all threads, or NULL (batch_flush.c) */
    uint64_t objects_per_write; /* a key's write may hold this many objects'
                                   worth (pipelined by a store writer) */
};

static inline void copy_error(kl_error *dst, const kl_error *src)
{
    if (dst) *dst = *src;
}

/* batch_thread.c: the writer threads.  Each function takes t->mu itself;
 * the caller holds no lock. */
int Kl_batch_thread_init(batch_writer *bw, writer_thread *t);
/* 0, or pthread_create's error. */
int Kl_batch_thread_start(writer_thread *t);
/* Stops the thread after a last attempt to write every batch; what cannot
 * be written is logged as lost. */
void Kl_batch_thread_stop(writer_thread *t);
void Kl_batch_thread_free(writer_thread *t);
/* Queues qa (NULL for an append of no records) for its key, unless the key
 * has an error to report, which is returned (and qa freed).  Blocks while
 * the queue is full. */
kl_status Kl_batch_thread_enqueue(writer_thread *t, queued_append *qa, uint64_t hash,
                                  const char *keyspace, const char *key, kl_error *err);
/* Hands r (kind and, for REQ_FLUSH_KEY, the key set) to t; then
 * Kl_batch_thread_wait returns its outcome once t has served it. */
void Kl_batch_thread_post(writer_thread *t, request *r);
kl_status Kl_batch_thread_wait(writer_thread *t, request *r, kl_error *err);

/* The outcome of a flush covering one or more keys: the first error and
 * how many keys had one. */
typedef struct flush_outcome {
    int only_due; /* timer/duty cycle: write only due batches */
    int64_t now;  /* ... as of this monotonic time */
    size_t failed_keys;
    kl_status status;
    kl_error err;
} flush_outcome;

/* batch_flush.c: writing batches (writer thread, t->mu held; released
 * while the inner writer runs). */
/* Writes the batches of keys v[0..n) (distinct keys), several at once.
 * st[i] gets each key's outcome (Kl_batch_result), errs[i] its message;
 * either may be NULL.  Keys without records count as written. */
void Kl_batch_write_set(writer_thread *t, key_batch **v, size_t n, kl_status *st, kl_error *errs);
/* The batch has reached a flush threshold. */
int Kl_batch_full(const batch_writer *bw, const key_batch *kb);
/* The batch holds all one write may take: objects_per_write times a
 * threshold. */
int Kl_batch_write_full(const batch_writer *bw, const key_batch *kb);
/* The batch should be written now: full, old, or a failing key's retry. */
int Kl_batch_due(const batch_writer *bw, const key_batch *kb, int64_t now);
/* Writes every key's batch (o->only_due: the due ones, oldest first) and
 * adds the outcome to o; frees keys left with nothing. */
void Kl_batch_flush_keys(writer_thread *t, flush_outcome *o);
/* The same for one key (an explicit flush of it). */
void Kl_batch_flush_key(writer_thread *t, key_batch *kb, flush_outcome *o);

/* batch_errors.c: per-key error bookkeeping. */
void Kl_batch_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Records the inner writer's answer st (message e) to a write of kb:
 * written, failing (kept for a retry) or rejected (dropped, loss noted). */
void Kl_batch_note_result(batch_writer *bw, key_batch *kb, kl_status st, const kl_error *e);
/* What a write of kb reports to the flush that made it, once noted. */
kl_status Kl_batch_result(const key_batch *kb, kl_status st, kl_error *err);
/* What a flush covering kb reports (consumes a loss). */
kl_status Kl_batch_error_for_flush(key_batch *kb, kl_error *err);
/* What an append to the key reports instead of queueing (consumes a
 * loss); KL_OK when it may queue.  Appenders call it under t->mu. */
kl_status Kl_batch_error_for_append(writer_thread *t, uint64_t hash, const char *keyspace,
                                    const char *key, kl_error *err);
/* Logs kb's records as lost (destroy, after the last attempt). */
void Kl_batch_report_lost(const key_batch *kb);

/* batch_keys.c: queued appends and the per-thread key table.  The table
 * functions are for the writer thread, under t->mu, except
 * Kl_batch_key_find, which appenders may call under t->mu too. */
uint64_t Kl_batch_key_hash(const char *keyspace, const char *key);
queued_append *Kl_batch_append_new(const char *keyspace, const char *key, uint64_t hash,
                                   const kl_insertion *ins, size_t n);
int Kl_batch_keys_init(writer_thread *t);
/* Frees the table, not the keys (Kl_batch_key_drop them first). */
void Kl_batch_keys_free(writer_thread *t);
size_t Kl_batch_keys_count(const writer_thread *t);
key_batch *Kl_batch_key_find(writer_thread *t, uint64_t hash, const char *keyspace,
                             const char *key);
/* The batch of qa's key, added empty if new; NULL when out of memory. */
key_batch *Kl_batch_key_get(writer_thread *t, const queued_append *qa);
/* Empties the batch (its records are written or dropped). */
void Kl_batch_key_clear(key_batch *kb);
void Kl_batch_key_release_if_idle(writer_thread *t, key_batch *kb);
/* Removes and frees the key whatever it holds. */
void Kl_batch_key_drop(writer_thread *t, key_batch *kb);
/* Calls fn on every key; fn may release or drop the key it is given. */
void Kl_batch_keys_each(writer_thread *t, void (*fn)(writer_thread *, key_batch *, void *),
                        void *arg);
#endif
