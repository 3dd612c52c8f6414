/* mw_writer.c -- one writer process of the multi-writer tests
 * (test_multiwriter.c): appends numbered records to one key and records
 * which appends were acknowledged, so a checker can prove that every
 * acknowledged record is in the log exactly once.
 *
 *   mw_writer STORE KEYSPACE KEY ID COUNT PER_APPEND ACKFILE [batch]
 *
 * STORE is what kl_objstore_open takes (a directory, or s3://BUCKET/PREFIX
 * with the KL_S3_* environment of scripts/test.sh).  Records are
 * "w{ID} {seq}", seq = 0..COUNT-1, PER_APPEND to an append.  With "batch"
 * they go through the batching writer and are acknowledged by a flush
 * after every append.  After each acknowledged append one line
 * "{first_seq} {last_seq}\n" is written to ACKFILE (not synced: a kill -9
 * loses no page cache).  Exit 0 when all were acknowledged, 1 if any
 * append failed (it is not retried: the record is then at most once).
 * MW_FAULTS=P makes P% of claims, publishes and data PUTs fail, half of
 * them after taking effect (an answer lost); each append (or flush) is
 * then repeated until it succeeds, so every record must end up in the log
 * exactly once.
 * MW_PAD=N pads records to N bytes; MW_STATS=FILE appends "REQUESTS BYTES"
 * (object store requests made, record bytes acknowledged) to FILE at the
 * end, for the contended benchmark (tests/bench/bench_contended.sh).
 * MW_COMPACT_RECORDS, MW_COMPACT_OBJECTS, MW_CLAIM_HOLD_MS and MW_FENCING
 * set the store settings of those names.  With "batch", MW_FLUSH_EVERY=K
 * flushes (and acknowledges) only every K appends, and MW_BATCH_BYTES sets
 * batch_flush_size_threshold: full batches of several objects then go out
 * pipelined between flushes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

#include "common/objstore_wrap.h"
#include "klstore.h"

/* MW_FAULTS: injected failures, before or after the request. */
static int fault_pct;
static unsigned fault_base; /* per process; each thread draws its own */

static unsigned draw(void)
{
    static _Thread_local unsigned seed;
    static _Thread_local int seeded;
    if (!seeded) {
        seed = fault_base ^ (unsigned)(uintptr_t)&seeded;
        seeded = 1;
    }
    return (unsigned)rand_r(&seed);
}

static int fault(void) { return fault_pct && (int)(draw() % 100) < fault_pct; }

static kl_status faulty_claim(kl_objstore *os, const char *c, const char *o, const kl_body *d,
                              char **t, kl_error *e)
{
    int f = fault(), after = draw() & 1;
    if (f && !after) return kl_seterr(e, KL_EIO, "injected: claim not sent");
    kl_status st = kl_os_claim(KL_WRAP(os)->inner, c, o, d, t, e);
    if (f && st == KL_OK) {
        free(*t);
        *t = NULL;
        return kl_seterr(e, KL_EIO, "injected: claim's answer lost");
    }
    return st;
}

static kl_status faulty_publish(kl_objstore *os, const char *c, const char *o, const char *t,
                                const kl_body *d, kl_error *e)
{
    int f = fault(), after = draw() & 1;
    if (f && !after) return kl_seterr(e, KL_EIO, "injected: publish not sent");
    kl_status st = kl_os_publish(KL_WRAP(os)->inner, c, o, t, d, e);
    return f && st == KL_OK ? kl_seterr(e, KL_EIO, "injected: publish's answer lost") : st;
}

static kl_status faulty_put(kl_objstore *os, const char *n, const void *d, size_t l, int fl,
                            kl_error *e)
{
    int f = strstr(n, "/data_") && fault(), after = draw() & 1;
    if (f && !after) return kl_seterr(e, KL_EIO, "injected: PUT not sent");
    kl_status st = kl_os_put(KL_WRAP(os)->inner, n, d, l, fl, e);
    return f && st == KL_OK ? kl_seterr(e, KL_EIO, "injected: PUT's answer lost") : st;
}

static kl_objstore_ops faulty_ops;

static kl_objstore *open_store(const char *url, kl_config *c)
{
    kl_error err = {0};
    kl_config_init(c);
    if (strncmp(url, "s3://", 5) == 0) {
        c->s3.endpoint = strdup(getenv("KL_S3_ENDPOINT"));
        free(c->s3.region);
        c->s3.region = strdup(getenv("KL_S3_REGION") ? getenv("KL_S3_REGION") : "us-east-1");
        c->s3.access_key = strdup(getenv("KL_S3_ACCESS_KEY"));
        c->s3.secret_key = strdup(getenv("KL_S3_SECRET_KEY"));
        c->s3.path_style = 1;
        c->s3.use_default_credentials = 0;
    }
    if (getenv("MW_COMPACT_RECORDS"))
        c->store.compact_records_threshold = strtoull(getenv("MW_COMPACT_RECORDS"), NULL, 10);
    if (getenv("MW_COMPACT_OBJECTS"))
        c->store.compact_objects_threshold = strtoull(getenv("MW_COMPACT_OBJECTS"), NULL, 10);
    if (getenv("MW_CLAIM_HOLD_MS"))
        c->store.claim_hold_ms = strtoull(getenv("MW_CLAIM_HOLD_MS"), NULL, 10);
    if (getenv("MW_FENCING") &&
        kl_config_set(c, "local", "fencing", getenv("MW_FENCING"), &err) != KL_OK) {
        fprintf(stderr, "mw_writer: %s\n", err.msg);
        exit(2);
    }
    kl_objstore *os;
    if (kl_objstore_open(url, c, &os, &err) != KL_OK) {
        fprintf(stderr, "mw_writer: %s\n", err.msg);
        exit(2);
    }
    return os;
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr,
                "usage: mw_writer STORE KEYSPACE KEY ID COUNT PER_APPEND ACKFILE [batch]\n");
        return 2;
    }
    const char *ks = argv[2], *key = argv[3];
    int id = atoi(argv[4]);
    long count = atol(argv[5]), per = atol(argv[6]);
    int batch = argc > 8 && strcmp(argv[8], "batch") == 0;
    int ack = open(argv[7], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (ack < 0 || per < 1) return 2;
    kl_config c;
    kl_objstore *raw = open_store(argv[1], &c), *os = kl_wrap_new(raw);
    if (getenv("MW_FAULTS") && (fault_pct = atoi(getenv("MW_FAULTS")))) {
        fault_base = (unsigned)id * 7919u + (unsigned)getpid();
        faulty_ops = *os->ops;
        faulty_ops.put = faulty_put;
        if (faulty_ops.claim) {
            faulty_ops.claim = faulty_claim;
            faulty_ops.publish = faulty_publish;
        }
        os->ops = &faulty_ops;
    }
    size_t pad = getenv("MW_PAD") ? (size_t)atol(getenv("MW_PAD")) : 0;
    if (pad > 200) pad = 200;
    uint64_t bytes = 0;
    kl_error err = {0};
    kl_writer *sw, *w;
    if (kl_store_writer_new(os, &c.store, &sw, &err) != KL_OK) {
        fprintf(stderr, "mw_writer: %s\n", err.msg);
        return 2;
    }
    w = sw;
    if (getenv("MW_BATCH_BYTES"))
        c.batch.batch_flush_size_threshold = strtoull(getenv("MW_BATCH_BYTES"), NULL, 10);
    if (batch && kl_batch_writer_new(sw, &c.batch, &w, &err) != KL_OK) return 2;
    char(*text)[256] = calloc((size_t)per, sizeof *text);
    kl_insertion *ins = calloc((size_t)per, sizeof *ins);
    int failed = 0;
    long flush_every = getenv("MW_FLUSH_EVERY") ? atol(getenv("MW_FLUSH_EVERY")) : 1;
    long acked_to = 0; /* appends before it are acknowledged (or failed) */
    if (flush_every < 1) flush_every = 1;
    for (long seq = 0; seq < count; seq += per) {
        long n = count - seq < per ? count - seq : per;
        for (long i = 0; i < n; i++) {
            int len = snprintf(text[i], sizeof text[i], "w%d %ld ", id, seq + i);
            while ((size_t)len < pad) text[i][len++] = 'x';
            ins[i] = (kl_insertion){.data = text[i], .len = (size_t)len};
        }
        kl_status st = kl_append(w, ks, key, ins, (size_t)n, &err);
        /* Injected faults: the same append again.  A failing key refuses
         * appends and keeps its records in the batching writer until a
         * flush writes them: flush, then append again. */
        for (int tries = 0; fault_pct && st != KL_OK && tries < 100; tries++) {
            if (batch) kl_flush_key(w, ks, key, &err);
            st = kl_append(w, ks, key, ins, (size_t)n, &err);
        }
        int flush = batch && ((seq / per + 1) % flush_every == 0 || seq + n >= count);
        if (st == KL_OK && flush) st = kl_flush_key(w, ks, key, &err);
        for (int tries = 0; fault_pct && flush && st != KL_OK && tries < 100; tries++)
            st = kl_flush_key(w, ks, key, &err);
        if (st != KL_OK) {
            fprintf(stderr, "mw_writer %d: append of %ld..%ld failed: %s\n", id, seq, seq + n - 1,
                    err.msg);
            failed = 1;
            acked_to = seq + n; /* not acknowledged, and never will be */
            continue;
        }
        for (long i = 0; i < n; i++) bytes += ins[i].len;
        if (batch && !flush) continue;
        char line[64];
        int l = snprintf(line, sizeof line, "%ld %ld\n", acked_to, seq + n - 1);
        acked_to = seq + n;
        if (write(ack, line, (size_t)l) != l) return 2;
    }
    if (w != sw) kl_writer_destroy(w);
    kl_writer_destroy(sw);
    if (getenv("MW_STATS")) {
        FILE *f = fopen(getenv("MW_STATS"), "a");
        if (f) {
            fprintf(f, "%lu %" PRIu64 "\n", kl_wrap_total(os), bytes);
            fclose(f);
        }
    }
    kl_os_destroy(os);
    kl_os_destroy(raw);
    kl_config_free(&c);
    free(text);
    free(ins);
    close(ack);
    return failed;
}
