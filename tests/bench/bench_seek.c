/* bench_seek.c -- what a read costs in requests on a large key: the LISTs
 * and GETs (kl_os_stats_read, through a wrapper that hides the local
 * store's mmap so that every object read is a GET, as on S3) of a page of
 * 10 records from the end, a timestamp, a nonce and a middle offset, of
 * the key's metadata, and of paging through the whole key.  The bound of
 * issue #13 is printed beside each: ceil(log2(N/1000)) + 3 LISTs and 3 GETs.
 *   bench_seek DIR [OBJECTS] [RECORDS_PER_OBJECT]
 * DIR should be on tmpfs: building the key is N small PUTs. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "common/objstore_wrap.h"
#include "klstore.h"

static void die(const char *what, const kl_error *e)
{
    fprintf(stderr, "bench_seek: %s: %s\n", what, e ? e->msg : "failed");
    exit(1);
}

/* Objects of `per` records each: offsets 1.., timestamps 1000*offset,
 * nonces = offsets. */
static void build(kl_objstore *os, uint64_t objects, uint64_t per)
{
    kl_error e = {0};
    char payload[100];
    memset(payload, 'x', sizeof payload);
    uint64_t prior = 0;
    for (uint64_t o = 0; o < objects; o++) {
        kl_buf b = {0};
        uint64_t first = o * per + 1;
        for (uint64_t i = 0; i < per; i++)
            if (Kl_codec_put(&b, first + i, (int64_t)(first + i) * 1000, 1, first + i, payload,
                             sizeof payload))
                die("encode", NULL);
        kl_object_meta m = {.first_offset = first,
                            .last_offset = first + per - 1,
                            .min_ts = (int64_t)first * 1000,
                            .max_ts = (int64_t)(first + per - 1) * 1000,
                            .first_nonce = first,
                            .next_nonce = first + per,
                            .size = b.len,
                            .prior = prior};
        char name[512] = "ks/big/";
        if (kl_object_name_format(&m, name + strlen(name), sizeof name - strlen(name)) < 0)
            die("name", NULL);
        if (kl_os_put(os, name, b.data, b.len, 0, &e)) die("put", &e);
        Kl_buf_free(&b);
        prior = first;
    }
}

static void report(const char *what, kl_objstore *os, const kl_os_stats *before, double lists_max,
                   double gets_max)
{
    kl_os_stats now;
    kl_os_stats_read(os, &now);
    uint64_t lists = now.calls[KL_OP_LIST] - before->calls[KL_OP_LIST];
    uint64_t gets = now.calls[KL_OP_GET] - before->calls[KL_OP_GET];
    printf("%-34s %6" PRIu64 " LISTs %6" PRIu64 " GETs", what, lists, gets);
    if (lists_max >= 0)
        printf("   (bound %.0f / %.0f)%s", lists_max, gets_max,
               lists <= lists_max && gets <= gets_max ? "" : "  OVER");
    printf("\n");
}

/* Each case gets a fresh reader: a cold cache and no listing memo, as a
 * new process (a CLI call) would have. */
static kl_reader *reader(kl_objstore *os)
{
    kl_store_config cfg;
    kl_store_config_init(&cfg);
    kl_reader *r;
    kl_error e = {0};
    if (kl_store_reader_new(os, &cfg, &r, &e)) die("reader", &e);
    return r;
}

static void page(kl_objstore *os, const char *what, kl_direction dir, kl_start s, double lists_max,
                 double gets_max, uint64_t want_first)
{
    kl_reader *r = reader(os);
    kl_os_stats before;
    kl_os_stats_read(os, &before);
    kl_page p;
    kl_error e = {0};
    if (kl_read_first_page(r, "ks", "big", dir, &s, 10, &p, &e)) die(what, &e);
    if (p.count != 10 || p.records[0].offset != want_first) {
        fprintf(stderr, "bench_seek: %s: got %zu records from offset %" PRIu64 "\n", what, p.count,
                p.count ? p.records[0].offset : 0);
        exit(1);
    }
    kl_page_free(&p);
    kl_reader_destroy(r); /* joins the readahead: its GETs count too */
    report(what, os, &before, lists_max, gets_max);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_seek DIR [OBJECTS] [RECORDS_PER_OBJECT]\n");
        return 2;
    }
    uint64_t objects = argc > 2 ? strtoull(argv[2], NULL, 10) : 10000;
    uint64_t per = argc > 3 ? strtoull(argv[3], NULL, 10) : 10;
    kl_error e = {0};
    kl_objstore *local, *os;
    if (kl_objstore_local_new(argv[1], &local, &e)) die("store", &e);
    os = kl_wrap_new(local);
    build(os, objects, per);
    uint64_t n = objects * per, mid = n / 2 + 1;
    double lists = ceil(log2(objects / 1000.0 > 1 ? objects / 1000.0 : 1)) + 3;
    printf("key of %" PRIu64 " objects x %" PRIu64 " records; pages of 10\n", objects, per);
    page(os, "from the end (backwards)", KL_BACKWARDS, (kl_start){.kind = KL_START_LAST}, lists, 3,
         n);
    page(os, "from a middle timestamp", KL_FORWARDS,
         (kl_start){.kind = KL_START_TIMESTAMP, .timestamp = (int64_t)mid * 1000}, lists, 3, mid);
    page(os, "from a middle nonce", KL_FORWARDS, (kl_start){.kind = KL_START_NONCE, .nonce = mid},
         lists, 3, mid);
    page(os, "from a middle offset", KL_FORWARDS,
         (kl_start){.kind = KL_START_OFFSET, .offset = mid}, lists, 3, mid);
    page(os, "from the first record", KL_FORWARDS, (kl_start){.kind = KL_START_FIRST}, lists, 3, 1);
    kl_reader *r = reader(os);
    kl_os_stats before;
    kl_os_stats_read(os, &before);
    kl_key_meta km;
    int exists;
    if (kl_read_key_metadata(r, "ks", "big", &exists, &km, &e)) die("meta", &e);
    report("key metadata", os, &before, lists, 3);
    kl_reader_destroy(r);
    kl_os_destroy(os);
    kl_os_destroy(local);
    return 0;
}
