/* stats.c -- the periodic status line (every stats_interval_seconds):
 * throughput, state, flush/commit figures, and per-partition position and
 * lag, so an operator sees from the log alone whether the bridge keeps up.
 *
 * Lag uses rd_kafka_get_watermark_offsets, librdkafka's cached high
 * watermark from the latest fetch response: no broker round trip, so the
 * line never stalls the loop (it may lag by one fetch). */
#include <stdio.h>
#include <string.h>

#include "bridge.h"
#include "log.h"

/* At most this many partitions are listed; the line ends with a count of
 * the rest (the totals cover all). */
#define MAX_LISTED 32

void br_stats_init(br_stats *s)
{
    memset(s, 0, sizeof *s);
    s->window_start = kl_mono_ms();
}

int64_t br_partition_lag(br_bridge *b, const br_partition *p)
{
    int64_t lo, hi;
    if (rd_kafka_get_watermark_offsets(b->rk, p->topic, p->partition, &lo, &hi) || hi < 0 ||
        p->next < 0)
        return -1;
    return hi > p->next ? hi - p->next : 0;
}

static void list_partitions(br_bridge *b, char *buf, size_t cap, int64_t *total_lag)
{
    size_t used = 0;
    *total_lag = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < b->pos.n; i++) {
        const br_partition *p = &b->pos.v[i];
        int64_t lag = br_partition_lag(b, p);
        if (lag > 0) *total_lag += lag;
        if (i >= MAX_LISTED || used + 1 >= cap) continue;
        char pos[24] = "-", lags[24] = "?";
        if (p->next >= 0) snprintf(pos, sizeof pos, "%lld", (long long)p->next);
        if (lag >= 0) snprintf(lags, sizeof lags, "%lld", (long long)lag);
        int n = snprintf(buf + used, cap - used, " %s[%d]=%s/lag %s", p->topic, (int)p->partition,
                         pos, lags);
        if (n > 0) used += (size_t)n;
    }
    if (b->pos.n > MAX_LISTED && used + 1 < cap)
        snprintf(buf + used, cap - used, " (+%zu more)", b->pos.n - MAX_LISTED);
}

void br_stats_log(br_bridge *b)
{
    br_stats *s = &b->stats;
    long long now = kl_mono_ms();
    double secs = (double)(now - s->window_start) / 1000.0;
    double rate = secs > 0 ? (double)(s->records - s->window_records) / secs : 0;
    char parts[1400], commit_age[32] = "never";
    int64_t lag;
    list_partitions(b, parts, sizeof parts, &lag);
    if (s->last_commit_at)
        snprintf(commit_age, sizeof commit_age, "%llds ago", (now - s->last_commit_at) / 1000);
    br_log(BR_INFO,
           "status: %s, %.0f records/s, %llu records (%llu bytes) "
           "written, %llu skipped, lag %lld; last flush %lld ms (%llu failed), "
           "last commit %s in %lld ms (%llu ok, %llu failed); %zu partitions:%s",
           b->paused ? "PAUSED (store failing)" : "running", rate, (unsigned long long)s->records,
           (unsigned long long)s->bytes, (unsigned long long)s->skipped, (long long)lag,
           s->last_flush_ms, (unsigned long long)s->flush_failures, commit_age, s->last_commit_ms,
           (unsigned long long)s->commits, (unsigned long long)s->commit_failures, b->pos.n, parts);
    s->window_records = s->records;
    s->window_start = now;
}
