/* outage.c -- riding out a failing store.
 *
 * When the batching writer refuses a run of records or a flush fails with
 * a retryable error (KL_EIO: S3 unreachable, 5xx, a read-only disk;
 * KL_ENOSPC: a full disk), the bridge stops consuming: it pauses every assigned partition,
 * keeps the refused run in hand (pending.c), and retries the flush with
 * exponential backoff (0.5 s .. 30 s), logging each attempt.  Records
 * already handed over stay pending in the batching writer.  It keeps
 * calling rd_kafka_consumer_poll meanwhile, so the consumer stays in its
 * group (max.poll.interval.ms) and rebalances are still served.
 *
 * Once a flush succeeds, the refused run is appended, each partition is
 * seeked back to the first offset not yet handed to the writer (anything
 * librdkafka had fetched before the pause took effect was dropped, and
 * librdkafka's own position already moved past it), the partitions are
 * resumed and the progress is committed.
 *
 * Errors that retrying cannot fix (records rejected or lost by the
 * writer, corrupt store data, out of memory) end the bridge with exit
 * code 4 at once (main.c), without writing or committing anything more:
 * a restart re-delivers from the last commit. */
#include <stdio.h>

#include "bridge.h"
#include "log.h"

int br_store_error_retryable(kl_status st)
{
    return st == KL_EIO || st == KL_ENOTFOUND || st == KL_ENOSPC;
}

static void pause_all(br_bridge *b, int pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t err = rd_kafka_assignment(b->rk, &l);
    if (!err && l && l->cnt)
        err = pause ? rd_kafka_pause_partitions(b->rk, l)
                    : rd_kafka_resume_partitions(b->rk, l);
    if (err)
        br_log(BR_WARN, "cannot %s partitions: %s", pause ? "pause" : "resume",
               rd_kafka_err2str(err));
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
}

void br_store_failed(br_bridge *b, kl_status st, const kl_error *e)
{
    long long now = kl_mono_ms();
    if (!br_store_error_retryable(st)) {
        br_fatal(b, BR_EXIT_STORE, "store error that retrying cannot fix: %s: %s",
                 kl_status_str(st), e->msg);
        return;
    }
    if (!b->paused) {
        pause_all(b, 1);
        b->paused = 1;
        b->paused_since = now;
        b->backoff_ms = BR_BACKOFF_MIN_MS;
        b->failed_attempts = 1;
        br_log(BR_ERROR, "store write failed: %s; consumption paused, records "
               "stay pending in the batching writer, nothing is committed; "
               "retrying in %lld ms", e->msg, b->backoff_ms);
    } else {
        b->failed_attempts++;
        b->backoff_ms *= 2;
        if (b->backoff_ms > BR_BACKOFF_MAX_MS)
            b->backoff_ms = BR_BACKOFF_MAX_MS;
        br_log(BR_WARN, "store still failing (attempt %u, paused for %lld s): "
               "%s; retrying in %lld ms", b->failed_attempts,
               (now - b->paused_since) / 1000, e->msg, b->backoff_ms);
    }
    b->retry_at = now + b->backoff_ms;
}

/* Seeks every partition to the first offset not handed to the writer. */
static void seek_back(br_bridge *b)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)b->pos.n);
    for (size_t i = 0; i < b->pos.n; i++) {
        br_partition *p = &b->pos.v[i];
        int64_t at = p->next >= 0 ? p->next : p->resume_at;
        p->resume_at = -1;
        if (at >= 0)
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = at;
    }
    if (l->cnt) {
        rd_kafka_error_t *err = rd_kafka_seek_partitions(b->rk, l, 10000);
        if (err) {
            br_log(BR_WARN, "seek after the store outage failed: %s",
                   rd_kafka_error_string(err));
            rd_kafka_error_destroy(err);
        }
        for (int i = 0; i < l->cnt; i++)
            if (l->elems[i].err)
                br_log(BR_WARN, "seek of %s[%d] to %lld failed: %s", l->elems[i].topic,
                       (int)l->elems[i].partition, (long long)l->elems[i].offset,
                       rd_kafka_err2str(l->elems[i].err));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

void br_outage_tick(br_bridge *b)
{
    if (!b->paused || kl_mono_ms() < b->retry_at)
        return;
    /* A background flush may have been running when the writer refused
     * a run; its result comes first (and may push retry_at further). */
    if (br_checkpoint_collect(b, 1, 1) || b->exit_code || kl_mono_ms() < b->retry_at)
        return;
    rd_kafka_topic_partition_list_t *snap = br_positions_uncommitted(&b->pos);
    kl_error e = {0};
    kl_status st = br_flush(b, &e);
    if (st) {
        br_store_failed(b, st, &e);
    } else {
        br_log(BR_INFO, "store recovered after %lld s (%u failed attempts); "
               "resuming consumption", (kl_mono_ms() - b->paused_since) / 1000,
               b->failed_attempts);
        br_commit(b, snap);
        /* Still paused while the refused run goes in: if the writer
         * refuses it again, the backoff keeps growing. */
        if (br_pending_submit(b) == 0 && !b->exit_code) {
            b->paused = 0;
            seek_back(b);
            pause_all(b, 0);
        }
    }
    if (snap)
        rd_kafka_topic_partition_list_destroy(snap);
}

/* At revocation: a refused run belongs to partitions we no longer own;
 * their next owner gets those records again from the last commit. */
void br_outage_reset(br_bridge *b)
{
    br_pending_discard(&b->pending);
    b->paused = 0;
    b->failed_attempts = 0;
}
