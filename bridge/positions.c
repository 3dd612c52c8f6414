/* positions.c -- per-partition offsets the bridge tracks itself.
 *
 * Why not librdkafka's stored offsets (enable.auto.offset.store=true, as
 * the spec requires)?  librdkafka stores an offset for every message the
 * application *receives*, including the message the writer refused during
 * a store outage and messages dropped while paused.  Committing those
 * would skip records.  So the bridge records `next` only when a record
 * was handed to the batching writer (or deliberately skipped), and always
 * commits this explicit list; librdkafka's stored offsets are never
 * committed (auto commit is off and close does not commit). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

void br_positions_clear(br_positions *p)
{
    for (size_t i = 0; i < p->n; i++) free(p->v[i].topic);
    free(p->v);
    memset(p, 0, sizeof *p);
}

int br_positions_set(br_positions *p, const rd_kafka_topic_partition_list_t *l)
{
    br_positions_clear(p);
    if (!l || !l->cnt) return 0;
    if (!(p->v = calloc((size_t)l->cnt, sizeof *p->v))) return -1;
    for (int i = 0; i < l->cnt; i++) {
        br_partition *q = &p->v[p->n];
        if (!(q->topic = strdup(l->elems[i].topic))) {
            br_positions_clear(p);
            return -1;
        }
        q->partition = l->elems[i].partition;
        q->next = q->committed = q->resume_at = -1;
        p->n++;
    }
    return 0;
}

br_partition *br_positions_find(br_positions *p, const char *topic, int32_t part)
{
    if (p->last && p->last->partition == part && !strcmp(p->last->topic, topic)) return p->last;
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].partition == part && !strcmp(p->v[i].topic, topic)) return p->last = &p->v[i];
    return NULL;
}

rd_kafka_topic_partition_list_t *br_positions_uncommitted(const br_positions *p)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    for (size_t i = 0; i < p->n; i++) {
        const br_partition *q = &p->v[i];
        if (q->next < 0 || q->next == q->committed) continue;
        if (!l) l = rd_kafka_topic_partition_list_new((int)p->n);
        rd_kafka_topic_partition_list_add(l, q->topic, q->partition)->offset = q->next;
    }
    return l;
}

void br_positions_committed(br_positions *p, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; l && i < l->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &l->elems[i];
        br_partition *q;
        if (e->err || !(q = br_positions_find(p, e->topic, e->partition))) continue;
        if (e->offset > q->committed) q->committed = e->offset;
    }
}
