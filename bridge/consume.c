/* consume.c -- the main loop: poll Kafka, turn each record into an
 * insertion (parsers.c), hand it to the batching writer, and every
 * offset_commit_interval_seconds flush and commit (checkpoint.c).
 *
 * The flush runs on its own thread (flusher.c) so that polling and
 * appending go on meanwhile.  Records are collected in runs per key
 * (pending.c).  A record's partition position (`next`, positions.c)
 * advances only once the writer accepted it or the on_error=skip policy
 * dropped it with a log line, so a commit can never cover a record that
 * is not in the store (or deliberately skipped). */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "bridge.h"
#include "log.h"
#include "parsers.h"

/* Parses a message into keyspace, key and insertion.  Returns 0, or -1
 * with the reason in why. */
static int to_insertion(const br_config *c, rd_kafka_message_t *m, char *ks_buf, const char **ks,
                        char *key_buf, const char **key, kl_insertion *ins, char *why,
                        size_t whylen)
{
    br_msg v;
    br_msg_from_kafka(&v, m);
    memset(ins, 0, sizeof *ins);
    ins->data = m->payload;
    ins->len = m->len;
    if (ins->len > KL_RECORD_MAX) {
        snprintf(why, whylen,
                 "the payload is %zu bytes, over the store's limit "
                 "of %u",
                 ins->len, (unsigned)KL_RECORD_MAX);
        return -1;
    }
    if (br_eval_name(&c->keyspace, &v, "keyspace", ks_buf, ks, why, whylen) ||
        br_eval_name(&c->key, &v, "key", key_buf, key, why, whylen) ||
        br_eval_nonce(&c->nonce, &v, &ins->has_nonce, &ins->nonce, why, whylen) ||
        br_eval_timestamp(&c->timestamp, &v, &ins->has_timestamp, &ins->timestamp, why, whylen))
        return -1;
    return 0;
}

/* A message that arrives while consumption is paused (or that could not
 * join the pending run because the writer just refused it): drop it, and
 * remember where to seek back to if nothing of its partition was handed
 * to the writer yet (librdkafka's own position has moved past it). */
static void drop_while_paused(br_partition *p, rd_kafka_message_t *m)
{
    if (p->next < 0 && (p->resume_at < 0 || m->offset < p->resume_at)) p->resume_at = m->offset;
    rd_kafka_message_destroy(m);
}

/* A record no parser can make sense of: skip it loudly, or stop before
 * it.  The run before it has been appended already. */
static void bad_message(br_bridge *b, br_partition *p, rd_kafka_message_t *m, const char *why)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    if (b->cfg->on_error == BR_ON_ERROR_SKIP) {
        b->stats.skipped++;
        br_log(BR_WARN,
               "skipping %s[%d] offset %lld (on_error=skip, %llu "
               "skipped so far): %s",
               topic, (int)m->partition, (long long)m->offset, (unsigned long long)b->stats.skipped,
               why);
        p->next = m->offset + 1;
    } else {
        br_fatal(b, BR_EXIT_BAD_MESSAGE,
                 "cannot parse %s[%d] offset %lld: %s; "
                 "stopping (on_error=stop): offsets are committed up to this "
                 "record, not past it -- fix the record or the parsers, or set "
                 "[parser] on_error=skip",
                 topic, (int)m->partition, (long long)m->offset, why);
    }
    rd_kafka_message_destroy(m);
}

void br_deliver(br_bridge *b, br_partition *p, rd_kafka_message_t *m)
{
    char ks_buf[KL_NAME_MAX + 1], key_buf[KL_NAME_MAX + 1], why[1024];
    const char *ks, *key;
    kl_insertion ins;
    p->consumed++;
    if (to_insertion(b->cfg, m, ks_buf, &ks, key_buf, &key, &ins, why, sizeof why)) {
        /* Everything before it goes to the writer first, so that a skip
         * or a stop is exact. */
        if (br_pending_submit(b))
            drop_while_paused(p, m);
        else
            bad_message(b, p, m, why);
        return;
    }
    if (!br_pending_fits(&b->pending, ks, key, ins.len) && br_pending_submit(b)) {
        drop_while_paused(p, m);
        return;
    }
    br_pending_add(&b->pending, ks, key, m, &ins);
}

/* Errors librdkafka reports as messages.  It retries by itself; these
 * are only logged (at most once per 30 s per code), unless fatal. */
static void kafka_event(br_bridge *b, rd_kafka_message_t *m)
{
    static rd_kafka_resp_err_t last;
    static long long last_at;
    static unsigned repeated;
    rd_kafka_resp_err_t err = m->err;
    if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char reason[512];
        rd_kafka_fatal_error(b->rk, reason, sizeof reason);
        br_fatal(b, BR_EXIT_KAFKA, "fatal Kafka error: %s", reason);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
        err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
        br_fatal(b, BR_EXIT_KAFKA, "Kafka refuses access: %s", rd_kafka_message_errstr(m));
        return;
    }
    long long now = kl_mono_ms();
    if (err == last && now - last_at < 30000) {
        repeated++;
        return;
    }
    br_log(BR_WARN, "kafka: %s%s%s [%d]: %s%s", m->rkt ? "topic " : "",
           m->rkt ? rd_kafka_topic_name(m->rkt) : "", m->rkt ? "" : "consumer", (int)m->partition,
           rd_kafka_message_errstr(m), repeated ? " (and earlier repeats)" : "");
    last = err;
    last_at = now;
    repeated = 0;
}

static void handle_message(br_bridge *b, rd_kafka_message_t *m)
{
    if (m->err) {
        kafka_event(b, m);
        rd_kafka_message_destroy(m);
        return;
    }
    br_partition *p = br_positions_find(&b->pos, rd_kafka_topic_name(m->rkt), m->partition);
    if (!p || (p->next >= 0 && m->offset < p->next) || b->exit_code) {
        /* Not (or no longer) ours, fetched again after a seek, or we are
         * stopping: it will be re-delivered from the committed offset. */
        rd_kafka_message_destroy(m);
        return;
    }
    if (b->paused) {
        drop_while_paused(p, m);
        return;
    }
    br_deliver(b, p, m);
}

/* Messages handled per turn of the loop before timers are looked at:
 * reading the clock for every record cost more than the timers need.
 *
 * Why not rd_kafka_consume_batch_queue?  In librdkafka 2.0.x (Debian 12)
 * the batch API can skip offsets around pause/resume and hand out stale
 * messages around seek and rebalances (fixed in 2.1.0, CHANGELOG "Consume
 * Batch API"); the bridge pauses, resumes and seeks during store outages,
 * and a skipped offset would be committed over.  consumer_poll has no
 * such problem, and its per-call cost is small beside the append. */
#define BR_POLL_BURST 1024

/* Handles what the consumer queue holds (at most a burst), waiting up to
 * timeout_ms for the first message.  Returns the number handled. */
static int poll_burst(br_bridge *b, int timeout_ms)
{
    int n = 0;
    rd_kafka_message_t *m;
    while (n < BR_POLL_BURST && !b->exit_code && !*b->signals &&
           (m = rd_kafka_consumer_poll(b->rk, n ? 0 : timeout_ms))) {
        handle_message(b, m);
        n++;
    }
    return n;
}

int br_run(br_bridge *b)
{
    long long commit_ms = (long long)b->cfg->commit_interval_s * 1000;
    long long stats_ms = b->cfg->stats_interval_ms;
    long long now = kl_mono_ms();
    b->next_checkpoint = now + commit_ms;
    b->next_stats = stats_ms ? now + stats_ms : LLONG_MAX;
    while (!*b->signals && !b->exit_code) {
        /* Short waits while a run is pending (append it as soon as the
         * queue is empty) or a flush runs (commit soon after it ends). */
        int timeout = b->pending.n ? 0 : b->flusher.busy ? 10 : 100;
        if (poll_burst(b, timeout) < BR_POLL_BURST && b->pending.n && !b->paused && !b->exit_code)
            br_pending_submit(b); /* nothing more right now: append the run */
        br_checkpoint_collect(b, 0, 1);
        br_outage_tick(b);
        now = kl_mono_ms();
        if (!b->paused && !b->exit_code && now >= b->next_checkpoint && !b->flusher.busy) {
            br_checkpoint(b);
            b->next_checkpoint = now + commit_ms;
        }
        if (now >= b->next_stats) {
            br_stats_log(b);
            b->next_stats = now + stats_ms;
        }
        br_metrics_tick(b);
    }
    return b->exit_code;
}
