/* bench_batch.c -- throughput and delay of the batching writer over the
 * local object store (not a test: run by hand, `bench_batch DIR`).
 *
 * Throughput: N records of 100 bytes, one record per append, round-robin
 * over K keys, through the batching writer (1, then 2 writer threads), and
 * the same records appended pre-batched straight to the store writer (one
 * append per key with all its records).  Each run uses a fresh directory
 * under DIR and ends with flush_all, so every record is durable when the
 * clock stops; the logs are then checked record by record count.
 *
 * Delay: probes appended at a steady rate across the keys under the default
 * batching config (also with 2 threads, and with fewer keys).  A thin wrapper between the batching
 * writer and the store writer notes, when each inner append returns (= the records are durable),
 * the delay of every record in it from the monotonic append time stamped into its payload. Reported
 * as p50/p99/max.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "klstore.h"

#define PAYLOAD 100

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what, const kl_error *err)
{
    fprintf(stderr, "bench_batch: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

/* ------------------------------------------------------------------ */
/* A pass-through writer that counts inner appends and records delays  */
/* ------------------------------------------------------------------ */

typedef struct probe_writer {
    kl_writer base;
    kl_writer *inner;
    atomic_ulong appends; /* = data objects written */
    int measure_delay;
    pthread_mutex_t mu;
    double *delays_ms;
    size_t n_delays, cap_delays;
} probe_writer;

static void note_delays(probe_writer *pw, const kl_insertion *ins, size_t n)
{
    int64_t now = mono_ns();
    pthread_mutex_lock(&pw->mu);
    for (size_t i = 0; i < n; i++) {
        int64_t appended;
        memcpy(&appended, ins[i].data, sizeof appended);
        if (pw->n_delays == pw->cap_delays) {
            pw->cap_delays = pw->cap_delays ? pw->cap_delays * 2 : 4096;
            pw->delays_ms = realloc(pw->delays_ms, pw->cap_delays * sizeof(double));
            if (!pw->delays_ms) die("out of memory", NULL);
        }
        pw->delays_ms[pw->n_delays++] = (now - appended) / 1e6;
    }
    pthread_mutex_unlock(&pw->mu);
}

static kl_status pw_append(kl_writer *w, const char *ks, const char *key, const kl_insertion *ins,
                           size_t n, kl_error *err)
{
    probe_writer *pw = (probe_writer *)w;
    kl_status st = pw->inner->ops->append(pw->inner, ks, key, ins, n, err);
    if (st == KL_OK) {
        atomic_fetch_add(&pw->appends, 1);
        if (pw->measure_delay) note_delays(pw, ins, n);
    }
    return st;
}

static kl_status pw_create_keyspace(kl_writer *w, const char *ks, int64_t *created, kl_error *err)
{
    probe_writer *pw = (probe_writer *)w;
    return pw->inner->ops->create_keyspace(pw->inner, ks, created, err);
}

static kl_status pw_flush_key(kl_writer *w, const char *ks, const char *key, kl_error *err)
{
    probe_writer *pw = (probe_writer *)w;
    return pw->inner->ops->flush_key(pw->inner, ks, key, err);
}

static kl_status pw_flush_all(kl_writer *w, kl_error *err)
{
    probe_writer *pw = (probe_writer *)w;
    return pw->inner->ops->flush_all(pw->inner, err);
}

static kl_status pw_duty_cycle(kl_writer *w, kl_error *err)
{
    probe_writer *pw = (probe_writer *)w;
    return pw->inner->ops->duty_cycle(pw->inner, err);
}

static void pw_destroy(kl_writer *w) { (void)w; /* lives on the stack of its run */ }

static const kl_writer_ops probe_writer_ops = {
    .create_keyspace = pw_create_keyspace,
    .append = pw_append,
    .flush_key = pw_flush_key,
    .flush_all = pw_flush_all,
    .duty_cycle = pw_duty_cycle,
    .destroy = pw_destroy,
};

/* ------------------------------------------------------------------ */
/* One store per run                                                   */
/* ------------------------------------------------------------------ */

typedef struct run_store {
    char dir[4096];
    kl_objstore *os;
    kl_store_config cfg;
    kl_writer *store;   /* the store writer */
    probe_writer probe; /* wraps it */
} run_store;

static void run_store_open(run_store *rs, const char *base, const char *name)
{
    kl_error err;
    snprintf(rs->dir, sizeof rs->dir, "%s/%s", base, name);
    struct stat st;
    if (stat(rs->dir, &st) == 0) {
        fprintf(stderr, "bench_batch: %s exists; give a fresh DIR\n", rs->dir);
        exit(1);
    }
    kl_store_config_init(&rs->cfg);
    if (kl_objstore_local_new(rs->dir, &rs->os, &err)) die("kl_objstore_local_new", &err);
    if (kl_store_writer_new(rs->os, &rs->cfg, &rs->store, &err)) die("kl_store_writer_new", &err);
    memset(&rs->probe, 0, sizeof rs->probe);
    rs->probe.base.ops = &probe_writer_ops;
    rs->probe.inner = rs->store;
    pthread_mutex_init(&rs->probe.mu, NULL);
}

/* Checks that every key holds exactly `per_key` records. */
static void run_store_verify(run_store *rs, size_t keys, size_t per_key)
{
    kl_reader *r;
    kl_error err;
    if (kl_store_reader_new(rs->os, &rs->cfg, &r, &err)) die("kl_store_reader_new", &err);
    for (size_t k = 0; k < keys; k++) {
        char key[32];
        int exists = 0;
        kl_key_meta meta;
        snprintf(key, sizeof key, "key%zu", k);
        if (kl_read_key_metadata(r, "bench", key, &exists, &meta, &err))
            die("kl_read_key_metadata", &err);
        if (!exists || meta.next_offset != per_key + 1) {
            fprintf(stderr, "bench_batch: %s/%s holds %llu records, expected %zu\n", rs->dir, key,
                    exists ? (unsigned long long)meta.next_offset - 1 : 0, per_key);
            exit(1);
        }
    }
    kl_reader_destroy(r);
}

static void run_store_close(run_store *rs)
{
    kl_writer_destroy(rs->store);
    kl_os_destroy(rs->os);
    pthread_mutex_destroy(&rs->probe.mu);
    free(rs->probe.delays_ms);
}

/* ------------------------------------------------------------------ */
/* Throughput                                                          */
/* ------------------------------------------------------------------ */

typedef struct result {
    const char *mode;
    int threads; /* 0 = no batching writer */
    double seconds;
    unsigned long objects;
} result;

static void stamp(char *payload, uint64_t seq) { memcpy(payload, &seq, sizeof seq); }

static result run_batched(const char *base, int threads, size_t records, size_t keys)
{
    run_store rs;
    char name[32], key[32], payload[PAYLOAD];
    kl_error err;
    kl_writer *bw;
    snprintf(name, sizeof name, "batched-%dt", threads);
    run_store_open(&rs, base, name);
    kl_batch_config c;
    kl_batch_config_init(&c);
    c.writer_thread_count = (size_t)threads;
    if (kl_batch_writer_new(&rs.probe.base, &c, &bw, &err)) die("kl_batch_writer_new", &err);
    memset(payload, 'p', sizeof payload);

    int64_t start = mono_ns();
    for (size_t i = 0; i < records; i++) {
        snprintf(key, sizeof key, "key%zu", i % keys);
        stamp(payload, i);
        kl_insertion ins = {.data = payload, .len = PAYLOAD};
        if (kl_append(bw, "bench", key, &ins, 1, &err)) die("append", &err);
    }
    if (kl_flush_all(bw, &err)) die("flush_all", &err);
    double seconds = (mono_ns() - start) / 1e9;

    kl_writer_destroy(bw);
    run_store_verify(&rs, keys, records / keys);
    result res = {"batching writer, 1 record/append", threads, seconds,
                  atomic_load(&rs.probe.appends)};
    run_store_close(&rs);
    return res;
}

static result run_direct(const char *base, size_t records, size_t keys)
{
    run_store rs;
    char key[32];
    kl_error err;
    size_t per_key = records / keys;
    run_store_open(&rs, base, "direct");
    char *payloads = malloc(per_key * PAYLOAD);
    kl_insertion *ins = calloc(per_key, sizeof *ins);
    if (!payloads || !ins) die("out of memory", NULL);
    memset(payloads, 'p', per_key * PAYLOAD);

    int64_t start = mono_ns();
    for (size_t k = 0; k < keys; k++) {
        snprintf(key, sizeof key, "key%zu", k);
        for (size_t j = 0; j < per_key; j++) {
            stamp(payloads + j * PAYLOAD, j * keys + k);
            ins[j] = (kl_insertion){.data = payloads + j * PAYLOAD, .len = PAYLOAD};
        }
        if (kl_append(&rs.probe.base, "bench", key, ins, per_key, &err)) die("append", &err);
    }
    if (kl_flush_all(&rs.probe.base, &err)) die("flush_all", &err);
    double seconds = (mono_ns() - start) / 1e9;

    run_store_verify(&rs, keys, per_key);
    result res = {"store writer, pre-batched per key", 0, seconds, atomic_load(&rs.probe.appends)};
    free(payloads);
    free(ins);
    run_store_close(&rs);
    return res;
}

/* ------------------------------------------------------------------ */
/* Delay from append to durable                                        */
/* ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double p)
{
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static void sleep_until_ns(int64_t t)
{
    struct timespec ts = {.tv_sec = t / 1000000000, .tv_nsec = t % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL))
        ;
}

typedef struct delay_result {
    size_t keys;
    int threads;
    size_t probes, measured;
    double p50, p99, max;
    unsigned long objects;
} delay_result;

static delay_result run_delay(const char *base, size_t keys, int threads, unsigned rate,
                              unsigned seconds)
{
    run_store rs;
    char name[64], key[32], payload[PAYLOAD];
    kl_error err;
    kl_writer *bw;
    kl_batch_config c;
    snprintf(name, sizeof name, "delay-%zuk-%dt", keys, threads);
    run_store_open(&rs, base, name);
    rs.probe.measure_delay = 1;
    kl_batch_config_init(&c);                /* the defaults ... */
    c.writer_thread_count = (size_t)threads; /* ... but for threads */
    if (kl_batch_writer_new(&rs.probe.base, &c, &bw, &err)) die("kl_batch_writer_new", &err);
    memset(payload, 'd', sizeof payload);

    size_t probes = (size_t)rate * seconds;
    int64_t start = mono_ns(), step = 1000000000LL / rate;
    for (size_t i = 0; i < probes; i++) {
        sleep_until_ns(start + (int64_t)i * step);
        snprintf(key, sizeof key, "key%zu", i % keys);
        int64_t now = mono_ns();
        memcpy(payload, &now, sizeof now);
        kl_insertion ins = {.data = payload, .len = PAYLOAD};
        if (kl_append(bw, "bench", key, &ins, 1, &err)) die("append", &err);
    }
    /* Let the interval flush the tail too, so that no probe is flushed
     * early by the final flush_all. */
    sleep_until_ns(mono_ns() +
                   (int64_t)(c.batch_flush_interval_millis + 3 * c.batch_check_interval_millis) *
                       1000000);
    if (kl_flush_all(bw, &err)) die("flush_all", &err);
    kl_writer_destroy(bw);

    probe_writer *pw = &rs.probe;
    qsort(pw->delays_ms, pw->n_delays, sizeof(double), cmp_double);
    delay_result d = {keys,
                      threads,
                      probes,
                      pw->n_delays,
                      percentile(pw->delays_ms, pw->n_delays, 50),
                      percentile(pw->delays_ms, pw->n_delays, 99),
                      pw->delays_ms[pw->n_delays - 1],
                      atomic_load(&pw->appends)};
    run_store_close(&rs);
    return d;
}

static void print_delays(const delay_result *d, size_t n, unsigned rate, unsigned seconds)
{
    kl_batch_config c;
    kl_batch_config_init(&c);
    printf("\nDelay from append to durable (inner append returned): probes at "
           "%u/s for %u s,\ndefault config (flush interval %llu ms, check every "
           "%llu ms) but for threads\n",
           rate, seconds, (unsigned long long)c.batch_flush_interval_millis,
           (unsigned long long)c.batch_check_interval_millis);
    printf("%6s %7s %8s %9s %9s %9s %9s\n", "keys", "threads", "probes", "p50 ms", "p99 ms",
           "max ms", "objects");
    for (size_t i = 0; i < n; i++) {
        printf("%6zu %7d %8zu %9.1f %9.1f %9.1f %9lu\n", d[i].keys, d[i].threads, d[i].measured,
               d[i].p50, d[i].p99, d[i].max, d[i].objects);
        if (d[i].measured != d[i].probes)
            printf("WARNING: %zu probes appended, %zu seen durable\n", d[i].probes, d[i].measured);
    }
}

/* ------------------------------------------------------------------ */

static void print_results(const result *r, size_t n, const result *direct, size_t records)
{
    printf("%-36s %7s %9s %12s %9s %10s\n", "mode", "threads", "seconds", "records/s", "objects",
           "vs direct");
    for (size_t i = 0; i < n; i++) {
        char threads[8] = "-";
        if (r[i].threads) snprintf(threads, sizeof threads, "%d", r[i].threads);
        printf("%-36s %7s %9.2f %12.0f %9lu %9.2fx\n", r[i].mode, threads, r[i].seconds,
               records / r[i].seconds, r[i].objects, direct->seconds / r[i].seconds);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_batch DIR [RECORDS [KEYS [PROBE_RATE "
                        "[PROBE_SECONDS]]]]\n  DIR: a fresh or empty directory for the "
                        "local stores of each run\n");
        return 2;
    }
    const char *base = argv[1];
    size_t records = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    size_t keys = argc > 3 ? strtoull(argv[3], NULL, 10) : 1000;
    unsigned rate = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 2000;
    unsigned seconds = argc > 5 ? (unsigned)strtoul(argv[5], NULL, 10) : 5;
    if (!keys || !records || records % keys || !rate || !seconds) {
        fprintf(stderr, "bench_batch: RECORDS must be a multiple of KEYS; all > 0\n");
        return 2;
    }
    mkdir(base, 0755);
    printf("klstore batching benchmark: %zu records x %d bytes over %zu keys, "
           "local store under %s\n\n",
           records, PAYLOAD, keys, base);
    fflush(stdout);

    result r[3];
    r[0] = run_batched(base, 1, records, keys);
    r[1] = run_batched(base, 2, records, keys);
    r[2] = run_direct(base, records, keys);
    print_results(r, 3, &r[2], records);
    fflush(stdout);

    /* With many keys the store's per-object cost dominates the delay; with
     * few, it shows what batching itself adds (up to interval + check). */
    delay_result d[3];
    size_t n = 0;
    d[n++] = run_delay(base, keys, 1, rate, seconds);
    d[n++] = run_delay(base, keys, 2, rate, seconds);
    if (keys > 100) d[n++] = run_delay(base, 100, 1, rate, seconds);
    print_delays(d, n, rate, seconds);
    return 0;
}
