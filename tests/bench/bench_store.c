/* bench_store.c -- libklstore on the local store against the raw
 * baseline, in the same run:
 *   append: N records of 100 bytes through kl_append (batches of B) vs
 *           write(2) of the same encoded bytes into files of the same sizes
 *           (and vs write(2)+fsync, since the store syncs every object);
 *   read:   every record forwards and backwards through the reader vs
 *           read(2) of those files (best of 3 passes each).
 * Prints rates and ratios (ours / baseline; higher is better).
 *   bench_store DIR [RECORDS] [BATCH] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "codec.h"
#include "klstore.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const kl_error *err)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

static void payload(char *buf, uint64_t i)
{
    int n = snprintf(buf, 101, "record %012" PRIu64 " ", i);
    memset(buf + n, 'a' + (int)(i % 26), 100 - (size_t)n);
}

/* Baseline: the same bytes the store writes, one file per batch. */
static double raw_write(const char *dir, uint64_t records, uint64_t batch, int sync)
{
    char path[4096];
    kl_buf b = {0};
    char p[101];
    double t0 = now();
    for (uint64_t first = 1, f = 0; first <= records; first += batch, f++) {
        b.len = 0;
        for (uint64_t o = first; o < first + batch && o <= records; o++) {
            payload(p, o);
            Kl_codec_put(&b, o, 1700000000000LL, 0, 0, p, 100);
        }
        snprintf(path, sizeof path, "%s/raw%06" PRIu64, dir, f);
        int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        if (fd < 0 || write(fd, b.data, b.len) != (ssize_t)b.len) die("raw write", NULL);
        if (sync) fsync(fd);
        close(fd);
    }
    double t = now() - t0;
    Kl_buf_free(&b);
    return t;
}

static double raw_read(const char *dir, uint64_t records, uint64_t batch, int backwards)
{
    char path[4096];
    uint64_t files = (records + batch - 1) / batch;
    static char buf[1 << 20];
    uint64_t total = 0;
    double t0 = now();
    for (uint64_t k = 0; k < files; k++) {
        uint64_t f = backwards ? files - 1 - k : k;
        snprintf(path, sizeof path, "%s/raw%06" PRIu64, dir, f);
        int fd = open(path, O_RDONLY);
        if (fd < 0) die("raw open", NULL);
        ssize_t r;
        while ((r = read(fd, buf, sizeof buf)) > 0) total += (uint64_t)r;
        close(fd);
    }
    double t = now() - t0;
    if (total == 0) die("raw read", NULL);
    return t;
}

static double kl_write(kl_writer *w, uint64_t records, uint64_t batch)
{
    kl_insertion *ins = calloc(batch, sizeof *ins);
    char(*p)[101] = malloc(batch * sizeof *p);
    kl_error err = {0};
    double t0 = now();
    for (uint64_t first = 1; first <= records; first += batch) {
        size_t n = 0;
        for (uint64_t o = first; o < first + batch && o <= records; o++, n++) {
            payload(p[n], o);
            ins[n] = (kl_insertion){
                .data = p[n], .len = 100, .has_timestamp = 1, .timestamp = 1700000000000LL};
        }
        if (kl_append(w, "bench", "k", ins, n, &err) != KL_OK) die("append", &err);
    }
    double t = now() - t0;
    free(ins);
    free(p);
    return t;
}

static double kl_read(kl_reader *r, uint64_t records, kl_direction dir)
{
    kl_error err = {0};
    kl_page pg;
    kl_start s = {.kind = dir == KL_BACKWARDS ? KL_START_LAST : KL_START_FIRST};
    uint64_t got = 0;
    double t0 = now();
    if (kl_read_first_page(r, "bench", "k", dir, &s, 10000, &pg, &err) != KL_OK) die("read", &err);
    for (;;) {
        got += pg.count;
        if (pg.count == 0 || !pg.continuation) break;
        char *tok = strdup(pg.continuation);
        kl_page_free(&pg);
        if (kl_read_next_page(r, "bench", "k", tok, 10000, &pg, &err) != KL_OK) die("read", &err);
        free(tok);
    }
    kl_page_free(&pg);
    double t = now() - t0;
    if (got != records) {
        fprintf(stderr, "bench_store: read %" PRIu64 " records, expected %" PRIu64 "\n", got,
                records);
        exit(1);
    }
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_store DIR [RECORDS] [BATCH]\n");
        return 2;
    }
    uint64_t records = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    uint64_t batch = argc > 3 ? strtoull(argv[3], NULL, 10) : 1000;
    char store[4096], raw[4096];
    snprintf(store, sizeof store, "%s/store", argv[1]);
    snprintf(raw, sizeof raw, "%s/raw", argv[1]);
    mkdir(argv[1], 0755);
    mkdir(raw, 0755);

    kl_objstore *os;
    kl_error err = {0};
    if (kl_objstore_local_new(store, &os, &err) != KL_OK) die("open store", &err);
    kl_store_config cfg;
    kl_store_config_init(&cfg);
    kl_writer *w;
    kl_reader *r;
    if (kl_store_writer_new(os, &cfg, &w, &err) || kl_store_reader_new(os, &cfg, &r, &err))
        die("open", &err);

    double mb = records * (100.0 + KL_RECORD_OVERHEAD) / 1e6;
    double t_raw = raw_write(raw, records, batch, 0);
    double t_raw_sync = raw_write(raw, records, batch, 1);
    double t_kl = kl_write(w, records, batch);
    /* Reads: best of 3 passes, for us and the baseline alike, so that
     * neither is charged for first-touching memory (costly under a
     * hypervisor) or for a cold CPU cache. */
    double t_raw_f = 1e9, t_kl_f = 1e9, t_raw_b = 1e9, t_kl_b = 1e9;
    for (int pass = 0; pass < 3; pass++) {
        t_raw_f = fmin(t_raw_f, raw_read(raw, records, batch, 0));
        t_kl_f = fmin(t_kl_f, kl_read(r, records, KL_FORWARDS));
        t_raw_b = fmin(t_raw_b, raw_read(raw, records, batch, 1));
        t_kl_b = fmin(t_kl_b, kl_read(r, records, KL_BACKWARDS));
    }

    printf("store core: %" PRIu64 " records x 100 B, %" PRIu64 " per append (%.0f MB encoded)\n",
           records, batch, mb);
    printf("  %-28s %10s %10s %8s\n", "", "klstore", "baseline", "ratio");
    printf("  %-28s %8.0f/s %8.0f/s %7.2fx\n", "append vs write(2)", records / t_kl,
           records / t_raw, t_raw / t_kl);
    printf("  %-28s %8.0f/s %8.0f/s %7.2fx\n", "append vs write(2)+fsync", records / t_kl,
           records / t_raw_sync, t_raw_sync / t_kl);
    printf("  %-28s %8.0f/s %8.0f/s %7.2fx\n", "read forwards vs read(2)", records / t_kl_f,
           records / t_raw_f, t_raw_f / t_kl_f);
    printf("  %-28s %8.0f/s %8.0f/s %7.2fx\n", "read backwards vs read(2)", records / t_kl_b,
           records / t_raw_b, t_raw_b / t_kl_b);
    kl_writer_destroy(w);
    kl_reader_destroy(r);
    kl_os_destroy(os);
    return 0;
}
