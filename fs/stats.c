/* stats.c -- what a mount reports about itself.
 *
 * The modules count as they go (relaxed atomics, see fs.h klfs_stats); this
 * file renders the counters in the Prometheus text format, once, for both
 * places they are read: the file /.klstore/stats (readable with cat, no
 * tools or network needed) and the optional HTTP endpoint -o metrics=ADDR
 * (metrics/, the same /metrics and /healthz the bridge serves).
 *
 * "Pending" is what this mount handed to the batching writer and the store
 * writer has not yet reported published: records waiting for their batch,
 * or retried after a store error.  It returns to 0 when all is durable. */
#include <stdlib.h>

#include "fs.h"

static uint64_t get(_Atomic uint64_t *c) { return atomic_load_explicit(c, memory_order_relaxed); }

static void counter(FILE *f, const char *name, const char *help, _Atomic uint64_t *c)
{
    km_family(f, name, "counter", help);
    km_sample(f, name, NULL, (double)get(c));
}

static void value(FILE *f, const char *name, const char *type, const char *help, double v)
{
    km_family(f, name, type, help);
    km_sample(f, name, NULL, v);
}

static void gauge(FILE *f, const char *name, const char *help, double v)
{
    value(f, name, "gauge", help, v);
}

void stats_render(FILE *f, void *ctx)
{
    klfs *fs = ctx;
    klfs_stats *s = &fs->stats;
    kl_cache_stats c = {0};
    if (fs->reader) kl_reader_cache_stats(fs->reader, &c, NULL);
    value(f, "klstorefs_cache_hits_total", "counter",
          "Object lookups served from the reader's cache.", (double)c.hits);
    value(f, "klstorefs_cache_misses_total", "counter",
          "Object lookups that fetched from the store.", (double)c.misses);
    value(f, "klstorefs_cache_bytes", "gauge", "Object bytes the reader's cache holds.",
          (double)c.bytes);
    value(f, "klstorefs_cache_objects", "gauge", "Objects the reader's cache holds.",
          (double)c.objects);
    counter(f, "klstorefs_read_bytes_total", "Bytes returned by read(2) on keys and views.",
            &s->read_bytes);
    counter(f, "klstorefs_appended_records_total", "Lines handed to the batching writer.",
            &s->appended_records);
    counter(f, "klstorefs_appended_bytes_total", "Payload bytes of those lines.",
            &s->appended_bytes);
    counter(f, "klstorefs_published_records_total", "Lines of this mount made durable.",
            &s->published_records);
    counter(f, "klstorefs_objects_written_total", "Data objects this mount published.",
            &s->published_objects);
    uint64_t handed = get(&s->appended_bytes), done = get(&s->published_bytes);
    uint64_t handed_n = get(&s->appended_records), done_n = get(&s->published_records);
    gauge(f, "klstorefs_pending_records", "Lines handed to the writer, not yet durable.",
          handed_n > done_n ? (double)(handed_n - done_n) : 0);
    gauge(f, "klstorefs_pending_bytes", "Payload bytes of those lines.",
          handed > done ? (double)(handed - done) : 0);
    counter(f, "klstorefs_write_errors_total",
            "write(2), close(2) or fsync(2) calls that failed for a store error.",
            &s->write_errors);
    km_hist_write(f, "klstorefs_flush_seconds",
                  "How long close(2)/fsync(2) waited for a key's lines to be durable.",
                  &s->flush_seconds);
    km_write_store(f, fs->os);
}

char *stats_snapshot(klfs *fs, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f) return NULL;
    stats_render(f, fs);
    if (fclose(f)) {
        free(text);
        return NULL;
    }
    return text;
}
