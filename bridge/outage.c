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
 * Pausing and the backoff are failure.c's (br_store_failed), below the
 * files that report the failure; this file retries and recovers.  Once a
 * flush succeeds, the refused run is appended, each partition is
 * seeked back to the first offset not yet handed to the writer (anything
 * librdkafka had fetched before the pause took effect was dropped, and
 * librdkafka's own position already moved past it), the partitions are
 * resumed and the progress is committed.
 *
 * Errors that retrying cannot fix end the bridge at once (failure.c). */
#include <stdio.h>

#include "bridge.h"
#include "log.h"

/* Seeks every partition to the first offset not handed to the writer. */
static void seek_back(br_bridge *b)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)b->pos.n);
    for (size_t i = 0; i < b->pos.n; i++) {
        br_partition *p = &b->pos.v[i];
        int64_t at = p->next >= 0 ? p->next : p->resume_at;
        p->resume_at = -1;
        if (at >= 0) rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = at;
    }
    if (l->cnt) {
        rd_kafka_error_t *err = rd_kafka_seek_partitions(b->rk, l, 10000);
        if (err) {
            br_log(BR_WARN, "seek after the store outage failed: %s", rd_kafka_error_string(err));
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
    if (!b->paused || kl_mono_ms() < b->retry_at) return;
    /* A background flush may have been running when the writer refused
     * a run; its result comes first (and may push retry_at further). */
    if (br_checkpoint_collect(b, 1, 1) || b->exit_code || kl_mono_ms() < b->retry_at) return;
    rd_kafka_topic_partition_list_t *snap = br_positions_uncommitted(&b->pos);
    kl_error e = {0};
    kl_status st = br_flush(b, &e);
    if (st) {
        br_store_failed(b, st, &e);
    } else {
        br_log(BR_INFO,
               "store recovered after %lld s (%u failed attempts); "
               "resuming consumption",
               (kl_mono_ms() - b->paused_since) / 1000, b->failed_attempts);
        br_commit(b, snap);
        /* Still paused while the refused run goes in: if the writer
         * refuses it again, the backoff keeps growing. */
        if (br_pending_submit(b) == 0 && !b->exit_code) {
            b->paused = 0;
            seek_back(b);
            br_pause_all(b, 0);
        }
    }
    if (snap) rd_kafka_topic_partition_list_destroy(snap);
}

/* At revocation: a refused run belongs to partitions we no longer own;
 * their next owner gets those records again from the last commit. */
void br_outage_reset(br_bridge *b)
{
    br_pending_discard(&b->pending);
    b->paused = 0;
    b->failed_attempts = 0;
}
