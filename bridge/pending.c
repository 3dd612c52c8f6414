/* pending.c -- consecutive records for the same keyspace/key, appended to
 * the batching writer as one kl_append.
 *
 * Why: one kl_append per Kafka record costs an allocation, a mutex and a
 * writer-thread wake-up each; at hundreds of thousands of records per
 * second that, not the store, was the bottleneck.  Kafka delivers records
 * in runs per partition (one fetch response each), so with keys derived
 * from the partition (the usual RecordPartition) runs are long.
 *
 * A run holds the rd_kafka_message_t objects themselves (the insertions
 * point into their payloads) until the writer accepted them; only then do
 * the partitions' positions advance.  If the writer refuses the run (the
 * store is failing), the run stays here, consumption pauses (failure.c)
 * and the same run is submitted again once a flush succeeds. */
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "log.h"

int br_pending_init(br_pending *r)
{
    memset(r, 0, sizeof *r);
    r->msgs = malloc(BR_PENDING_MAX * sizeof *r->msgs);
    r->ins = malloc(BR_PENDING_MAX * sizeof *r->ins);
    return r->msgs && r->ins ? 0 : -1;
}

void br_pending_discard(br_pending *r)
{
    for (size_t i = 0; i < r->n; i++) rd_kafka_message_destroy(r->msgs[i]);
    r->n = 0;
    r->bytes = 0;
}

void br_pending_free(br_pending *r)
{
    br_pending_discard(r);
    free(r->msgs);
    free(r->ins);
    memset(r, 0, sizeof *r);
}

int br_pending_fits(const br_pending *r, const char *keyspace, const char *key, size_t len)
{
    return r->n == 0 || (r->n < BR_PENDING_MAX && r->bytes + len <= BR_PENDING_BYTES &&
                         !strcmp(r->keyspace, keyspace) && !strcmp(r->key, key));
}

void br_pending_add(br_pending *r, const char *keyspace, const char *key, rd_kafka_message_t *m,
                    const kl_insertion *ins)
{
    if (r->n == 0) {
        strcpy(r->keyspace, keyspace); /* both validated names */
        strcpy(r->key, key);
    }
    r->msgs[r->n] = m;
    r->ins[r->n] = *ins;
    r->n++;
    r->bytes += ins->len;
}

/* The writer has the run: advance each record's partition. */
void br_pending_accepted(br_bridge *b)
{
    br_pending *r = &b->pending;
    br_partition *p = NULL;
    for (size_t i = 0; i < r->n; i++) {
        rd_kafka_message_t *m = r->msgs[i];
        /* A run is mostly one partition: look up only when it changes
         * (the messages are alive, so equal handles mean equal topics). */
        if (!i || m->rkt != r->msgs[i - 1]->rkt || m->partition != r->msgs[i - 1]->partition)
            p = br_positions_find(&b->pos, rd_kafka_topic_name(m->rkt), m->partition);
        if (p && m->offset + 1 > p->next) {
            p->next = m->offset + 1;
            p->records++;
        }
        b->stats.records++;
        b->stats.bytes += m->len;
    }
    br_pending_discard(r);
}

int br_pending_submit(br_bridge *b)
{
    br_pending *r = &b->pending;
    kl_error e = {0};
    if (!r->n) return 0;
    kl_status st = kl_append(b->sink.batch_w, r->keyspace, r->key, r->ins, r->n, &e);
    if (st == KL_OK) {
        br_pending_accepted(b);
        return 0;
    }
    if (!br_store_error_retryable(st))
        br_pending_discard(r); /* fatal: not committed, re-delivered */
    br_store_failed(b, st, &e);
    return -1;
}
