/* rebalance.c -- partition assignment and revocation (rebalance_cb).
 *
 * Revocation (a rebalance, or rd_kafka_consumer_close at shutdown): flush
 * everything, commit after a successful flush, then destroy the writers
 * (see sink.c for why they are per assignment) and unassign.  This runs
 * inside the callback, before librdkafka rejoins the group, so no other
 * process can be writing these partitions' keys yet.  If the store stays
 * down past BR_REVOKE_FLUSH_TIMEOUT_MS, the pending records are given up
 * without a commit: the partitions' next owner receives them again.
 *
 * Assignment: fresh writers, fresh positions, then rd_kafka_assign with
 * the partitions as given (offsets unset = resume from the committed
 * offsets, else auto.offset.reset).
 *
 * Only the eager protocol is handled (bridge_config.c refuses
 * cooperative assignment strategies). */
#include <stdio.h>
#include <string.h>

#include "bridge.h"
#include "log.h"

static void describe(const rd_kafka_topic_partition_list_t *l, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; l && i < l->cnt && used + 1 < cap; i++) {
        int n = snprintf(buf + used, cap - used, "%s%s[%d]", i ? " " : "", l->elems[i].topic,
                         (int)l->elems[i].partition);
        if (n < 0) break;
        used += (size_t)n;
    }
}

static void on_revoke(br_bridge *b, rd_kafka_topic_partition_list_t *parts)
{
    char names[1024];
    describe(parts, names, sizeof names);
    br_log(BR_INFO, "partitions revoked (%d): %s", parts ? parts->cnt : 0, names);
    /* After a fatal store error the writer may have dropped records:
     * committing now could make that loss permanent. */
    if (b->exit_code != BR_EXIT_STORE && b->sink.batch_w) {
        long long t0 = kl_mono_ms();
        if (br_checkpoint_until(b, t0 + BR_REVOKE_FLUSH_TIMEOUT_MS) == 0) {
            br_log(BR_INFO, "flushed and committed before revocation in %lld ms",
                   kl_mono_ms() - t0);
        } else {
            br_log(BR_ERROR, "could not flush before revocation: pending records "
                             "are not committed and will be consumed again by the "
                             "partitions' next owner");
            if ((*b->signals || b->exit_code) && b->exit_code != BR_EXIT_BAD_MESSAGE)
                br_fatal(b, BR_EXIT_STORE, "shutting down with unflushed records");
        }
    }
    /* The writers must not be destroyed under a background flush (it
     * has finished unless the checkpoint above was skipped). */
    br_checkpoint_collect(b, 1, 0);
    br_outage_reset(b);
    br_sink_close(&b->sink);
    br_positions_clear(&b->pos);
    rd_kafka_assign(b->rk, NULL);
}

static void on_assign(br_bridge *b, rd_kafka_topic_partition_list_t *parts)
{
    char names[1024];
    kl_error e = {0};
    kl_status st;
    describe(parts, names, sizeof names);
    br_log(BR_INFO, "partitions assigned (%d): %s", parts->cnt, names);
    br_checkpoint_collect(b, 1, 0); /* see on_revoke */
    br_outage_reset(b);
    if ((st = br_sink_open(&b->sink, &e)) != KL_OK)
        br_fatal(b, BR_EXIT_STORE, "cannot create the store writers: %s: %s", kl_status_str(st),
                 e.msg);
    if (br_positions_set(&b->pos, parts) != 0) br_fatal(b, BR_EXIT_INTERNAL, "out of memory");
    /* Assign even when failing, so that the close that follows has a
     * consistent state to revoke. */
    rd_kafka_resp_err_t err = rd_kafka_assign(b->rk, parts);
    if (err) br_fatal(b, BR_EXIT_KAFKA, "cannot assign partitions: %s", rd_kafka_err2str(err));
}

void br_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                     rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    br_bridge *b = opaque;
    switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS: on_assign(b, parts); break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS: on_revoke(b, parts); break;
    default:
        br_log(BR_ERROR, "rebalance failed: %s", rd_kafka_err2str(err));
        on_revoke(b, NULL);
        break;
    }
}
