/* checkpoint.c -- flush, then commit: the ordering that makes the bridge
 * exactly-once.
 *
 * Offsets are committed only after kl_flush_all returned KL_OK, and only
 * the offsets of records handed to the writer before that flush began
 * (the snapshot is taken first; the periodic flush runs on flusher.c's
 * thread while the main thread goes on appending, but records appended
 * after the snapshot are not in it).  So a committed offset always means
 * "everything before it is durable in the store".  A crash anywhere
 * re-delivers what follows the last commit; nonce checking drops the
 * re-delivered records that had already been written.  A failed flush
 * never leads to a commit.
 *
 * Commits are synchronous in effect -- the bridge waits for the result --
 * but use rd_kafka_commit_queue with a bounded wait instead of
 * rd_kafka_commit, which can block indefinitely while the group
 * coordinator is unreachable; a commit that times out is logged, and the
 * next checkpoint commits the (newer) offsets again. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bridge.h"
#include "log.h"

kl_status br_flush(br_bridge *b, kl_error *err)
{
    if (!b->sink.batch_w) return KL_OK;
    long long t0 = kl_mono_ms();
    kl_status st = kl_flush_all(b->sink.batch_w, err);
    b->stats.last_flush_ms = kl_mono_ms() - t0;
    km_hist_observe(&b->metrics.flush_seconds, b->stats.last_flush_ms / 1000.0);
    b->stats.flushes++;
    if (st) b->stats.flush_failures++;
    return st;
}

static void log_partition_errors(const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; l && i < l->cnt; i++)
        if (l->elems[i].err)
            br_log(BR_WARN, "commit of %s[%d] at offset %lld failed: %s", l->elems[i].topic,
                   (int)l->elems[i].partition, (long long)l->elems[i].offset,
                   rd_kafka_err2str(l->elems[i].err));
}

/* Waits for the result of commit number `seq`; results of earlier
 * commits that timed out are logged and passed over. */
static int wait_commit(br_bridge *b, uintptr_t seq, long long deadline)
{
    for (;;) {
        long long left = deadline - kl_mono_ms();
        if (left <= 0) return -1;
        rd_kafka_event_t *ev = rd_kafka_queue_poll(b->commitq, (int)left);
        if (!ev) continue;
        if (rd_kafka_event_type(ev) != RD_KAFKA_EVENT_OFFSET_COMMIT) {
            rd_kafka_event_destroy(ev);
            continue;
        }
        uintptr_t got = (uintptr_t)rd_kafka_event_opaque(ev);
        rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
        const rd_kafka_topic_partition_list_t *l = rd_kafka_event_topic_partition_list(ev);
        int rc = 0;
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
            br_log(BR_WARN,
                   "offset commit%s failed: %s (the records are in "
                   "the store; the next commit covers them, and records "
                   "re-delivered meanwhile are dropped by nonce checking)",
                   got == seq ? "" : " (an earlier, timed-out one)", rd_kafka_err2str(err));
            log_partition_errors(l);
            rc = -1;
        } else {
            br_positions_committed(&b->pos, l);
            log_partition_errors(l);
        }
        rd_kafka_event_destroy(ev);
        if (got == seq) return rc;
    }
}

int br_commit(br_bridge *b, rd_kafka_topic_partition_list_t *offsets)
{
    if (!offsets) { /* nothing new: the commit is current */
        b->stats.last_commit_at = kl_mono_ms();
        return 0;
    }
    uintptr_t seq = ++b->commit_seq;
    long long t0 = kl_mono_ms();
    rd_kafka_resp_err_t err = rd_kafka_commit_queue(b->rk, offsets, b->commitq, NULL, (void *)seq);
    int rc;
    if (err) {
        br_log(BR_WARN, "offset commit failed: %s", rd_kafka_err2str(err));
        rc = -1;
    } else if ((rc = wait_commit(b, seq, t0 + BR_COMMIT_TIMEOUT_MS)) &&
               kl_mono_ms() >= t0 + BR_COMMIT_TIMEOUT_MS) {
        br_log(BR_WARN,
               "offset commit: no answer within %d ms (broker or group "
               "coordinator unreachable?); will commit again at the next checkpoint",
               BR_COMMIT_TIMEOUT_MS);
    }
    b->stats.last_commit_ms = kl_mono_ms() - t0;
    km_hist_observe(&b->metrics.commit_seconds, b->stats.last_commit_ms / 1000.0);
    if (rc) {
        b->stats.commit_failures++;
    } else {
        b->stats.commits++;
        b->stats.last_commit_at = kl_mono_ms();
    }
    return rc;
}

int br_checkpoint(br_bridge *b)
{
    if (b->flusher.busy) return 0;       /* the last one is still running */
    if (br_pending_submit(b)) return -1; /* refused: paused, outage.c retries */
    rd_kafka_topic_partition_list_t *snap = br_positions_uncommitted(&b->pos);
    if (!b->sink.batch_w) { /* nothing to flush */
        br_commit(b, snap);
        if (snap) rd_kafka_topic_partition_list_destroy(snap);
        return 0;
    }
    b->flush_snap = snap;
    br_flusher_begin(&b->flusher, b->sink.batch_w);
    return 0;
}

int br_checkpoint_collect(br_bridge *b, int wait, int pause)
{
    kl_status st;
    kl_error e;
    long long ms;
    if (!b->flusher.busy) return 0;
    if (!br_flusher_result(&b->flusher, wait, &st, &e, &ms)) return 1;
    rd_kafka_topic_partition_list_t *snap = b->flush_snap;
    b->flush_snap = NULL;
    b->stats.last_flush_ms = ms;
    b->stats.flushes++;
    km_hist_observe(&b->metrics.flush_seconds, ms / 1000.0);
    if (st == KL_OK && b->exit_code != BR_EXIT_STORE) br_commit(b, snap);
    if (snap) rd_kafka_topic_partition_list_destroy(snap);
    if (st == KL_OK) return 0;
    b->stats.flush_failures++;
    /* A loss (KL_ECLOSED) is reported to one flush only: acting on it
     * here is the only chance not to commit past it later. */
    if (!br_store_error_retryable(st) || pause)
        br_store_failed(b, st, &e);
    else
        br_log(BR_WARN, "flush failed: %s: %s", kl_status_str(st), e.msg);
    return -1;
}

static void sleep_ms(long long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: fine */
}

/* One attempt of the blocking checkpoint: the pending run, then a flush.
 * *snap receives the offsets the flush covers. */
static kl_status submit_and_flush(br_bridge *b, rd_kafka_topic_partition_list_t **snap, kl_error *e)
{
    *snap = NULL;
    if (b->pending.n) {
        kl_status st = kl_append(b->sink.batch_w, b->pending.keyspace, b->pending.key,
                                 b->pending.ins, b->pending.n, e);
        if (st) return st;
        /* accepted: let pending.c advance the positions */
        br_pending_accepted(b);
    }
    *snap = br_positions_uncommitted(&b->pos);
    return br_flush(b, e);
}

int br_checkpoint_until(br_bridge *b, long long deadline)
{
    long long backoff = BR_BACKOFF_MIN_MS;
    rd_kafka_topic_partition_list_t *snap = NULL;
    kl_error e = {0};
    kl_status st;
    unsigned attempt = 0;
    /* A retryable failure of the background flush shows again below. */
    br_checkpoint_collect(b, 1, 0);
    if (b->exit_code == BR_EXIT_STORE) return -1;
    while ((st = submit_and_flush(b, &snap, &e)) != KL_OK) {
        if (snap) rd_kafka_topic_partition_list_destroy(snap);
        snap = NULL;
        attempt++;
        if (!br_store_error_retryable(st)) {
            br_log(BR_ERROR, "flush failed and cannot be retried: %s: %s", kl_status_str(st),
                   e.msg);
            break;
        }
        if (kl_mono_ms() + backoff > deadline || *b->signals > 1) {
            br_log(BR_ERROR, "flush failed %u times, giving up: %s: %s", attempt, kl_status_str(st),
                   e.msg);
            break;
        }
        br_log(BR_WARN, "flush failed (attempt %u), retrying in %lld ms: %s", attempt, backoff,
               e.msg);
        sleep_ms(backoff);
        backoff = backoff * 2 > BR_BACKOFF_MAX_MS ? BR_BACKOFF_MAX_MS : backoff * 2;
    }
    if (st == KL_OK) br_commit(b, snap);
    if (snap) rd_kafka_topic_partition_list_destroy(snap);
    return st == KL_OK ? 0 : -1;
}
