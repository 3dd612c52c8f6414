/* test_framed.c -- a batching writer over a store writer sends its queued
 * records where they lie (append.h "framed"): the records are copied once,
 * into the queue, encoded, and the store writer writes their offsets in
 * place and hands the object store the queued frames in pieces.
 *
 * Each case writes the same records through a batching writer and through
 * one kl_append of a plain store writer, and compares the objects byte for
 * byte, so a wrong offset, a frame left out or a piece out of order shows.
 * The batching writer's store writer counts what it copied
 * (kl_writer_stats.records_copied), and the object store sees the pieces
 * it was handed: together they tell which way the bytes went.  Runs on the
 * directory store and, with KL_TEST_STORE=s3, on S3. */
#include "buf.h"
#include "common/objstore_wrap.h"
#include "test_env.h"

static kt_store T;

/* The largest number of pieces of a claim body seen by the wrapper. */
static size_t most_pieces;

static kl_status count_claim(kl_objstore *os, const char *c, const char *o, const kl_body *b,
                             char **t, kl_error *e)
{
    size_t len = 0;
    for (size_t i = 0; i < b->n; i++) len += b->v[i].iov_len;
    cr_assert_eq(len, b->len, "a body's pieces add up to its length");
    if (b->n > most_pieces) most_pieces = b->n;
    return kl_os_claim(KL_WRAP(os)->inner, c, o, b, t, e);
}

static kl_objstore *os;
static kl_objstore_ops ops;
static kl_writer *sw, *bw;

static void setup(void)
{
    kt_open(&T);
    os = kl_wrap_new(T.os);
    ops = *os->ops;
    ops.claim = count_claim;
    os->ops = &ops;
    most_pieces = 0;
    kl_error err = {0};
    cr_assert_eq(kl_store_writer_new(os, &T.cfg, &sw, &err), KL_OK, "%s", err.msg);
    kl_batch_config bc;
    kl_batch_config_init(&bc);
    bc.batch_flush_interval_millis = 60000; /* only explicit flushes */
    cr_assert_eq(kl_batch_writer_new(sw, &bc, &bw, &err), KL_OK, "%s", err.msg);
}

static void teardown(void)
{
    kl_writer_destroy(bw);
    kl_writer_destroy(sw);
    kl_os_destroy(os);
    kt_close(&T);
}

TestSuite(framed, .init = setup, .fini = teardown, .timeout = 120);

/* Record i: a payload of (i * 37) % 301 bytes (some empty), a timestamp,
 * and a nonce i when `nonces` (duplicates come from `nonce_of`). */
static kl_insertion rec(size_t i, char *buf, int nonces, kl_u128 nonce)
{
    size_t len = (i * 37) % 301;
    for (size_t k = 0; k < len; k++) buf[k] = (char)('a' + (i + k) % 26);
    return (kl_insertion){.data = buf,
                          .len = len,
                          .has_timestamp = 1,
                          .timestamp = 1700000000000 + (int64_t)i,
                          .has_nonce = nonces,
                          .nonce = nonce};
}

/* The bodies of a key's objects, in order, concatenated. */
static kl_buf bodies(const char *key)
{
    kl_object_meta *v = NULL;
    size_t n = 0;
    kl_error err = {0};
    cr_assert_eq(kl_list_objects(T.os, &T.cfg, "ks", key, 0, 0, &v, &n, &err), KL_OK, "%s",
                 err.msg);
    kl_buf all = {0};
    for (size_t i = 0; i < n; i++) {
        char suffix[256], rest[320];
        cr_assert_gt(kl_object_name_format(&v[i], suffix, sizeof suffix), 0);
        snprintf(rest, sizeof rest, "ks/%s/%s", key, suffix);
        char *name = kt_name(&T, rest);
        uint8_t *d = NULL;
        size_t len = 0;
        cr_assert_eq(kl_os_get(T.os, name, 0, UINT64_MAX, &d, &len, &err), KL_OK, "%s", err.msg);
        cr_assert_eq(Kl_buf_append(&all, d, len), 0);
        free(d);
        free(name);
    }
    free(v);
    return all;
}

static kl_writer_stats stats(void)
{
    kl_writer_stats s;
    cr_assert_eq(kl_store_writer_stats(sw, &s, NULL), KL_OK);
    return s;
}

/* Appends `per` records at a time, `calls` times, through the batching
 * writer to key "b" and flushes; the same records in one kl_append to "a"
 * (a plain store writer, no batching); compares the two keys' bytes. */
static void same_as_kl_append(size_t calls, size_t per, int nonces, const kl_u128 *nonce_of)
{
    size_t n = calls * per;
    kl_insertion *all = calloc(n, sizeof *all);
    char *bufs = malloc(n * 301);
    cr_assert(all && bufs);
    for (size_t i = 0; i < n; i++)
        all[i] = rec(i, bufs + i * 301, nonces, nonce_of ? nonce_of[i] : i);
    kl_error err = {0};
    for (size_t c = 0; c < calls; c++)
        cr_assert_eq(kl_append(bw, "ks", "b", all + c * per, per, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_flush_key(bw, "ks", "b", &err), KL_OK, "%s", err.msg);

    kl_writer *plain;
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &plain, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_append(plain, "ks", "a", all, n, &err), KL_OK, "%s", err.msg);
    kl_writer_destroy(plain);

    kl_buf a = bodies("a"), b = bodies("b");
    cr_assert_gt(a.len, 0);
    cr_assert_eq(b.len, a.len, "batched %zu bytes, kl_append %zu", b.len, a.len);
    cr_assert(memcmp(a.data, b.data, a.len) == 0, "the same bytes");
    Kl_buf_free(&a);
    Kl_buf_free(&b);
    free(all);
    free(bufs);
}

Test(framed, big_appends_go_out_in_place_byte_for_byte)
{
    /* 24 appends of 48 records, ~7 KB each: one object of 24 pieces. */
    same_as_kl_append(24, 48, 0, NULL);
    kl_writer_stats s = stats();
    cr_assert_eq(s.records_written, 24 * 48);
    cr_assert_eq(s.records_copied, 0, "copied %llu", (unsigned long long)s.records_copied);
    cr_assert_eq(most_pieces, 24, "one piece per queued append: %zu", most_pieces);
}

Test(framed, big_appends_with_nonces_go_out_in_place)
{
    same_as_kl_append(4, 64, 1, NULL);
    cr_assert_eq(stats().records_copied, 0);
    cr_assert_eq(most_pieces, 4);
}

Test(framed, a_dropped_duplicate_nonce_makes_a_copy_without_it)
{
    /* Record 100 repeats nonce 99: the nonce check drops it, and the
     * object must hold every other record at consecutive offsets. */
    kl_u128 nonce_of[4 * 64];
    for (size_t i = 0; i < 4 * 64; i++) nonce_of[i] = i < 100 ? i : i - 1;
    same_as_kl_append(4, 64, 1, nonce_of);
    kl_writer_stats s = stats();
    cr_assert_eq(s.records_duplicate, 1);
    cr_assert_eq(s.records_copied, 4 * 64 - 1, "a copy of the records kept");
    cr_assert_eq(most_pieces, 1);
}

Test(framed, many_small_appends_are_gathered_into_one_copy)
{
    /* 200 one-record appends: a piece each would cost more than a copy. */
    same_as_kl_append(200, 1, 0, NULL);
    cr_assert_eq(stats().records_copied, 200);
    cr_assert_eq(most_pieces, 1);
}

Test(framed, a_full_batch_goes_out_as_several_objects_in_place)
{
    /* Objects of ~16 KiB, a write of up to four of them pipelined (the
     * next claim while the one before is published), each in place. */
    kl_writer_destroy(bw);
    kl_batch_config bc;
    kl_batch_config_init(&bc);
    bc.batch_flush_interval_millis = 60000;
    bc.batch_flush_size_threshold = 16 << 10;
    kl_error err = {0};
    cr_assert_eq(kl_batch_writer_new(sw, &bc, &bw, &err), KL_OK, "%s", err.msg);
    same_as_kl_append(32, 48, 0, NULL);
    kl_writer_stats s = stats();
    cr_assert_eq(s.records_copied, 0, "copied %llu", (unsigned long long)s.records_copied);
    cr_assert_geq(s.objects, 8, "%llu objects", (unsigned long long)s.objects);
}

/* The first publish lands and then answers with an error. */
static int fail_publishes;
static kl_status landed_publish(kl_objstore *os, const char *c, const char *o, const char *t,
                                const kl_body *b, kl_error *e)
{
    kl_status st = kl_os_publish(KL_WRAP(os)->inner, c, o, t, b, e);
    if (st == KL_OK && fail_publishes > 0) {
        fail_publishes--;
        return kl_seterr(e, KL_EIO, "injected: the publish landed, its answer was lost");
    }
    return st;
}

Test(framed, a_retry_after_a_lost_answer_finds_the_frames_in_once)
{
    /* The batch's object is published but the writer hears an error; the
     * retry encodes the same frames again at the same offsets, finds them
     * in, and appends nothing twice. */
    ops.publish = landed_publish;
    fail_publishes = 1;
    size_t calls = 6, per = 48, n = calls * per;
    kl_insertion *all = calloc(n, sizeof *all);
    char *bufs = malloc(n * 301);
    cr_assert(all && bufs);
    for (size_t i = 0; i < n; i++) all[i] = rec(i, bufs + i * 301, 0, 0);
    kl_error err = {0};
    for (size_t c = 0; c < calls; c++)
        cr_assert_eq(kl_append(bw, "ks", "b", all + c * per, per, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_flush_key(bw, "ks", "b", &err), KL_EIO, "the lost answer is reported");
    kl_status st = KL_EIO;
    for (int tries = 0; st != KL_OK && tries < 100; tries++) {
        st = kl_flush_key(bw, "ks", "b", &err);
        if (st != KL_OK) usleep(50 * 1000);
    }
    cr_assert_eq(st, KL_OK, "%s", err.msg);
    cr_assert_eq(fail_publishes, 0);
    kl_writer *plain;
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &plain, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_append(plain, "ks", "a", all, n, &err), KL_OK, "%s", err.msg);
    kl_writer_destroy(plain);
    kl_buf a = bodies("a"), b = bodies("b");
    cr_assert_eq(b.len, a.len, "batched %zu bytes, kl_append %zu", b.len, a.len);
    cr_assert(memcmp(a.data, b.data, a.len) == 0, "the same bytes, each record once");
    kl_writer_stats s = stats();
    cr_assert_eq(s.records_written, n);
    cr_assert_eq(s.records_copied, 0, "copied %llu", (unsigned long long)s.records_copied);
    Kl_buf_free(&a);
    Kl_buf_free(&b);
    free(all);
    free(bufs);
}
