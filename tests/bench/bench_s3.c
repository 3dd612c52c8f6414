/* bench_s3.c -- libklstore's S3 store against curl(1) on the same server,
 * in the same run: append and sequential read of ~1 MiB objects, ours
 * through kl_append / the reader, curl doing the same PUTs and GETs with
 * one process (so it keeps its connection alive too).  Also reports the
 * S3 requests per MB appended, counted by a wrapper around our store.
 *   bench_s3 [MB]        (needs KL_S3_ENDPOINT, KL_S3_BUCKET,
 *                         KL_S3_ACCESS_KEY, KL_S3_SECRET_KEY; 127.0.0.1 only) */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "codec.h"
#include "common/objstore_wrap.h"
#include "klstore.h"

#define RECS_PER_OBJECT 7490 /* x 140 B = ~1 MiB objects */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *env(const char *k)
{
    const char *v = getenv(k);
    if (!v || !*v) {
        fprintf(stderr, "bench_s3: %s is not set (scripts/rgw.sh start prints it)\n", k);
        exit(2);
    }
    return v;
}

static void die(const char *what, const kl_error *e)
{
    fprintf(stderr, "bench_s3: %s: %s\n", what, e ? e->msg : "failed");
    exit(1);
}

static void body_for(kl_buf *b, uint64_t first, kl_insertion *ins, char (*p)[101])
{
    b->len = 0;
    for (int i = 0; i < RECS_PER_OBJECT; i++) {
        snprintf(p[i], 101, "%0100" PRIu64, first + (uint64_t)i);
        ins[i] = (kl_insertion){
            .data = p[i], .len = 100, .has_timestamp = 1, .timestamp = 1700000000000LL};
        Kl_codec_put(b, first + (uint64_t)i, 1700000000000LL, 0, 0, p[i], 100);
    }
}

/* One curl process for all transfers, like our store keeps its connection. */
static double run_curl(const char *cfgpath)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "curl -sS --fail -K '%s'", cfgpath);
    double t0 = now();
    if (system(cmd) != 0) die("curl", NULL);
    return now() - t0;
}

static double read_all(kl_objstore *os, kl_store_config *cfg, uint64_t expect)
{
    kl_reader *r;
    kl_error err = {0};
    if (kl_store_reader_new(os, cfg, &r, &err)) die("reader", &err);
    kl_page pg;
    uint64_t got = 0;
    double t0 = now();
    if (kl_read_first_page(r, "bench", "k", KL_FORWARDS, NULL, 20000, &pg, &err)) die("read", &err);
    while (pg.count) {
        got += pg.count;
        char *tok = strdup(pg.continuation);
        kl_page_free(&pg);
        if (kl_read_next_page(r, "bench", "k", tok, 20000, &pg, &err)) die("read", &err);
        free(tok);
    }
    kl_page_free(&pg);
    double t = now() - t0;
    kl_reader_destroy(r);
    if (got != expect) {
        fprintf(stderr, "bench_s3: read %" PRIu64 " of %" PRIu64 " records\n", got, expect);
        exit(1);
    }
    return t;
}

int main(int argc, char **argv)
{
    int mb = argc > 1 ? atoi(argv[1]) : 100;
    int objects = mb; /* ~1 MiB each */
    const char *ep = env("KL_S3_ENDPOINT"), *bucket = env("KL_S3_BUCKET");
    const char *ak = env("KL_S3_ACCESS_KEY"), *sk = env("KL_S3_SECRET_KEY");
    char prefix[64], tmp[] = "/tmp/kl-bench-s3-XXXXXX";
    snprintf(prefix, sizeof prefix, "bench-%d-%ld/", (int)getpid(), (long)time(NULL));
    if (!mkdtemp(tmp)) die("mkdtemp", NULL);

    kl_config c;
    kl_config_init(&c);
    c.s3.endpoint = strdup(ep);
    c.s3.bucket_name = strdup(bucket);
    c.s3.access_key = strdup(ak);
    c.s3.secret_key = strdup(sk);
    c.s3.path_style = 1;
    c.s3.use_default_credentials = 0;
    /* The same requests as curl's (UNSIGNED-PAYLOAD), which is also what
     * the default (auto) sends over https. */
    c.s3.sign_payload = KL_SIGN_PAYLOAD_OFF;
    kl_objstore *s3, *os;
    kl_error err = {0};
    if (kl_objstore_s3_new(&c.s3, &s3, &err)) die("s3", &err);
    os = kl_wrap_new(s3);
    c.store.object_prefix = prefix;
    kl_writer *w;
    if (kl_store_writer_new(os, &c.store, &w, &err)) die("writer", &err);

    /* Same bodies for both: write curl's files and its config first. */
    kl_insertion *ins = calloc(RECS_PER_OBJECT, sizeof *ins);
    char(*p)[101] = malloc(RECS_PER_OBJECT * sizeof *p);
    kl_buf b = {0};
    char put_cfg[256], get_cfg[256];
    snprintf(put_cfg, sizeof put_cfg, "%s/put.cfg", tmp);
    snprintf(get_cfg, sizeof get_cfg, "%s/get.cfg", tmp);
    FILE *pc = fopen(put_cfg, "w"), *gc = fopen(get_cfg, "w");
    const char *common = "aws-sigv4 = \"aws:amz:us-east-1:s3\"\nheader = \"x-amz-content-sha256: "
                         "UNSIGNED-PAYLOAD\"\n";
    fprintf(pc, "%suser = \"%s:%s\"\n", common, ak, sk);
    fprintf(gc, "%suser = \"%s:%s\"\n", common, ak, sk);
    size_t total_bytes = 0;
    for (int i = 0; i < objects; i++) {
        body_for(&b, (uint64_t)i * RECS_PER_OBJECT + 1, ins, p);
        char f[300];
        snprintf(f, sizeof f, "%s/obj%04d", tmp, i);
        FILE *fp = fopen(f, "w");
        fwrite(b.data, 1, b.len, fp);
        fclose(fp);
        total_bytes += b.len;
        fprintf(pc,
                "upload-file = \"%s\"\nurl = \"%s/%s/%scurl/obj%04d\"\noutput = \"/dev/null\"\n", f,
                ep, bucket, prefix, i);
        fprintf(gc, "url = \"%s/%s/%scurl/obj%04d\"\noutput = \"/dev/null\"\n", ep, bucket, prefix,
                i);
    }
    fclose(pc);
    fclose(gc);

    double t_curl_put = run_curl(put_cfg);
    double t0 = now();
    for (int i = 0; i < objects; i++) {
        for (int j = 0; j < RECS_PER_OBJECT; j++)
            snprintf(p[j], 101, "%0100" PRIu64, (uint64_t)i * RECS_PER_OBJECT + 1 + (uint64_t)j);
        if (kl_append(w, "bench", "k", ins, RECS_PER_OBJECT, &err)) die("append", &err);
    }
    double t_put = now() - t0;
    unsigned long put_requests = kl_wrap_total(os);
    kl_os_stats fenced_stats; /* where the fenced appends' time went */
    kl_os_stats_read(os, &fenced_stats);

    /* The same appends to another key by a writer told it is alone
     * (fencing=off): no claim and no copy, an object PUT and a LIST. */
    kl_objstore *os1 = kl_wrap_new(s3);
    kl_store_config unfenced = c.store;
    unfenced.fencing = KL_FENCING_OFF;
    kl_writer *w1;
    if (kl_store_writer_new(os1, &unfenced, &w1, &err)) die("writer", &err);
    t0 = now();
    for (int i = 0; i < objects; i++) {
        for (int j = 0; j < RECS_PER_OBJECT; j++)
            snprintf(p[j], 101, "%0100" PRIu64, (uint64_t)i * RECS_PER_OBJECT + 1 + (uint64_t)j);
        if (kl_append(w1, "bench", "k1", ins, RECS_PER_OBJECT, &err)) die("append", &err);
    }
    double t_put1 = now() - t0;
    unsigned long put1_requests = kl_wrap_total(os1);
    kl_writer_destroy(w1);
    kl_os_destroy(os1);

    /* The same records spread over 8 keys through the batching writer
     * (fenced): its flush keeps writes_in_flight objects going at once. */
    kl_writer *w8, *sw8;
    kl_batch_config bc;
    kl_batch_config_init(&bc);
    bc.batch_flush_size_threshold = 1000000;
    if (kl_store_writer_new(s3, &c.store, &sw8, &err) || kl_batch_writer_new(sw8, &bc, &w8, &err))
        die("batch writer", &err);
    t0 = now();
    for (int i = 0; i < objects; i++) {
        char key[16];
        snprintf(key, sizeof key, "p%d", i % 8);
        for (int j = 0; j < RECS_PER_OBJECT; j++)
            snprintf(p[j], 101, "%0100" PRIu64, (uint64_t)i * RECS_PER_OBJECT + 1 + (uint64_t)j);
        if (kl_append(w8, "bench", key, ins, RECS_PER_OBJECT, &err)) die("append", &err);
    }
    if (kl_flush_all(w8, &err)) die("flush", &err);
    double t_put8 = now() - t0;
    kl_writer_destroy(w8);
    kl_writer_destroy(sw8);

    /* One key through the batching writer, an object per append: its
     * writes hold several objects, pipelined (FORMAT.md "Pipelined
     * appends"): the claim of one object overlaps the publish of the one
     * before. */
    kl_writer *wp, *swp;
    bc.batch_flush_size_threshold = 700000; /* one append (749 kB) fills an object */
    if (kl_store_writer_new(s3, &c.store, &swp, &err) || kl_batch_writer_new(swp, &bc, &wp, &err))
        die("batch writer", &err);
    t0 = now();
    for (int i = 0; i < objects; i++) {
        for (int j = 0; j < RECS_PER_OBJECT; j++)
            snprintf(p[j], 101, "%0100" PRIu64, (uint64_t)i * RECS_PER_OBJECT + 1 + (uint64_t)j);
        if (kl_append(wp, "bench", "pipelined", ins, RECS_PER_OBJECT, &err)) die("append", &err);
    }
    if (kl_flush_all(wp, &err)) die("flush", &err);
    double t_putp = now() - t0;
    kl_writer_destroy(wp);
    kl_writer_destroy(swp);

    double t_curl_get = run_curl(get_cfg);
    uint64_t expect = (uint64_t)objects * RECS_PER_OBJECT;
    kl_store_config seq = c.store;
    seq.reader_readahead = 0;
    double t_get_seq = read_all(os, &seq, expect);
    double t_get_ra = read_all(os, &c.store, expect);

    double mbytes = total_bytes / 1e6;
    printf("S3 store vs curl(1) on the same server: %d objects, %.0f MB\n", objects, mbytes);
    printf("  %-34s %9s %9s %8s\n", "", "klstore", "curl", "ratio");
    printf("  %-34s %7.1fMB/s %7.1fMB/s %7.2fx\n", "append (PUT)", mbytes / t_put,
           mbytes / t_curl_put, t_curl_put / t_put);
    printf("  %-34s %7.1fMB/s %7.1fMB/s %7.2fx\n", "append, fencing=off (one writer)",
           mbytes / t_put1, mbytes / t_curl_put, t_curl_put / t_put1);
    printf("  %-34s %7.1fMB/s %7.1fMB/s %7.2fx\n", "append, 8 keys, batching writer",
           mbytes / t_put8, mbytes / t_curl_put, t_curl_put / t_put8);
    printf("  %-34s %7.1fMB/s %7.1fMB/s %7.2fx\n", "append, 1 key, batching (pipelined)",
           mbytes / t_putp, mbytes / t_curl_put, t_curl_put / t_putp);
    printf("  %-34s %7.1fMB/s %7.1fMB/s %7.2fx\n", "read, sequential GETs", mbytes / t_get_seq,
           mbytes / t_curl_get, t_curl_get / t_get_seq);
    printf("  %-34s %7.1fMB/s %7.1fMB/s %7.2fx\n", "read, readahead (8 parallel GETs)",
           mbytes / t_get_ra, mbytes / t_curl_get, t_curl_get / t_get_ra);
    printf("  requests per MB appended: %.2f fenced (%lu for %.0f MB), %.2f with fencing=off\n",
           put_requests / mbytes, put_requests, mbytes, put1_requests / mbytes);
    printf("  fenced append, per object: %.1f ms; curl PUT %.1f ms; by request:",
           t_put * 1e3 / objects, t_curl_put * 1e3 / objects);
    for (int op = 0; op < KL_OP_COUNT; op++)
        if (fenced_stats.calls[op])
            printf(" %s %lu x %.1f ms", kl_os_op_name((kl_os_op)op),
                   (unsigned long)fenced_stats.calls[op],
                   fenced_stats.seconds[op] * 1e3 / (double)fenced_stats.calls[op]);
    printf("\n");

    kl_writer_destroy(w);
    kl_os_destroy(os);
    kl_os_destroy(s3);
    c.store.object_prefix = NULL;
    kl_config_free(&c);
    Kl_buf_free(&b);
    free(ins);
    free(p);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : 1;
}
