/* tsan_stress.c -- the concurrency paths of libklstore under load, as a
 * plain program so that it runs under ThreadSanitizer (Criterion's runner
 * cannot start in a TSan process).  CTest runs it in every build; the TSan
 * stage of scripts/test.sh is where it matters most.
 *
 * Threads: APPENDERS append numbered records to shared keys through one
 * batching writer (2 writer threads, a small queue: backpressure), while
 * READERS share one store reader (and so its object cache) and page through
 * the same keys as they grow and compact.  Checks: every record appended
 * is read back exactly once, in per-key order; readers never see a gap or
 * a duplicate.  Run twice: on the local store as it is, and through a
 * wrapper that hides its mmap so reads go through GET and the readahead
 * threads (the S3 path).  In that second run odd appenders write through a
 * second store writer with its own key cache, as another process would:
 * the two race for the same keys' slots (tail.c).  TEXT_READERS more
 * threads read the same keys as bytes through shared text views (one per
 * key: its index, read hints and readahead hints under contention),
 * checking that every line is whole and each appender's numbers increase.
 * Exit 0 on success, 1 with a message otherwise. */
#define _GNU_SOURCE
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "klstore.h"
#include "common/objstore_wrap.h"

#define APPENDERS    4
#define READERS      3
#define KEYS         6
#define PER_APPENDER 1500
#define TEXT_READERS 2

static kl_objstore *os;
static kl_store_config cfg;
static kl_writer *batch, *batch2;
static kl_reader *reader;
static kl_textview *views[KEYS];
static atomic_int done;
static char failure[512];
static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    pthread_mutex_lock(&fail_mu);
    if (!failure[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(failure, sizeof failure, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&fail_mu);
}

/* Each appender owns its keys' sub-sequence "a<id>-<n>", so per-key order
 * can be checked without shared state: within a key, each appender's
 * numbers must appear in increasing order. */
static void *appender(void *arg)
{
    int id = (int)(intptr_t)arg;
    kl_error err = {0};
    for (int n = 0; n < PER_APPENDER && !failure[0]; n++) {
        char key[16], val[32];
        snprintf(key, sizeof key, "k%d", (id + n) % KEYS);
        snprintf(val, sizeof val, "a%d-%d", id, n);
        kl_insertion in = {.data = val, .len = strlen(val)};
        kl_writer *w = id % 2 && batch2 ? batch2 : batch;
        if (kl_append(w, "ks", key, &in, 1, &err) != KL_OK) fail("append: %s", err.msg);
        if (n % 500 == 499 && kl_flush_key(w, "ks", key, &err) != KL_OK)
            fail("flush_key: %s", err.msg);
    }
    return NULL;
}

/* Reads a key from the start; checks offsets are 1..n and each appender's
 * numbers increase.  Returns the record count. */
static uint64_t read_key(const char *key, uint64_t psize)
{
    kl_page p;
    kl_error err = {0};
    int last[APPENDERS];
    for (int i = 0; i < APPENDERS; i++) last[i] = -1;
    uint64_t expect = 1;
    if (kl_read_first_page(reader, "ks", key, KL_FORWARDS, NULL, psize, &p, &err) != KL_OK) {
        fail("read %s: %s", key, err.msg);
        return 0;
    }
    for (;;) {
        for (size_t i = 0; i < p.count; i++, expect++) {
            const kl_record *r = &p.records[i];
            int a, n;
            char buf[40];
            snprintf(buf, sizeof buf, "%.*s", (int)r->len, (const char *)r->data);
            if (r->offset != expect || sscanf(buf, "a%d-%d", &a, &n) != 2 || a < 0 ||
                a >= APPENDERS || n <= last[a]) {
                fail("%s: offset %" PRIu64 " value '%s' out of order (expected offset %" PRIu64 ")",
                     key, r->offset, buf, expect);
                break;
            }
            last[a] = n;
        }
        int end = p.count == 0 || failure[0];
        char *tok = p.continuation ? strdup(p.continuation) : NULL;
        kl_page_free(&p);
        if (end || !tok) {
            free(tok);
            break;
        }
        kl_status st = kl_read_next_page(reader, "ks", key, tok, psize, &p, &err);
        free(tok);
        if (st != KL_OK) {
            fail("read %s: %s", key, err.msg);
            break;
        }
    }
    return expect - 1;
}

static void *reader_thread(void *arg)
{
    unsigned seed = (unsigned)(intptr_t)arg;
    while (!atomic_load(&done) && !failure[0]) {
        char key[16];
        snprintf(key, sizeof key, "k%d", rand_r(&seed) % KEYS);
        read_key(key, 1 + (uint64_t)(rand_r(&seed) % 50));
    }
    return NULL;
}

/* One pass over key k's text in chunks of random size: every line must be
 * "a<id>-<n>" with n increasing per appender.  Returns the line count. */
static uint64_t read_text(int k, unsigned *seed)
{
    int last[APPENDERS];
    for (int i = 0; i < APPENDERS; i++) last[i] = -1;
    char line[64];
    size_t llen = 0;
    uint64_t pos = 0, lines = 0;
    char buf[4096];
    for (;;) {
        size_t want = 1 + (seed ? (size_t)(rand_r(seed) % (int)sizeof buf) : sizeof buf - 1);
        size_t got = 0;
        kl_error err = {0};
        if (kl_textview_read(views[k], pos, buf, want, 0, &got, &err) != KL_OK) {
            fail("text k%d at %" PRIu64 ": %s", k, pos, err.msg);
            return lines;
        }
        if (got == 0) break;
        pos += got;
        for (size_t i = 0; i < got; i++) {
            if (buf[i] != '\n') {
                if (llen + 1 < sizeof line) line[llen++] = buf[i];
                continue;
            }
            line[llen] = 0;
            int a, n;
            if (sscanf(line, "a%d-%d", &a, &n) != 2 || a < 0 || a >= APPENDERS || n <= last[a]) {
                fail("text k%d: line %" PRIu64 " '%s' out of order", k, lines + 1, line);
                return lines;
            }
            last[a] = n;
            llen = 0;
            lines++;
        }
    }
    if (llen) fail("text k%d ends inside a line", k);
    return lines;
}

static void *text_reader(void *arg)
{
    unsigned seed = (unsigned)(intptr_t)arg;
    while (!atomic_load(&done) && !failure[0]) read_text(rand_r(&seed) % KEYS, &seed);
    return NULL;
}

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *ftw)
{
    (void)sb;
    (void)f;
    (void)ftw;
    return remove(p);
}

static int run(int remote_like)
{
    char dir[] = "/tmp/kl-tsan-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    kl_error err = {0};
    kl_store_config_init(&cfg);
    cfg.compact_records_threshold = 50; /* compact constantly */
    cfg.compact_objects_threshold = 4;
    cfg.reader_cache_bytes = 256 << 10;
    cfg.reader_readahead = 4;
    kl_batch_config bc;
    kl_batch_config_init(&bc);
    bc.writer_thread_count = 2;
    bc.writer_thread_queue_capacity = 16;
    bc.batch_flush_interval_millis = 20;
    bc.batch_check_interval_millis = 5;
    bc.batch_flush_record_count_threshold = 37;
    kl_writer *store, *store2 = NULL;
    kl_objstore *local = NULL;
    batch2 = NULL;
    atomic_store(&done, 0);
    if (kl_objstore_local_new(dir, &local, &err)) {
        fprintf(stderr, "tsan_stress: setup: %s\n", err.msg);
        return 1;
    }
    os = remote_like ? kl_wrap_new(local) : local;
    if (kl_store_writer_new(os, &cfg, &store, &err) ||
        kl_batch_writer_new(store, &bc, &batch, &err) ||
        kl_store_reader_new(os, &cfg, &reader, &err) ||
        (remote_like && (kl_store_writer_new(os, &cfg, &store2, &err) ||
                         kl_batch_writer_new(store2, &bc, &batch2, &err)))) {
        fprintf(stderr, "tsan_stress: setup: %s\n", err.msg);
        return 1;
    }
    for (int k = 0; k < KEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        if (kl_textview_open(reader, "ks", key, &views[k], &err) != KL_OK) {
            fprintf(stderr, "tsan_stress: setup: %s\n", err.msg);
            return 1;
        }
    }
    pthread_t a[APPENDERS], r[READERS], t[TEXT_READERS];
    for (int i = 0; i < READERS; i++)
        pthread_create(&r[i], NULL, reader_thread, (void *)(intptr_t)(i + 1));
    for (int i = 0; i < TEXT_READERS; i++)
        pthread_create(&t[i], NULL, text_reader, (void *)(intptr_t)(i + 100));
    for (int i = 0; i < APPENDERS; i++) pthread_create(&a[i], NULL, appender, (void *)(intptr_t)i);
    for (int i = 0; i < APPENDERS; i++) pthread_join(a[i], NULL);
    if (kl_flush_all(batch, &err) != KL_OK) fail("flush_all: %s", err.msg);
    if (batch2 && kl_flush_all(batch2, &err) != KL_OK) fail("flush_all: %s", err.msg);
    atomic_store(&done, 1);
    for (int i = 0; i < READERS; i++) pthread_join(r[i], NULL);
    for (int i = 0; i < TEXT_READERS; i++) pthread_join(t[i], NULL);

    uint64_t total = 0, text_total = 0;
    for (int k = 0; k < KEYS && !failure[0]; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        total += read_key(key, 1000);
        text_total += read_text(k, NULL);
    }
    if (!failure[0] && total != (uint64_t)APPENDERS * PER_APPENDER)
        fail("read back %" PRIu64 " records, appended %d", total, APPENDERS * PER_APPENDER);
    if (!failure[0] && text_total != total)
        fail("the text views show %" PRIu64 " lines, the pages %" PRIu64, text_total, total);
    for (int k = 0; k < KEYS; k++) kl_textview_close(views[k]);
    kl_writer_destroy(batch);
    kl_writer_destroy(store);
    kl_writer_destroy(batch2);
    kl_writer_destroy(store2);
    kl_reader_destroy(reader);
    if (remote_like) kl_os_destroy(os);
    kl_os_destroy(local);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (failure[0]) {
        fprintf(stderr, "tsan_stress: FAILED (%s store): %s\n",
                remote_like ? "remote-like" : "local", failure);
        return 1;
    }
    printf("tsan_stress: %s store: %" PRIu64 " records appended by %d threads%s and read back "
           "exactly once while %d readers and %d text readers raced compaction\n",
           remote_like ? "remote-like" : "local", total, APPENDERS,
           remote_like ? " through two store writers" : "", READERS, TEXT_READERS);
    return 0;
}

int main(void) { return run(0) || run(1); }
