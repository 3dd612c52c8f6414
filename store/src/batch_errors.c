/* batch_errors.c -- the batching writer's per-key error bookkeeping.
 *
 * A write of a batch happens long after the appends it holds returned,
 * so its outcome is kept on the key and handed to whoever asks next:
 * errors of the inner writer are never swallowed.
 *  - a retryable failure (anything but KL_EINVAL) keeps the records pending;
 *    the key's error is returned by every append to the key and by every
 *    flush covering it until a retry succeeds.  Retries happen at the next
 *    explicit flush_key/flush_all, or automatically at most once per flush
 *    interval (never in a hot loop).  The first failure and the recovery
 *    are logged on stderr.
 *  - KL_EINVAL means the inner writer rejects these records, so retrying
 *    cannot help: they are dropped, logged by keyspace/key/count, and the
 *    loss is reported as KL_ECLOSED ("a pending write was lost") once to
 *    the next append of the key and once to the next flush covering it.
 *  - at destroy, whatever still cannot be written is logged as lost.
 *
 * The key's error fields are read and changed under its thread's mutex:
 * by the writer thread, which records outcomes, and by appenders, which
 * must see a failing key's error before queueing more. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "batch_internal.h"

#include <stdarg.h>
#include <stdio.h>

/* Any thread; one line at a time even with several writers logging. */
void Kl_batch_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    flockfile(stderr);
    fputs("klstore batch writer: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
    va_end(ap);
}

static void note_write_ok(key_batch *kb, uint64_t records)
{
    if (kb->failing)
        Kl_batch_log("%s/%s: recovered: %llu records written after %u failed "
                     "attempts",
                     kb->keyspace, kb->key, (unsigned long long)records, kb->failed_attempts);
    kb->failing = 0;
    kb->failed_attempts = 0;
    Kl_batch_key_clear(kb);
}

/* The inner writer rejected the records themselves: retrying cannot help. */
static void note_write_rejected(key_batch *kb, const kl_error *e)
{
    unsigned long long n = kb->records;
    Kl_batch_log("%s/%s: %llu records DROPPED: the inner writer rejected "
                 "them (%s: %s)",
                 kb->keyspace, kb->key, n, kl_status_str(e->code), e->msg);
    kl_seterr(&kb->lost_err, KL_ECLOSED,
              "%s/%s: %llu batched records were lost: the inner writer "
              "rejected them: %s",
              kb->keyspace, kb->key, n, e->msg);
    kb->lost_unseen_by_append = kb->lost_unseen_by_flush = 1;
    kb->failing = 0;
    kb->failed_attempts = 0;
    Kl_batch_key_clear(kb);
}

static void note_write_failed(batch_writer *bw, key_batch *kb, const kl_error *e)
{
    unsigned long long n = kb->records;
    if (!kb->failing)
        Kl_batch_log("%s/%s: writing %llu records failed, keeping them for a "
                     "retry at the next flush (%s: %s)",
                     kb->keyspace, kb->key, n, kl_status_str(e->code), e->msg);
    kb->failing = 1;
    kb->failed_attempts++;
    kb->retry_at_ms = kl_mono_ms() + (int64_t)bw->cfg.batch_flush_interval_millis;
    kl_seterr(&kb->fail_err, e->code,
              "%s/%s: %llu batched records are not written yet (will retry "
              "at the next flush): %s",
              kb->keyspace, kb->key, n, e->msg);
}

void Kl_batch_note_result(batch_writer *bw, key_batch *kb, kl_status st, const kl_error *e)
{
    if (st == KL_OK)
        note_write_ok(kb, kb->records);
    else if (st == KL_EINVAL)
        note_write_rejected(kb, e);
    else
        note_write_failed(bw, kb, e);
}

/* What a write of kb reports, once Kl_batch_note_result has recorded st. */
kl_status Kl_batch_result(const key_batch *kb, kl_status st, kl_error *err)
{
    if (st != KL_OK) copy_error(err, kb->failing ? &kb->fail_err : &kb->lost_err);
    return st == KL_OK ? KL_OK : (kb->failing ? st : KL_ECLOSED);
}

/* The error a flush covering this key reports (and consumes, for losses). */
kl_status Kl_batch_error_for_flush(key_batch *kb, kl_error *err)
{
    if (kb->failing) {
        copy_error(err, &kb->fail_err);
        return kb->fail_err.code;
    }
    if (kb->lost_unseen_by_flush) {
        kb->lost_unseen_by_flush = 0;
        copy_error(err, &kb->lost_err);
        return KL_ECLOSED;
    }
    return KL_OK;
}

/* The error an append to this key must return instead of queueing, if any.
 * Called with the thread's mutex held (by appenders). */
kl_status Kl_batch_error_for_append(writer_thread *t, uint64_t hash, const char *keyspace,
                                    const char *key, kl_error *err)
{
    key_batch *kb = Kl_batch_key_find(t, hash, keyspace, key);
    if (!kb) return KL_OK;
    if (kb->failing) {
        copy_error(err, &kb->fail_err);
        return kb->fail_err.code;
    }
    if (kb->lost_unseen_by_append) {
        kb->lost_unseen_by_append = 0;
        copy_error(err, &kb->lost_err);
        return KL_ECLOSED;
    }
    return KL_OK;
}

/* Destroy: what the last attempt could not write is lost; say so. */
void Kl_batch_report_lost(const key_batch *kb)
{
    if (kb->records)
        Kl_batch_log("%s/%s: %llu records LOST at shutdown: %s", kb->keyspace, kb->key,
                     (unsigned long long)kb->records,
                     kb->failing ? kb->fail_err.msg : kb->lost_err.msg);
}
