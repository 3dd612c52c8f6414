/* prom.c -- the Prometheus text exposition format (version 0.0.4), fixed-
 * bucket histograms and the object store's counters (see metrics.h).
 *
 * Numbers are printed in the fewest digits that read back as the same
 * double, so counters stay exact up to 2^53 and 0.1 prints as 0.1;
 * histograms keep microsecond sums in an
 * integer so that concurrent observations need only atomic adds. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

void km_family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void km_sample(FILE *f, const char *name, const char *labels, double value)
{
    if (labels && *labels)
        fprintf(f, "%s{%s} ", name, labels);
    else
        fprintf(f, "%s ", name);
    char num[32];
    if (isinf(value)) {
        fputs(value > 0 ? "+Inf\n" : "-Inf\n", f);
        return;
    }
    /* The shortest of %.15g..%.17g that reads back as the same double. */
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(num, sizeof num, "%.*g", digits, value);
        if (strtod(num, NULL) == value) break;
    }
    fprintf(f, "%s\n", num);
}

char *km_label(char *buf, size_t cap, const char *value)
{
    size_t o = 0;
    for (const char *p = value; *p && o + 3 < cap; p++) {
        char c = *p;
        if (c == '\\' || c == '"' || c == '\n') {
            buf[o++] = '\\';
            c = c == '\n' ? 'n' : c;
        }
        buf[o++] = c;
    }
    buf[o] = '\0';
    return buf;
}

const double km_latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                    1,     2.5,  5,     10,   30,  60,   120};
const int km_latency_n = sizeof km_latency_bounds / sizeof km_latency_bounds[0];

void km_hist_init(km_histogram *h, const double *bounds, int n)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->n = n < KM_MAX_BUCKETS ? n : KM_MAX_BUCKETS;
}

void km_hist_observe(km_histogram *h, double seconds)
{
    int i = 0;
    while (i < h->n && seconds > h->bounds[i]) i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    if (seconds > 0)
        atomic_fetch_add_explicit(&h->sum_us, (uint64_t)(seconds * 1e6 + 0.5),
                                  memory_order_relaxed);
}

void km_hist_write(FILE *f, const char *name, const char *help, km_histogram *h)
{
    char series[256], labels[64];
    km_family(f, name, "histogram", help);
    snprintf(series, sizeof series, "%s_bucket", name);
    uint64_t cumulative = 0;
    for (int i = 0; i <= h->n; i++) {
        cumulative += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->n)
            snprintf(labels, sizeof labels, "le=\"%g\"", h->bounds[i]);
        else
            snprintf(labels, sizeof labels, "le=\"+Inf\"");
        km_sample(f, series, labels, (double)cumulative);
    }
    snprintf(series, sizeof series, "%s_sum", name);
    km_sample(f, series, NULL, atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
    snprintf(series, sizeof series, "%s_count", name);
    km_sample(f, series, NULL, (double)cumulative);
}

void km_write_store(FILE *f, kl_objstore *os)
{
    kl_os_stats st;
    kl_os_stats_read(os, &st);
    char labels[128];
    km_family(f, "klstore_store_requests_total", "counter",
              "Object-store operations completed, by operation.");
    for (int op = 0; op < KL_OP_COUNT; op++) {
        snprintf(labels, sizeof labels, "op=\"%s\"", kl_os_op_name(op));
        km_sample(f, "klstore_store_requests_total", labels, (double)st.calls[op]);
    }
    km_family(f, "klstore_store_errors_total", "counter",
              "Object-store operations that failed, by operation and kind (not_found of "
              "get/head is often an expected answer).");
    for (int op = 0; op < KL_OP_COUNT; op++)
        for (int s = 1; s < KL_STATUS_COUNT; s++)
            if (st.failed[op][s]) {
                snprintf(labels, sizeof labels, "op=\"%s\",kind=\"%s\"", kl_os_op_name(op),
                         kl_status_name(s));
                km_sample(f, "klstore_store_errors_total", labels, (double)st.failed[op][s]);
            }
    km_family(f, "klstore_store_request_seconds_total", "counter",
              "Time spent in object-store operations, by operation.");
    for (int op = 0; op < KL_OP_COUNT; op++) {
        snprintf(labels, sizeof labels, "op=\"%s\"", kl_os_op_name(op));
        km_sample(f, "klstore_store_request_seconds_total", labels, st.seconds[op]);
    }
    km_family(f, "klstore_store_bytes_total", "counter",
              "Object bodies sent to (put) and received from (get) the store.");
    km_sample(f, "klstore_store_bytes_total", "direction=\"put\"", (double)st.bytes_put);
    km_sample(f, "klstore_store_bytes_total", "direction=\"get\"", (double)st.bytes_got);
}
