/* metrics.c -- the bridge's /metrics and /healthz ([metrics] listen), on
 * the endpoint of metrics/ that klstorefs serves too.
 *
 * What an operator watches a Kafka consumer for: records consumed and
 * appended per partition, consumer lag, flush and commit latency, records
 * written and de-duplicated (the store writer's nonce check: the proof that
 * re-deliveries were dropped), store requests and errors by kind, and the
 * time since the last successful commit -- which is also what /healthz
 * judges: it fails once no commit succeeded for health_commit_intervals
 * commit intervals (a store outage or an unreachable group coordinator
 * both end there), so a supervisor can restart or page.
 *
 * Threads: the bridge's state is the main thread's (bridge.h), so this
 * file's render runs there, at most once a second, into a text handed
 * over under a mutex; the endpoint's thread adds only what it may read
 * itself (histograms, the commit time, the store's counters).  Per-
 * partition counters restart when a partition is assigned again
 * (Prometheus' rate() treats that as a counter reset). */
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "log.h"

#define BR_METRICS_EVERY_MS 1000

static void partition_labels(char *buf, size_t cap, const br_partition *p)
{
    char topic[512];
    snprintf(buf, cap, "topic=\"%s\",partition=\"%d\"", km_label(topic, sizeof topic, p->topic),
             (int)p->partition);
}

static void per_partition(FILE *f, br_bridge *b, const char *name, const char *type,
                          const char *help, int what)
{
    char labels[600];
    km_family(f, name, type, help);
    for (size_t i = 0; i < b->pos.n; i++) {
        const br_partition *p = &b->pos.v[i];
        double v = what == 0   ? (double)p->consumed
                   : what == 1 ? (double)p->records
                   : what == 2 ? (double)br_partition_lag(b, p)
                               : (double)p->committed;
        if (v < 0) continue; /* unknown lag, nothing committed yet */
        partition_labels(labels, sizeof labels, p);
        km_sample(f, name, labels, v);
    }
}

static void counter(FILE *f, const char *name, const char *help, double v)
{
    km_family(f, name, "counter", help);
    km_sample(f, name, NULL, v);
}

/* The main thread's part. */
static void render_state(FILE *f, br_bridge *b)
{
    const br_stats *s = &b->stats;
    kl_writer_stats w = b->sink.retired, cur;
    if (b->sink.store_w && kl_store_writer_stats(b->sink.store_w, &cur, NULL) == KL_OK) {
        w.records_written += cur.records_written;
        w.records_duplicate += cur.records_duplicate;
        w.objects += cur.objects;
    }
    per_partition(f, b, "klstore_bridge_records_consumed_total", "counter",
                  "Messages received, per assigned partition (since its assignment).", 0);
    per_partition(f, b, "klstore_bridge_records_appended_total", "counter",
                  "Records handed to the writer, per assigned partition.", 1);
    per_partition(f, b, "klstore_bridge_consumer_lag", "gauge",
                  "Messages behind the partition's high watermark (as of the last fetch).", 2);
    per_partition(f, b, "klstore_bridge_committed_offset", "gauge",
                  "The last offset the bridge committed, per partition.", 3);
    km_family(f, "klstore_bridge_assigned_partitions", "gauge", "Partitions assigned now.");
    km_sample(f, "klstore_bridge_assigned_partitions", NULL, (double)b->pos.n);
    counter(f, "klstore_bridge_records_total", "Records handed to the writer.", (double)s->records);
    counter(f, "klstore_bridge_bytes_total", "Payload bytes handed to the writer.",
            (double)s->bytes);
    counter(f, "klstore_bridge_records_skipped_total",
            "Records the parsers could not handle, skipped (on_error=skip).", (double)s->skipped);
    counter(f, "klstore_bridge_records_written_total", "Records the store writer put in logs.",
            (double)w.records_written);
    counter(f, "klstore_bridge_records_deduplicated_total",
            "Records dropped by nonce checking (re-deliveries after a restart or rebalance).",
            (double)w.records_duplicate);
    counter(f, "klstore_bridge_objects_written_total", "Data objects the bridge published.",
            (double)w.objects);
    counter(f, "klstore_bridge_flushes_total", "Flushes of the batching writer.",
            (double)s->flushes);
    counter(f, "klstore_bridge_flush_failures_total", "Flushes that failed.",
            (double)s->flush_failures);
    counter(f, "klstore_bridge_commits_total", "Offset commits that succeeded.",
            (double)s->commits);
    counter(f, "klstore_bridge_commit_failures_total", "Offset commits that failed.",
            (double)s->commit_failures);
    km_family(f, "klstore_bridge_paused", "gauge",
              "1 while consumption is paused because the store is failing.");
    km_sample(f, "klstore_bridge_paused", NULL, b->paused ? 1 : 0);
}

/* The endpoint's thread: the last rendered state plus live values. */
static void render(FILE *f, void *ctx)
{
    br_bridge *b = ctx;
    br_metrics *m = &b->metrics;
    pthread_mutex_lock(&m->mu);
    if (m->text) fputs(m->text, f);
    pthread_mutex_unlock(&m->mu);
    long long last = atomic_load(&m->last_commit_at);
    km_family(f, "klstore_bridge_last_commit_age_seconds", "gauge",
              "Seconds since the last successful commit (or since start, before the first).");
    km_sample(f, "klstore_bridge_last_commit_age_seconds", NULL, (kl_mono_ms() - last) / 1000.0);
    km_hist_write(f, "klstore_bridge_flush_seconds", "Duration of flushes of the batching writer.",
                  &m->flush_seconds);
    km_hist_write(f, "klstore_bridge_commit_seconds", "Duration of offset commits.",
                  &m->commit_seconds);
    km_write_store(f, m->os);
}

static int health(char *why, size_t cap, void *ctx)
{
    br_metrics *m = &((br_bridge *)ctx)->metrics;
    long long age = kl_mono_ms() - atomic_load(&m->last_commit_at);
    if (age <= m->health_ms) return 0;
    snprintf(why, cap, "no successful offset commit for %lld s (the limit is %lld s)", age / 1000,
             m->health_ms / 1000);
    return 1;
}

void br_metrics_tick(br_bridge *b)
{
    br_metrics *m = &b->metrics;
    if (!m->server) return;
    if (b->stats.last_commit_at) atomic_store(&m->last_commit_at, b->stats.last_commit_at);
    long long now = kl_mono_ms();
    if (m->text && now - m->rendered_at < BR_METRICS_EVERY_MS) return;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return;
    render_state(f, b);
    if (fclose(f)) {
        free(text);
        return;
    }
    pthread_mutex_lock(&m->mu);
    char *old = m->text;
    m->text = text;
    pthread_mutex_unlock(&m->mu);
    free(old);
    m->rendered_at = now;
}

int br_metrics_start(br_bridge *b, kl_objstore *os, char *err, size_t errlen)
{
    br_metrics *m = &b->metrics;
    pthread_mutex_init(&m->mu, NULL);
    km_hist_init(&m->flush_seconds, km_latency_bounds, km_latency_n);
    km_hist_init(&m->commit_seconds, km_latency_bounds, km_latency_n);
    atomic_store(&m->last_commit_at, kl_mono_ms());
    m->health_ms = (long long)b->cfg->health_intervals * b->cfg->commit_interval_s * 1000;
    m->os = os;
    if (!b->cfg->metrics_listen) return 0;
    if (!(m->server = km_server_bind(b->cfg->metrics_listen, err, errlen))) return -1;
    br_metrics_tick(b); /* a scrape right away finds the state */
    if (km_server_run(m->server, render, health, b, err, errlen)) {
        km_server_stop(m->server);
        m->server = NULL;
        return -1;
    }
    br_log(BR_INFO, "metrics: http://%s/metrics and /healthz", b->cfg->metrics_listen);
    return 0;
}

void br_metrics_stop(br_bridge *b)
{
    br_metrics *m = &b->metrics;
    km_server_stop(m->server);
    m->server = NULL;
    free(m->text);
    m->text = NULL;
    pthread_mutex_destroy(&m->mu);
}
