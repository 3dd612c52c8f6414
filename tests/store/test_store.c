/* test_store.c -- the store writer and reader against a real object store
 * (a directory, or S3 with KL_TEST_STORE=s3): keyspaces, nonce checking,
 * each compaction trigger, paging both ways from every start kind,
 * continuation tokens, the key cache, bad input and corrupt objects, and
 * the format byte for byte. */
#include <inttypes.h>

#include "buf.h"
#include "codec.h"
#include "keyindex.h"
#include "test_env.h"

static kt_store T;
static kl_writer *W;
static kl_reader *R;

static void open_rw(void)
{
    kl_error err = {0};
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &W, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_store_reader_new(T.os, &T.cfg, &R, &err), KL_OK, "%s", err.msg);
}
static void close_rw(void)
{
    kl_writer_destroy(W);
    kl_reader_destroy(R);
    W = NULL;
    R = NULL;
}
static void setup(void)
{
    kt_open(&T);
    open_rw();
}
static void teardown(void)
{
    close_rw();
    kt_close(&T);
}
TestSuite(store, .init = setup, .fini = teardown, .timeout = 300);

/* ---- helpers ---- */

/* Compaction runs on the writer's own thread after an append returns;
 * tests of the objects a key ends up with wait for it (kl_duty_cycle). */
static void settle(kl_writer *w) { cr_assert_eq(kl_duty_cycle(w, NULL), KL_OK); }

static void append_ts(const char *key, const char *s, int64_t ts)
{
    kl_insertion in = kt_rec(s);
    in.has_timestamp = 1;
    in.timestamp = ts;
    kl_error err = {0};
    cr_assert_eq(kl_append(W, "ks", key, &in, 1, &err), KL_OK, "%s", err.msg);
    settle(W);
}

static void append_nonce(const char *key, const char *s, kl_u128 nonce)
{
    kl_insertion in = kt_rec(s);
    in.has_nonce = 1;
    in.nonce = nonce;
    kl_error err = {0};
    cr_assert_eq(kl_append(W, "ks", key, &in, 1, &err), KL_OK, "%s", err.msg);
}

/* Reads a whole key in one direction into "v1 v2 ..." (values). */
static void read_all(const char *key, kl_direction dir, const kl_start *start, uint64_t psize,
                     char *out, size_t cap)
{
    kl_page p;
    kl_error err = {0};
    out[0] = 0;
    cr_assert_eq(kl_read_first_page(R, "ks", key, dir, start, psize, &p, &err), KL_OK, "%s",
                 err.msg);
    for (int guard = 0; guard < 100000; guard++) {
        cr_assert_leq(p.count, psize ? psize : T.cfg.default_page_size);
        for (size_t i = 0; i < p.count; i++) {
            strncat(out, (const char *)p.records[i].data, p.records[i].len);
            strcat(out, " ");
        }
        int done = p.count == 0 || !p.continuation;
        char *tok = p.continuation ? strdup(p.continuation) : NULL;
        kl_page_free(&p);
        if (done) {
            free(tok);
            return;
        }
        cr_assert_eq(kl_read_next_page(R, "ks", key, tok, psize, &p, &err), KL_OK, "%s", err.msg);
        free(tok);
    }
    cr_assert_fail("paging did not end");
    (void)cap;
}

static size_t count_objects(const char *key)
{
    kl_object_meta *v;
    size_t n;
    kl_error err = {0};
    cr_assert_eq(kl_list_objects(T.os, &T.cfg, "ks", key, 0, 0, &v, &n, &err), KL_OK, "%s",
                 err.msg);
    free(v);
    return n;
}

static size_t count_raw(const char *rest)
{
    char *prefix = kt_name(&T, rest);
    kl_list_req req = {.prefix = prefix};
    kl_listing l;
    cr_assert_eq(kl_os_list(T.os, &req, &l, NULL), KL_OK);
    size_t n = l.n_objects;
    kl_listing_free(&l);
    free(prefix);
    return n;
}

static int64_t watermark(const char *key)
{
    char rest[256];
    snprintf(rest, sizeof rest, "ks/%s/watermark", key);
    char *n = kt_name(&T, rest);
    uint8_t *d;
    size_t len;
    kl_status st = kl_os_get(T.os, n, 0, UINT64_MAX, &d, &len, NULL);
    free(n);
    if (st == KL_ENOTFOUND) return -1;
    cr_assert_eq(st, KL_OK);
    cr_assert_eq(len, 8, "watermark is one u64");
    int64_t v = (int64_t)Kl_le64(d);
    free(d);
    return v;
}

/* ---- keyspaces ---- */

Test(store, keyspaces)
{
    kl_error err = {0};
    int64_t created = 0, before = kl_now_ms();
    cr_assert_eq(kl_create_keyspace(W, "ks", &created, &err), KL_OK, "%s", err.msg);
    cr_assert(created >= before && created <= kl_now_ms());
    cr_assert_eq(kl_create_keyspace(W, "ks", NULL, &err), KL_EEXIST);
    cr_assert(strstr(err.msg, "'ks' already exists"), "%s", err.msg);
    kl_keyspace_meta km;
    cr_assert_eq(kl_read_keyspace_metadata(R, "ks", &km, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(km.created, created);
    cr_assert_eq(kl_read_keyspace_metadata(R, "nope", &km, &err), KL_ENOKEYSPACE);
    cr_assert(strstr(err.msg, "nope"), "%s", err.msg);

    /* The marker is the INI text FORMAT.md describes. */
    char *n = kt_name(&T, "ks_config.ini");
    uint8_t *d;
    size_t len;
    cr_assert_eq(kl_os_get(T.os, n, 0, UINT64_MAX, &d, &len, NULL), KL_OK);
    char want[64];
    snprintf(want, sizeof want, "[keyspace]\ncreated=%" PRId64 "\n", created);
    cr_assert_eq(len, strlen(want));
    cr_assert_eq(memcmp(d, want, len), 0);
    free(d);
    free(n);

    /* Keyspaces with data but no marker are listed too (FORMAT.md). */
    kl_insertion in = kt_rec("x");
    cr_assert_eq(kl_append(W, "data-only", "k", &in, 1, &err), KL_OK, "%s", err.msg);
    char **names;
    size_t cnt;
    cr_assert_eq(kl_list_keyspaces(T.os, &T.cfg, &names, &cnt, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(cnt, 2);
    cr_assert_str_eq(names[0], "data-only");
    cr_assert_str_eq(names[1], "ks");
    kl_strv_free(names, cnt);
    cr_assert_eq(kl_read_keyspace_metadata(R, "data-only", &km, &err), KL_ENOKEYSPACE);
}

Test(store, corrupt_keyspace_marker)
{
    char *n = kt_name(&T, "bad_config.ini");
    cr_assert_eq(kl_os_put(T.os, n, "garbage", 7, 0, NULL), KL_OK);
    free(n);
    kl_keyspace_meta km;
    kl_error err = {0};
    cr_assert_eq(kl_read_keyspace_metadata(R, "bad", &km, &err), KL_EBADDATA);
    cr_assert(strstr(err.msg, "marker"), "%s", err.msg);
}

/* ---- format, byte for byte ---- */

Test(store, writer_output_matches_format)
{
    kl_insertion in[3] = {kt_rec("a"), kt_rec("bb"), kt_rec("")};
    for (int i = 0; i < 3; i++) {
        in[i].has_timestamp = 1;
        in[i].timestamp = 1700000000000LL + 2 - i; /* out of order on purpose */
    }
    in[1].has_nonce = 1;
    in[1].nonce = 7;
    kl_error err = {0};
    cr_assert_eq(kl_append(W, "ks", "k", in, 3, &err), KL_OK, "%s", err.msg);

    kl_buf want = {0};
    Kl_codec_put(&want, 1, 1700000000002LL, 0, 0, "a", 1);
    Kl_codec_put(&want, 2, 1700000000001LL, 1, 7, "bb", 2);
    Kl_codec_put(&want, 3, 1700000000000LL, 0, 0, "", 0);
    char rest[256];
    snprintf(rest, sizeof rest,
             "ks/k/data_o00000000000000000001-o3_t1700000000000-t1700000000002_n7-n8_s%zu_p0.bin",
             want.len);
    char *n = kt_name(&T, rest);
    uint8_t *d;
    size_t len;
    cr_assert_eq(kl_os_get(T.os, n, 0, UINT64_MAX, &d, &len, &err), KL_OK, "%s: %s", n, err.msg);
    cr_assert_eq(len, want.len);
    cr_assert_arr_eq(d, want.data, len);
    free(d);
    free(n);

    /* The next object points back at this one and starts at offset 4;
     * with no nonce its nonce range is the key's next nonce. */
    append_ts("k", "c", 5);
    snprintf(rest, sizeof rest, "ks/k/data_o00000000000000000004-o4_t5-t5_n8-n8_s41_p1.bin");
    n = kt_name(&T, rest);
    cr_assert_eq(kl_os_head(T.os, n, NULL, &err), KL_OK, "%s: %s", n, err.msg);
    free(n);
    Kl_buf_free(&want);

    kl_key_meta km;
    int exists;
    cr_assert_eq(kl_read_key_metadata(R, "ks", "k", &exists, &km, &err), KL_OK);
    cr_assert(exists && km.next_offset == 5 && km.next_nonce == 8);
    cr_assert_eq(kl_read_key_metadata(R, "ks", "missing", &exists, &km, &err), KL_OK);
    cr_assert_not(exists);
}

Test(store, reads_hand_built_objects_with_compaction_overlap)
{
    /* Objects as another implementation would write them, including a
     * merged object lying next to the originals it replaced. */
    kl_buf a = {0}, b = {0}, m = {0};
    Kl_codec_put(&a, 1, 10, 0, 0, "r1", 2);
    Kl_codec_put(&a, 2, 11, 0, 0, "r2", 2);
    Kl_codec_put(&b, 3, 12, 1, 0, "r3", 2);
    Kl_buf_append(&m, a.data, a.len);
    Kl_buf_append(&m, b.data, b.len);
    struct {
        kl_object_meta meta;
        kl_buf *body;
    } objs[] = {
        {{1, 2, 10, 11, 0, 0, 0, 0}, &a},
        {{3, 3, 12, 12, 0, 1, 0, 1}, &b},
        {{1, 3, 10, 12, 0, 1, 0, 0}, &m},
    };
    for (int i = 0; i < 3; i++) {
        objs[i].meta.size = objs[i].body->len;
        char base[256], rest[300];
        kl_object_name_format(&objs[i].meta, base, sizeof base);
        snprintf(rest, sizeof rest, "ks/k/%s", base);
        char *n = kt_name(&T, rest);
        cr_assert_eq(kl_os_put(T.os, n, objs[i].body->data, objs[i].body->len, 0, NULL), KL_OK);
        free(n);
    }
    char out[256];
    read_all("k", KL_FORWARDS, NULL, 1, out, sizeof out);
    cr_assert_str_eq(out, "r1 r2 r3 ", "each offset exactly once");
    kl_start last = {.kind = KL_START_LAST};
    read_all("k", KL_BACKWARDS, &last, 2, out, sizeof out);
    cr_assert_str_eq(out, "r3 r2 r1 ");
    Kl_buf_free(&a);
    Kl_buf_free(&b);
    Kl_buf_free(&m);
}

/* ---- nonces ---- */

Test(store, nonce_filter)
{
    kl_insertion in[7];
    const char *vals[] = {"n5", "n3", "n5again", "n6", "plain", "n10", "n9"};
    kl_u128 nonces[] = {5, 3, 5, 6, 0, 10, 9};
    for (int i = 0; i < 7; i++) {
        in[i] = kt_rec(vals[i]);
        in[i].has_nonce = i != 4;
        in[i].nonce = nonces[i];
    }
    kl_error err = {0};
    cr_assert_eq(kl_append(W, "ks", "k", in, 7, &err), KL_OK, "%s", err.msg);
    char out[256];
    read_all("k", KL_FORWARDS, NULL, 0, out, sizeof out);
    cr_assert_str_eq(out, "n5 n6 plain n10 ");
    /* A retry of the whole batch is exactly-once: nothing new but the
     * record without a nonce (which nonces cannot protect). */
    size_t objs = count_objects("k");
    in[4].has_nonce = 1;
    in[4].nonce = 1;
    cr_assert_eq(kl_append(W, "ks", "k", in, 7, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(count_objects("k"), objs, "an all-duplicate append writes no object");
    read_all("k", KL_FORWARDS, NULL, 0, out, sizeof out);
    cr_assert_str_eq(out, "n5 n6 plain n10 ");
    kl_key_meta km;
    int exists;
    cr_assert_eq(kl_read_key_metadata(R, "ks", "k", &exists, &km, &err), KL_OK);
    cr_assert(km.next_nonce == 11);
    /* Nonces survive a new writer (state reloaded from the store). */
    close_rw();
    open_rw();
    append_nonce("k", "late", 10);
    append_nonce("k", "ok", 11);
    read_all("k", KL_FORWARDS, NULL, 0, out, sizeof out);
    cr_assert_str_eq(out, "n5 n6 plain n10 ok ");
}

/* The store writer's counters follow what the nonce filter did. */
Test(store, writer_stats_count_written_and_duplicate_records)
{
    kl_insertion in[3];
    for (int i = 0; i < 3; i++) {
        in[i] = kt_rec("x");
        in[i].has_nonce = 1;
        in[i].nonce = (kl_u128)i + 1;
    }
    kl_error err = {0};
    cr_assert_eq(kl_append(W, "ks", "k", in, 3, &err), KL_OK, "%s", err.msg);
    in[0].nonce = 4; /* a retry of 2 and 3, plus one new record */
    cr_assert_eq(kl_append(W, "ks", "k", in, 3, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_append(W, "ks", "k", in + 1, 2, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_append(W, "ks", ".bad", in, 1, &err), KL_EINVAL);
    kl_writer_stats st;
    cr_assert_eq(kl_store_writer_stats(W, &st, &err), KL_OK);
    char got[160];
    snprintf(got, sizeof got, "appends %llu written %llu duplicate %llu objects %llu failed %llu",
             (unsigned long long)st.appends, (unsigned long long)st.records_written,
             (unsigned long long)st.records_duplicate, (unsigned long long)st.objects,
             (unsigned long long)st.append_failures);
    cr_assert_str_eq(got, "appends 3 written 4 duplicate 4 objects 2 failed 1");
    kl_writer *bw;
    kl_batch_config bc;
    kl_batch_config_init(&bc);
    cr_assert_eq(kl_batch_writer_new(W, &bc, &bw, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_store_writer_stats(bw, &st, &err), KL_EINVAL, "not a store writer");
    kl_writer_destroy(bw);
}

/* ---- bad input ---- */

Test(store, bad_input_is_rejected_and_writes_nothing)
{
    kl_error err = {0};
    kl_insertion in = kt_rec("x");
    cr_assert_eq(kl_append(W, "a/b", "k", &in, 1, &err), KL_EINVAL);
    cr_assert(strstr(err.msg, "keyspace"), "%s", err.msg);
    cr_assert_eq(kl_append(W, "ks", "..", &in, 1, &err), KL_EINVAL);
    cr_assert_eq(kl_append(W, "ks", "", &in, 1, &err), KL_EINVAL);
    kl_insertion big[2] = {kt_rec("ok"), {.data = "", .len = (size_t)KL_RECORD_MAX + 1}};
    cr_assert_eq(kl_append(W, "ks", "k", big, 2, &err), KL_EINVAL);
    cr_assert(strstr(err.msg, "maximum"), "%s", err.msg);
    kl_insertion reserved = kt_rec("x");
    reserved.has_nonce = 1;
    reserved.nonce = KL_NONCE_NONE;
    cr_assert_eq(kl_append(W, "ks", "k", &reserved, 1, &err), KL_EINVAL);
    cr_assert_eq(count_raw(""), 0, "nothing was written");
    kl_page p;
    cr_assert_eq(kl_read_first_page(R, "ks", "bad/key", KL_FORWARDS, NULL, 0, &p, &err), KL_EINVAL);
    kl_key_meta km;
    int ex;
    cr_assert_eq(kl_read_key_metadata(R, "", "k", &ex, &km, &err), KL_EINVAL);
    cr_assert_eq(kl_create_keyspace(W, ".", NULL, &err), KL_EINVAL);
}

/* ---- compaction ---- */

Test(store, compaction_by_record_count)
{
    close_rw();
    T.cfg.compact_records_threshold = 4;
    T.cfg.compact_size_threshold = UINT64_MAX;
    T.cfg.compact_objects_threshold = 1000;
    open_rw();
    for (int i = 1; i <= 3; i++) append_ts("k", "r", i);
    cr_assert_eq(count_objects("k"), 3);
    cr_assert_eq(watermark("k"), -1);
    append_ts("k", "r", 4);
    cr_assert_eq(count_raw("ks/k/data_"), 1, "merged into one object, originals deleted");
    cr_assert_eq(watermark("k"), 1);
    char rest[200];
    snprintf(rest, sizeof rest, "ks/k/data_o00000000000000000001-o4_t1-t4_n0-n0_s164_p0.bin");
    char *n = kt_name(&T, rest);
    cr_assert_eq(kl_os_head(T.os, n, NULL, NULL), KL_OK, "merged object name");
    free(n);
    for (int i = 5; i <= 8; i++) append_ts("k", "r", i);
    cr_assert_eq(count_raw("ks/k/data_"), 2);
    /* Stored lazily (FORMAT.md "Concurrent writers"), at the latest when
     * the writer goes away. */
    cr_assert_eq(watermark("k"), 1, "the watermark object is written lazily");
    close_rw();
    cr_assert_eq(watermark("k"), 5, "the next complete batch, stored at shutdown");
    open_rw();
    char out[256];
    read_all("k", KL_FORWARDS, NULL, 3, out, sizeof out);
    cr_assert_str_eq(out, "r r r r r r r r ");
}

Test(store, compaction_by_size)
{
    close_rw();
    T.cfg.compact_records_threshold = UINT64_MAX;
    T.cfg.compact_size_threshold = 200; /* ~4 records of 10 bytes (50 each) */
    T.cfg.compact_objects_threshold = 1000;
    open_rw();
    for (int i = 0; i < 3; i++) append_ts("k", "0123456789", i);
    cr_assert_eq(count_objects("k"), 3);
    append_ts("k", "0123456789", 3);
    cr_assert_eq(count_raw("ks/k/data_"), 1);
    cr_assert_eq(watermark("k"), 1);
}

Test(store, compaction_by_object_count_is_partial)
{
    close_rw();
    T.cfg.compact_records_threshold = 1000;
    T.cfg.compact_size_threshold = UINT64_MAX;
    T.cfg.compact_objects_threshold = 3;
    open_rw();
    for (int i = 1; i <= 3; i++) append_ts("k", "r", i);
    cr_assert_eq(count_raw("ks/k/data_"), 1);
    cr_assert_eq(watermark("k"), -1, "a partial batch does not move the watermark");
    append_ts("k", "r", 4);
    append_ts("k", "r", 5);
    cr_assert_eq(count_raw("ks/k/data_"), 1, "the partial batch is merged again");
    char rest[200];
    snprintf(rest, sizeof rest, "ks/k/data_o00000000000000000001-o5_t1-t5_n0-n0_s205_p0.bin");
    char *n = kt_name(&T, rest);
    cr_assert_eq(kl_os_head(T.os, n, NULL, NULL), KL_OK);
    free(n);
}

/* With compact_objects_threshold = 1 a lone incomplete object is not a
 * batch: the watermark stays, and two objects merge (partially). */
Test(store, a_lone_incomplete_object_never_moves_the_watermark)
{
    close_rw();
    T.cfg.compact_records_threshold = 1000;
    T.cfg.compact_size_threshold = UINT64_MAX;
    T.cfg.compact_objects_threshold = 1;
    open_rw();
    append_ts("k", "r", 1);
    cr_assert_eq(count_raw("ks/k/data_"), 1);
    close_rw(); /* stores any watermark it moved */
    cr_assert_eq(watermark("k"), -1, "an incomplete object became the watermark");
    open_rw();
    append_ts("k", "r", 2);
    cr_assert_eq(count_raw("ks/k/data_"), 1, "two objects merge into one");
    close_rw();
    cr_assert_eq(watermark("k"), -1);
    open_rw();
}

Test(store, compaction_resumes_after_writer_restart)
{
    close_rw();
    T.cfg.compact_records_threshold = 5;
    T.cfg.compact_objects_threshold = 1000;
    open_rw();
    for (int i = 1; i <= 3; i++) append_ts("k", "r", i);
    close_rw();
    open_rw(); /* the pending objects must be found again */
    append_ts("k", "r", 4);
    append_ts("k", "r", 5);
    cr_assert_eq(count_raw("ks/k/data_"), 1);
    cr_assert_eq(watermark("k"), 1);
}

Test(store, corrupt_pending_object_is_never_merged)
{
    close_rw();
    T.cfg.compact_records_threshold = 2;
    T.cfg.compact_objects_threshold = 1000;
    open_rw();
    append_ts("k", "r1", 1);
    /* Corrupt the body of the first object behind the writer's back. */
    kl_object_meta *v;
    size_t n;
    cr_assert_eq(kl_list_objects(T.os, &T.cfg, "ks", "k", 0, 0, &v, &n, NULL), KL_OK);
    char dir[128];
    snprintf(dir, sizeof dir, "%sks/k/", T.prefix);
    char *name = Kl_index_name(dir, &v[0]);
    uint8_t junk[42] = {0};
    cr_assert_eq(kl_os_put(T.os, name, junk, sizeof junk, 0, NULL), KL_OK);
    free(name);
    free(v);
    append_ts("k", "r2", 2); /* durable; compaction fails and is logged */
    cr_assert_eq(count_raw("ks/k/data_"), 2, "nothing merged or deleted");
    kl_page p;
    kl_error err = {0};
    cr_assert_eq(kl_read_first_page(R, "ks", "k", KL_FORWARDS, NULL, 0, &p, &err), KL_EBADDATA);
    cr_assert(strstr(err.msg, "trailer") || strstr(err.msg, "offset"), "%s", err.msg);
}

/* An append that is a complete batch by itself stores its object and the
 * watermark together; a watermark that cannot be written is a failed
 * compaction (logged, retried), never a failed append: the records are
 * durable, and a caller retrying would store them twice. */
Test(store, unwritable_watermark_does_not_fail_the_append)
{
    if (T.is_s3) cr_skip_test("needs a directory where the watermark goes");
    close_rw();
    T.cfg.compact_records_threshold = 1;
    open_rw();
    char path[512];
    snprintf(path, sizeof path, "%s/ks", T.dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/ks/k", T.dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/ks/k/watermark", T.dir);
    cr_assert_eq(mkdir(path, 0755), 0, "a directory in the watermark's place");
    append_ts("k", "a", 1);
    append_ts("k", "b", 2);
    char out[64];
    read_all("k", KL_FORWARDS, NULL, 0, out, sizeof out);
    cr_assert_str_eq(out, "a b ", "each record once");
    cr_assert_eq(watermark("k"), -1);
}

/* ---- corrupt objects reach readers as KL_EBADDATA ---- */

Test(store, corrupt_objects_are_bad_data)
{
    kl_error err = {0};
    kl_page p;
    char *n = kt_name(&T, "ks/k1/data_o00000000000000000001-o1_t1-t1_n0-n0_s45_p0.bin");
    kl_buf b = {0};
    Kl_codec_put(&b, 1, 1, 0, 0, "hello", 5);
    b.data[b.len - 1] = 9; /* wrong trailer */
    cr_assert_eq(kl_os_put(T.os, n, b.data, b.len, 0, NULL), KL_OK);
    free(n);
    cr_assert_eq(kl_read_first_page(R, "ks", "k1", KL_FORWARDS, NULL, 0, &p, &err), KL_EBADDATA);
    cr_assert(strstr(err.msg, "trailer"), "%s", err.msg);

    n = kt_name(&T, "ks/k2/data_o00000000000000000001-o1_t1-t1_n0-n0_s45_p0.bin");
    cr_assert_eq(kl_os_put(T.os, n, b.data, 30, 0, NULL), KL_OK); /* truncated */
    free(n);
    cr_assert_eq(kl_read_first_page(R, "ks", "k2", KL_FORWARDS, NULL, 0, &p, &err), KL_EBADDATA);

    /* A name that is not a data object is not corrupt data: it is skipped
     * (foreign_names_under_a_key_are_skipped), and this key has none. */
    n = kt_name(&T, "ks/k3/data_oWHAT.bin");
    cr_assert_eq(kl_os_put(T.os, n, "x", 1, 0, NULL), KL_OK);
    free(n);
    cr_assert_eq(kl_read_first_page(R, "ks", "k3", KL_FORWARDS, NULL, 0, &p, &err), KL_OK, "%s",
                 err.msg);
    cr_assert_eq(p.count, 0);
    kl_page_free(&p);
    kl_key_meta km;
    int ex = 1;
    cr_assert_eq(kl_read_key_metadata(R, "ks", "k3", &ex, &km, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(ex, 0);
    Kl_buf_free(&b);
}

/* Records are validated as pages are filled from object bodies
 * (objwalk.c), in both directions and from the middle of an object. */
static kl_status read_dir_pages(const char *key, kl_direction dir, uint64_t psize, uint64_t *got,
                                kl_error *err)
{
    kl_start s = {.kind = dir == KL_BACKWARDS ? KL_START_LAST : KL_START_FIRST};
    kl_page p;
    *got = 0;
    kl_status st = kl_read_first_page(R, "ks", key, dir, &s, psize, &p, err);
    while (st == KL_OK) {
        *got += p.count;
        if (!p.continuation || !p.count) break;
        char *tok = strdup(p.continuation);
        kl_page_free(&p);
        st = kl_read_next_page(R, "ks", key, tok, psize, &p, err);
        free(tok);
    }
    if (st == KL_OK) kl_page_free(&p);
    return st;
}

static void put_body(const char *key, const char *rest, const kl_buf *b)
{
    char name[256];
    snprintf(name, sizeof name, "ks/%s/data_o00000000000000000001-%s_s%zu_p0.bin", key, rest,
             b->len);
    char *n = kt_name(&T, name);
    cr_assert_eq(kl_os_put(T.os, n, b->data, b->len, 0, NULL), KL_OK);
    free(n);
}

Test(store, corrupt_records_found_in_either_direction)
{
    kl_error err = {0};
    uint64_t got;
    kl_buf b = {0};
    for (uint64_t o = 1; o <= 5; o++) Kl_codec_put(&b, o, 1, 0, 0, "abc", 3);
    /* Intact: every page size, both ways (hops from ends and hints). */
    put_body("ok", "o5_t1-t1_n0-n0", &b);
    for (uint64_t ps = 1; ps <= 6; ps++) {
        cr_assert_eq(read_dir_pages("ok", KL_FORWARDS, ps, &got, &err), KL_OK, "%s", err.msg);
        cr_assert_eq(got, 5);
        cr_assert_eq(read_dir_pages("ok", KL_BACKWARDS, ps, &got, &err), KL_OK, "%s", err.msg);
        cr_assert_eq(got, 5);
    }
    /* The last record's trailer broken: forwards, the pages before it are
     * fine and the page reaching it is bad data; backwards, at once. */
    b.data[b.len - 1] = 7;
    put_body("tr", "o5_t1-t1_n0-n0", &b);
    cr_assert_eq(read_dir_pages("tr", KL_FORWARDS, 2, &got, &err), KL_EBADDATA);
    cr_assert_eq(got, 4);
    cr_assert_eq(read_dir_pages("tr", KL_BACKWARDS, 2, &got, &err), KL_EBADDATA);
    cr_assert_eq(got, 0);
    b.data[b.len - 1] = 0;
    /* The name promises 4 records but the body holds 5. */
    put_body("more", "o4_t1-t1_n0-n0", &b);
    cr_assert_eq(read_dir_pages("more", KL_FORWARDS, 10, &got, &err), KL_EBADDATA);
    cr_assert(strstr(err.msg, "follow"), "%s", err.msg);
    cr_assert_eq(read_dir_pages("more", KL_BACKWARDS, 10, &got, &err), KL_EBADDATA);
    cr_assert(strstr(err.msg, "offset"), "%s", err.msg);
    /* A middle record's length field broken: a backward page starting
     * beyond it is fine, the one crossing it is not. */
    Kl_put_le32(b.data + 2 * 43 + 32, 9);
    put_body("len", "o5_t1-t1_n0-n0", &b);
    cr_assert_eq(read_dir_pages("len", KL_BACKWARDS, 2, &got, &err), KL_EBADDATA);
    cr_assert_eq(got, 2);
    cr_assert_eq(read_dir_pages("len", KL_FORWARDS, 1, &got, &err), KL_EBADDATA);
    cr_assert_eq(got, 2);
    Kl_buf_free(&b);
}

/* ---- paging ---- */

static void fill_ten(const char *key)
{
    /* Ten records r1..r10 over objects of 1, 2, 3 and 4 records,
     * timestamps 100, 110, ..., 190; nonces 2, 4, ..., 20. */
    int sizes[] = {1, 2, 3, 4}, k = 1;
    for (int o = 0; o < 4; o++) {
        kl_insertion in[4];
        char vals[4][16];
        for (int i = 0; i < sizes[o]; i++, k++) {
            snprintf(vals[i], sizeof vals[i], "r%d", k);
            in[i] = kt_rec(vals[i]);
            in[i].has_timestamp = 1;
            in[i].timestamp = 90 + 10 * k;
            in[i].has_nonce = 1;
            in[i].nonce = 2 * (kl_u128)k;
        }
        kl_error err = {0};
        cr_assert_eq(kl_append(W, "ks", key, in, (size_t)sizes[o], &err), KL_OK, "%s", err.msg);
    }
}

Test(store, paging_forwards_every_page_size)
{
    fill_ten("k");
    for (uint64_t ps = 1; ps <= 11; ps++) {
        char out[256];
        read_all("k", KL_FORWARDS, NULL, ps, out, sizeof out);
        cr_assert_str_eq(out, "r1 r2 r3 r4 r5 r6 r7 r8 r9 r10 ", "page size %" PRIu64, ps);
        kl_start last = {.kind = KL_START_LAST};
        read_all("k", KL_BACKWARDS, &last, ps, out, sizeof out);
        cr_assert_str_eq(out, "r10 r9 r8 r7 r6 r5 r4 r3 r2 r1 ", "page size %" PRIu64, ps);
    }
}

Test(store, start_positions)
{
    fill_ten("k");
    struct {
        kl_direction d;
        kl_start s;
        const char *want;
    } cases[] = {
        {KL_FORWARDS, {KL_START_FIRST}, "r1 r2 r3 r4 r5 r6 r7 r8 r9 r10 "},
        {KL_FORWARDS, {KL_START_LAST}, "r10 "},
        {KL_FORWARDS, {KL_START_OFFSET, .offset = 5}, "r5 r6 r7 r8 r9 r10 "},
        {KL_FORWARDS, {KL_START_OFFSET, .offset = 11}, ""},
        {KL_FORWARDS, {KL_START_OFFSET, .offset = 0}, "r1 r2 r3 r4 r5 r6 r7 r8 r9 r10 "},
        {KL_FORWARDS, {KL_START_TIMESTAMP, .timestamp = 155}, "r7 r8 r9 r10 "},
        {KL_FORWARDS, {KL_START_TIMESTAMP, .timestamp = 160}, "r7 r8 r9 r10 "},
        {KL_FORWARDS, {KL_START_TIMESTAMP, .timestamp = 0}, "r1 r2 r3 r4 r5 r6 r7 r8 r9 r10 "},
        {KL_FORWARDS, {KL_START_TIMESTAMP, .timestamp = 500}, ""},
        {KL_FORWARDS, {KL_START_NONCE, .nonce = 7}, "r4 r5 r6 r7 r8 r9 r10 "},
        {KL_FORWARDS, {KL_START_NONCE, .nonce = 8}, "r4 r5 r6 r7 r8 r9 r10 "},
        {KL_FORWARDS, {KL_START_NONCE, .nonce = 21}, ""},
        {KL_BACKWARDS, {KL_START_FIRST}, "r1 "},
        {KL_BACKWARDS, {KL_START_OFFSET, .offset = 4}, "r4 r3 r2 r1 "},
        {KL_BACKWARDS, {KL_START_OFFSET, .offset = 99}, "r10 r9 r8 r7 r6 r5 r4 r3 r2 r1 "},
        {KL_BACKWARDS, {KL_START_TIMESTAMP, .timestamp = 125}, "r3 r2 r1 "},
        {KL_BACKWARDS, {KL_START_TIMESTAMP, .timestamp = 130}, "r4 r3 r2 r1 "},
        {KL_BACKWARDS, {KL_START_TIMESTAMP, .timestamp = 99}, ""},
        {KL_BACKWARDS, {KL_START_NONCE, .nonce = 5}, "r2 r1 "},
        {KL_BACKWARDS, {KL_START_NONCE, .nonce = 6}, "r3 r2 r1 "},
        {KL_BACKWARDS, {KL_START_NONCE, .nonce = 1000}, "r10 r9 r8 r7 r6 r5 r4 r3 r2 r1 "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[256];
        read_all("k", cases[i].d, &cases[i].s, 3, out, sizeof out);
        cr_assert_str_eq(out, cases[i].want, "case %zu", i);
    }
    char out[64];
    read_all("missing", KL_FORWARDS, NULL, 3, out, sizeof out);
    cr_assert_str_eq(out, "", "a missing key reads as an empty log");
    kl_start last = {.kind = KL_START_LAST};
    read_all("missing", KL_BACKWARDS, &last, 3, out, sizeof out);
    cr_assert_str_eq(out, "");
}

Test(store, forward_continuation_tails_new_records)
{
    fill_ten("k");
    kl_page p;
    kl_error err = {0};
    kl_start s = {.kind = KL_START_OFFSET, .offset = 9};
    cr_assert_eq(kl_read_first_page(R, "ks", "k", KL_FORWARDS, &s, 100, &p, &err), KL_OK);
    cr_assert_eq(p.count, 2);
    cr_assert_not_null(p.continuation, "forwards always continues");
    char *tok = strdup(p.continuation);
    kl_page_free(&p);
    cr_assert_eq(kl_read_next_page(R, "ks", "k", tok, 100, &p, &err), KL_OK);
    cr_assert_eq(p.count, 0, "caught up");
    kl_page_free(&p);
    append_ts("k", "new", 1);
    cr_assert_eq(kl_read_next_page(R, "ks", "k", tok, 100, &p, &err), KL_OK);
    cr_assert_eq(p.count, 1);
    cr_assert_eq(p.records[0].offset, 11);
    cr_assert_eq(memcmp(p.records[0].data, "new", 3), 0);
    kl_page_free(&p);
    free(tok);
    /* Backwards ends: no continuation after offset 1. */
    s.offset = 2;
    cr_assert_eq(kl_read_first_page(R, "ks", "k", KL_BACKWARDS, &s, 5, &p, &err), KL_OK);
    cr_assert_eq(p.count, 2);
    cr_assert_null(p.continuation);
    kl_page_free(&p);
}

Test(store, records_carry_their_fields)
{
    fill_ten("k");
    kl_page p;
    kl_error err = {0};
    cr_assert_eq(kl_read_first_page(R, "ks", "k", KL_FORWARDS, NULL, 0, &p, &err), KL_OK);
    cr_assert_eq(p.count, 10);
    cr_assert_str_eq(p.keyspace, "ks");
    cr_assert_str_eq(p.key, "k");
    for (size_t i = 0; i < 10; i++) {
        cr_assert_eq(p.records[i].offset, i + 1);
        cr_assert_eq(p.records[i].timestamp, 100 + 10 * (int64_t)i);
        cr_assert(p.records[i].has_nonce && p.records[i].nonce == 2 * (kl_u128)(i + 1));
    }
    kl_page_free(&p);
}

Test(store, continuation_tokens_are_checked)
{
    fill_ten("k");
    fill_ten("other");
    kl_page p;
    kl_error err = {0};
    cr_assert_eq(kl_read_first_page(R, "ks", "k", KL_FORWARDS, NULL, 2, &p, &err), KL_OK);
    char *tok = strdup(p.continuation);
    kl_page_free(&p);
    cr_assert_eq(kl_read_next_page(R, "ks", "other", tok, 2, &p, &err), KL_EBADTOKEN,
                 "a token is bound to its key");
    const char *garbage[] = {"",
                             "x",
                             "kl1.f.3",
                             "kl1.f.3.0.zzzzzzzz",
                             "kl1.q.3.0.00000000",
                             "kl1.f.-3.0.00000000",
                             "kl1.f.3.0.0000000000000",
                             "kl1.f. 3.0.00000000",
                             "kl1.f.3.00000000",
                             "kl1.f.03.0.00000000"};
    for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++) {
        cr_assert_eq(kl_read_next_page(R, "ks", "k", garbage[i], 2, &p, &err), KL_EBADTOKEN,
                     "accepted '%s'", garbage[i]);
        cr_assert(strstr(err.msg, "token"), "%s", err.msg);
    }
    /* An altered offset fails the check. */
    char *edited = strdup(tok);
    edited[6] = edited[6] == '3' ? '4' : '3';
    cr_assert_eq(kl_read_next_page(R, "ks", "k", edited, 2, &p, &err), KL_EBADTOKEN);
    cr_assert_eq(kl_read_next_page(R, "ks", "k", NULL, 2, &p, &err), KL_EBADTOKEN);
    /* Deterministic and stateless: a brand-new reader continues it. */
    kl_reader *r2;
    cr_assert_eq(kl_store_reader_new(T.os, &T.cfg, &r2, &err), KL_OK);
    cr_assert_eq(kl_read_next_page(r2, "ks", "k", tok, 2, &p, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(p.count, 2);
    cr_assert_eq(p.records[0].offset, 3);
    kl_page_free(&p);
    kl_reader_destroy(r2);
    free(edited);
    free(tok);
}

/* ---- key cache ---- */

Test(store, cache_eviction_and_reload)
{
    close_rw();
    T.cfg.max_cached_keys = 1;
    open_rw();
    for (int round = 0; round < 5; round++) {
        append_nonce("a", "a", (kl_u128)round * 2);
        append_nonce("b", "b", (kl_u128)round * 2 + 1); /* evicts a */
        append_nonce("a", "dup", (kl_u128)round * 2);   /* reloaded: still a duplicate */
    }
    char out[256];
    read_all("a", KL_FORWARDS, NULL, 0, out, sizeof out);
    cr_assert_str_eq(out, "a a a a a ");
    read_all("b", KL_FORWARDS, NULL, 0, out, sizeof out);
    cr_assert_str_eq(out, "b b b b b ");
    kl_page p;
    kl_error err = {0};
    cr_assert_eq(kl_read_first_page(R, "ks", "a", KL_FORWARDS, NULL, 0, &p, &err), KL_OK);
    for (size_t i = 0; i < p.count; i++)
        cr_assert_eq(p.records[i].offset, i + 1, "contiguous offsets");
    kl_page_free(&p);
}

/* ---- listing and object access ---- */

Test(store, list_keys_and_objects)
{
    fill_ten("k1");
    append_ts("k2", "x", 1);
    char **names;
    size_t n;
    kl_error err = {0};
    cr_assert_eq(kl_list_keys(T.os, &T.cfg, "ks", &names, &n, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(names[0], "k1");
    cr_assert_str_eq(names[1], "k2");
    kl_strv_free(names, n);
    int yes = -1;
    cr_assert_eq(kl_keyspace_has_objects(T.os, &T.cfg, "ks", &yes, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(yes, 1);
    cr_assert_eq(kl_keyspace_has_objects(T.os, &T.cfg, "k", &yes, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(yes, 0, "a prefix of a keyspace's name is not that keyspace");
    cr_assert_eq(kl_keyspace_has_objects(T.os, &T.cfg, "bad/ks", &yes, &err), KL_EINVAL);
    kl_object_meta *v;
    cr_assert_eq(kl_list_objects(T.os, &T.cfg, "ks", "k1", 0, 0, &v, &n, &err), KL_OK);
    cr_assert_eq(n, 4);
    cr_assert_eq(v[3].first_offset, 7);
    cr_assert_eq(v[3].prior, 4);
    free(v);
    cr_assert_eq(kl_list_objects(T.os, &T.cfg, "ks", "k1", 3, 1, &v, &n, &err), KL_OK);
    cr_assert_eq(n, 1, "incremental listing after offset 3");
    cr_assert_eq(v[0].first_offset, 4);
    free(v);
}

/* ---- O(log n) searches ---- */

Test(store, seeks_cost_logarithmic_lists, .timeout = 600)
{
    close_rw();
    T.cfg.compact_records_threshold = UINT64_MAX;
    T.cfg.compact_size_threshold = UINT64_MAX;
    T.cfg.compact_objects_threshold = UINT64_MAX;
    open_rw();
    const int N = 2100; /* more than two LIST pages */
    for (int i = 1; i <= N; i++) append_ts("k", "v", i * 10);
    kl_error err = {0};
    uint64_t targets[] = {1, 2, 999, 1000, 1001, 1500, 2099, 2100};
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        unsigned long before = Kl_index_list_count();
        kl_page p;
        kl_start s = {.kind = KL_START_OFFSET, .offset = targets[i]};
        cr_assert_eq(kl_read_first_page(R, "ks", "k", KL_FORWARDS, &s, 1, &p, &err), KL_OK);
        unsigned long lists = Kl_index_list_count() - before;
        cr_assert_eq(p.count, 1);
        cr_assert_eq(p.records[0].offset, targets[i]);
        kl_page_free(&p);
        cr_assert_leq(lists, 30, "offset %" PRIu64 " took %lu LISTs", targets[i], lists);

        before = Kl_index_list_count();
        s = (kl_start){.kind = KL_START_TIMESTAMP, .timestamp = (int64_t)targets[i] * 10};
        cr_assert_eq(kl_read_first_page(R, "ks", "k", KL_FORWARDS, &s, 1, &p, &err), KL_OK);
        lists = Kl_index_list_count() - before;
        cr_assert_eq(p.records[0].offset, targets[i]);
        kl_page_free(&p);
        cr_assert_leq(lists, 40, "timestamp search took %lu LISTs", lists);
    }
    /* Paging backwards follows prior pointers: about one LIST per object. */
    unsigned long before = Kl_index_list_count();
    kl_page p;
    kl_start last = {.kind = KL_START_LAST};
    cr_assert_eq(kl_read_first_page(R, "ks", "k", KL_BACKWARDS, &last, 100, &p, &err), KL_OK);
    cr_assert_eq(p.count, 100);
    cr_assert_eq(p.records[99].offset, N - 99);
    kl_page_free(&p);
    cr_assert_leq(Kl_index_list_count() - before, 130);
}

/* ---- a second writer on the same key ---- */

Test(store, second_writer_on_a_key_loses_nothing)
{
    /* Two writers (two processes, two mounts) appending to one key by
     * mistake: each must notice the other's objects instead of writing
     * over the same offsets. */
    kl_writer *w2;
    kl_error err = {0};
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &w2, &err), KL_OK);
    char want[512] = "";
    for (int i = 0; i < 12; i++) {
        char v[16];
        snprintf(v, sizeof v, "w%d-%d", i % 2 + 1, i);
        kl_insertion in = kt_rec(v);
        cr_assert_eq(kl_append(i % 2 ? w2 : W, "ks", "k", &in, 1, &err), KL_OK, "%s", err.msg);
        strcat(want, v);
        strcat(want, " ");
    }
    kl_writer_destroy(w2);
    char out[512];
    read_all("k", KL_FORWARDS, NULL, 5, out, sizeof out);
    cr_assert_str_eq(out, want);
    kl_page p;
    cr_assert_eq(kl_read_first_page(R, "ks", "k", KL_FORWARDS, NULL, 100, &p, &err), KL_OK);
    for (size_t i = 0; i < p.count; i++) cr_assert_eq(p.records[i].offset, i + 1);
    kl_page_free(&p);
}

Test(store, next_page_inside_an_object_costs_one_list)
{
    /* Pages that end inside an object: the token's hint lets the next
     * page find that object with the same LIST that fills its look-ahead. */
    close_rw();
    T.cfg.compact_records_threshold = UINT64_MAX;
    T.cfg.compact_size_threshold = UINT64_MAX;
    T.cfg.compact_objects_threshold = UINT64_MAX;
    open_rw();
    for (int o = 0; o < 30; o++) {
        kl_insertion in[10];
        for (int i = 0; i < 10; i++) in[i] = kt_rec("v");
        kl_error err = {0};
        cr_assert_eq(kl_append(W, "ks", "k", in, 10, &err), KL_OK, "%s", err.msg);
    }
    for (int d = 0; d < 2; d++) {
        kl_direction dir = d ? KL_BACKWARDS : KL_FORWARDS;
        kl_start s = {.kind = d ? KL_START_LAST : KL_START_FIRST};
        kl_page p;
        kl_error err = {0};
        cr_assert_eq(kl_read_first_page(R, "ks", "k", dir, &s, 3, &p, &err), KL_OK);
        uint64_t seen = p.count;
        while (p.continuation && p.count) {
            char *tok = strdup(p.continuation);
            kl_page_free(&p);
            unsigned long before = Kl_index_list_count();
            cr_assert_eq(kl_read_next_page(R, "ks", "k", tok, 3, &p, &err), KL_OK, "%s", err.msg);
            free(tok);
            /* Backwards, crossing into the previous object adds one LIST
             * for the window behind it (which then serves 64 objects). */
            if (p.count)
                cr_assert_leq(Kl_index_list_count() - before, d ? 2 : 1,
                              "dir %d: a page cost %lu LISTs", d, Kl_index_list_count() - before);
            seen += p.count;
        }
        kl_page_free(&p);
        cr_assert_eq(seen, 300);
    }
}

/* A writer killed after complete batches but before it stored the
 * watermark: the next writer takes the newest complete object as the
 * watermark, so it never merges complete batches again. */
Test(store, a_lagging_watermark_never_remerges_complete_batches)
{
    close_rw();
    T.cfg.compact_records_threshold = 2;
    T.cfg.compact_size_threshold = UINT64_MAX;
    T.cfg.compact_objects_threshold = 3;
    kl_error err = {0};
    kl_writer *dead;
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &dead, &err), KL_OK);
    kl_insertion two[2] = {kt_rec("a"), kt_rec("b")};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(kl_append(dead, "ks", "k", two, 2, &err), KL_OK, "%s", err.msg);
    settle(dead);
    /* "killed": not destroyed until the end, so nothing more of it reaches
     * the store meanwhile */
    cr_assert_lt(watermark("k"), 9, "the test needs a lagging watermark");
    open_rw();
    append_ts("k", "c", 1);
    append_ts("k", "d", 2);
    append_ts("k", "e", 3);
    cr_assert_eq(count_raw("ks/k/data_"), 7, "5 complete batches untouched, then c+d merged, e");
    char out[256];
    read_all("k", KL_FORWARDS, NULL, 4, out, sizeof out);
    cr_assert_str_eq(out, "a b a b a b a b a b c d e ");
    kl_writer_destroy(dead);
}

/* A key of many small objects and no watermark (written by another tool,
 * or imported): appends must not wait for its compaction, and each merge
 * step reads at most compact_objects_threshold objects, while the key
 * still converges to complete batches with every record once.  The store
 * below counts the GETs before each PUT (a merge's parts, then the merged
 * object). */
#include "common/objstore_wrap.h"
static unsigned long gets_run, gets_most, appender_gets;
static __thread int is_appender;
static kl_status run_get(kl_objstore *os, const char *n, uint64_t off, uint64_t len, uint8_t **d,
                         size_t *ol, kl_error *e)
{
    if (is_appender)
        appender_gets++;
    else
        __atomic_add_fetch(&gets_run, 1, __ATOMIC_SEQ_CST);
    return wrap_get(os, n, off, len, d, ol, e);
}
static kl_status run_put(kl_objstore *os, const char *n, const void *d, size_t l, int f,
                         kl_error *e)
{
    unsigned long run = __atomic_exchange_n(&gets_run, 0, __ATOMIC_SEQ_CST);
    if (run > gets_most) gets_most = run;
    return wrap_put(os, n, d, l, f, e);
}

Test(store, compaction_is_a_bounded_step_off_the_append_path)
{
    close_rw();
    T.cfg.compact_records_threshold = UINT64_MAX;
    T.cfg.compact_size_threshold = UINT64_MAX;
    T.cfg.compact_objects_threshold = UINT64_MAX;
    open_rw();
    enum { HISTORY = 600 };
    char expect[HISTORY * 8 + 4096] = "", v[16];
    for (int i = 0; i < HISTORY; i++) {
        snprintf(v, sizeof v, "h%d", i);
        append_ts("k", v, i);
        strcat(expect, v);
        strcat(expect, " ");
    }
    cr_assert_eq(count_raw("ks/k/data_"), HISTORY);
    close_rw();
    T.cfg.compact_records_threshold = 100;
    T.cfg.compact_objects_threshold = 10;
    kl_objstore *wrapped = kl_wrap_new(T.os);
    kl_objstore_ops ops = *wrapped->ops;
    ops.get = run_get;
    ops.put = run_put;
    wrapped->ops = &ops;
    kl_error err = {0};
    cr_assert_eq(kl_store_writer_new(wrapped, &T.cfg, &W, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_store_reader_new(T.os, &T.cfg, &R, &err), KL_OK, "%s", err.msg);
    /* Appends while the compactor works through the history: none of
     * them reads an object (the first loads the key: its watermark). */
    is_appender = 1;
    for (int i = 0; i < 20; i++) {
        snprintf(v, sizeof v, "a%d", i);
        kl_insertion in = kt_rec(v);
        in.has_timestamp = 1;
        in.timestamp = HISTORY + i;
        cr_assert_eq(kl_append(W, "ks", "k", &in, 1, &err), KL_OK, "%s", err.msg);
        strcat(expect, v);
        strcat(expect, " ");
    }
    is_appender = 0;
    cr_assert_leq(appender_gets, 1, "appends read %lu objects", appender_gets);
    settle(W);
    cr_assert_leq(count_raw("ks/k/data_"), 8, "compaction did not converge: %zu objects",
                  count_raw("ks/k/data_"));
    cr_assert_leq(gets_most, 10, "a merge step read %lu objects", gets_most);
    char *out = malloc(sizeof expect);
    read_all("k", KL_FORWARDS, NULL, 0, out, sizeof expect);
    cr_assert_str_eq(out, expect);
    free(out);
    kl_writer_destroy(W);
    W = NULL;
    kl_os_destroy(wrapped);
}

/* ---- the tail check and the claim hold (FORMAT.md "Concurrent writers") ---- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};
    nanosleep(&ts, NULL);
}

/* Requests of each kind a call made, as "claim=1 publish=1 list=0 ...". */
static void count_ops(const kl_os_stats *a, const kl_os_stats *b, char *out, size_t cap)
{
    static const kl_os_op ops[] = {KL_OP_CLAIM, KL_OP_PUBLISH, KL_OP_LIST,   KL_OP_GET,
                                   KL_OP_PUT,   KL_OP_DEL,     KL_OP_UNCLAIM};
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s=%lu", i ? " " : "", kl_os_op_name(ops[i]),
                              (unsigned long)(b->calls[ops[i]] - a->calls[ops[i]]));
}

static void append_counted(const char *v, char *ops, size_t cap)
{
    kl_os_stats a, b;
    kl_os_stats_read(T.os, &a);
    append_ts("k", v, 1);
    kl_os_stats_read(T.os, &b);
    count_ops(&a, &b, ops, cap);
}

/* A writer appending steadily makes the claim and the publish per object,
 * nothing else: the tail check is skipped while its view is younger than
 * a sixth of the claim hold.  Once older, the next append checks (one
 * LIST) -- a stopped writer's view can be stale. */
Test(store, steady_appends_skip_the_tail_check_until_the_view_is_old)
{
    close_rw();
    T.cfg.claim_hold_ms = 12000; /* the check is skipped within 2 s (ASan, loaded CI) */
    open_rw();
    char ops[256], v[16];
    append_ts("k", "first", 1); /* loads the key */
    for (int i = 0; i < 20; i++) {
        snprintf(v, sizeof v, "r%d", i);
        append_counted(v, ops, sizeof ops);
        cr_assert_str_eq(ops, "claim=1 publish=1 list=0 get=0 put=0 del=0 unclaim=0", "append %d",
                         i);
    }
    sleep_ms(2100);
    append_counted("late", ops, sizeof ops);
    cr_assert_str_eq(ops, "claim=1 publish=1 list=1 get=0 put=0 del=0 unclaim=0");
    append_counted("again", ops, sizeof ops);
    cr_assert_str_eq(ops, "claim=1 publish=1 list=0 get=0 put=0 del=0 unclaim=0");
    /* skip_tail_check = false: every object is checked */
    close_rw();
    T.cfg.skip_tail_check = 0;
    open_rw();
    append_ts("k", "first", 1);
    append_counted("checked", ops, sizeof ops);
    cr_assert_str_eq(ops, "claim=1 publish=1 list=1 get=0 put=0 del=0 unclaim=0");
}

/* A claim is deleted only once a complete batch lies after its slot and
 * the hold has passed since the slot was seen published: by the writer
 * (when its watermark moves, or as it goes away), or by a writer loading
 * the key, judging by the store's times of the later claims. */
Test(store, claims_are_deleted_after_the_hold_not_before)
{
    enum { HOLD = 3000 }; /* S3 times may have whole seconds; CI may be slow */
    close_rw();
    T.cfg.claim_hold_ms = HOLD;
    T.cfg.compact_records_threshold = 5;
    open_rw();
    char v[16];
    for (int i = 1; i <= 10; i++) { /* two complete batches: watermark at 6 */
        snprintf(v, sizeof v, "a%d", i);
        append_ts("k", v, i);
    }
    cr_assert_eq(count_raw("ks/k/claim_o"), 10, "no claim is deleted within the hold");
    /* A second writer loading the key now: the objects from the watermark
     * on are younger than the hold by the store's clock, so the claims
     * below it stay. */
    kl_writer *other;
    kl_error err = {0};
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &other, &err), KL_OK, "%s", err.msg);
    kl_insertion in = kt_rec("b1");
    cr_assert_eq(kl_append(other, "ks", "k", &in, 1, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(count_raw("ks/k/claim_o"), 11);
    kl_writer_destroy(other);
    cr_assert_eq(count_raw("ks/k/claim_o"), 11,
                 "a writer going away keeps claims held too briefly");
    sleep_ms(HOLD + 2100); /* the hold, the second for S3 times, and a second more */
    /* W's next append makes an object as new as the store's now: the
     * objects from the watermark on are older than that by the hold, so a
     * loading writer deletes the claims below it (slots 1-5; the second
     * batch's slots are not below the watermark). */
    append_ts("k", "a12", 12);
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &other, &err), KL_OK, "%s", err.msg);
    in = kt_rec("b2");
    cr_assert_eq(kl_append(other, "ks", "k", &in, 1, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(count_raw("ks/k/claim_o"), 8, "slots 1-5 unclaimed, 6-13 kept");
    cr_assert_eq(count_raw("ks/k/claim_o0000000000000000000"), 4, "slots 6-9 kept");
    kl_writer_destroy(other);
    char out[256];
    read_all("k", KL_FORWARDS, NULL, 0, out, sizeof out);
    cr_assert_str_eq(out, "a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 b1 a12 b2 ");
}

/* Names under a key's data_ prefix that are not data objects (another
 * tool's leftovers) are skipped with one warning for the key: reads,
 * meta, appends and compaction see only the key's own objects. */
static int foreign_warnings;
static char foreign_msg[512];
static void count_warning(int level, const char *msg, void *ctx)
{
    (void)ctx;
    if (level == KL_LOG_WARNING && strstr(msg, "not data objects")) {
        foreign_warnings++;
        snprintf(foreign_msg, sizeof foreign_msg, "%s", msg);
    }
}

/* Foreign names sorting after every data object ("data_old...") cut a
 * LIST page off right after the key's last object.  A read must still
 * find the end (it once looped, re-using such a page) and read exactly. */
Test(store, foreign_names_after_the_data_do_not_hide_the_end, .timeout = 120)
{
    enum { OBJECTS = 260, FOREIGN = 800 };
    kl_buf b = {0};
    char name[256];
    uint64_t prior = 0;
    for (uint64_t o = 1; o <= OBJECTS; o++) {
        b.len = 0;
        cr_assert_eq(Kl_codec_put(&b, o, (int64_t)o * 10, 1, o, "v", 1), 0);
        kl_object_meta m = {.first_offset = o,
                            .last_offset = o,
                            .min_ts = (int64_t)o * 10,
                            .max_ts = (int64_t)o * 10,
                            .first_nonce = o,
                            .next_nonce = o + 1,
                            .size = b.len,
                            .prior = prior};
        int len = snprintf(name, sizeof name, "ks/fk/");
        cr_assert_geq(kl_object_name_format(&m, name + len, sizeof name - (size_t)len), 0);
        char *n = kt_name(&T, name);
        cr_assert_eq(kl_os_put(T.os, n, b.data, b.len, 0, NULL), KL_OK);
        free(n);
        prior = o;
    }
    for (int i = 0; i < FOREIGN; i++) {
        snprintf(name, sizeof name, "ks/fk/data_old_%04d.txt", i);
        char *n = kt_name(&T, name);
        cr_assert_eq(kl_os_put(T.os, n, "x", 1, 0, NULL), KL_OK);
        free(n);
    }
    Kl_buf_free(&b);
    kl_error err = {0};
    kl_page p;
    kl_start last = {.kind = KL_START_LAST};
    cr_assert_eq(kl_read_first_page(R, "ks", "fk", KL_BACKWARDS, &last, 3, &p, &err), KL_OK, "%s",
                 err.msg);
    cr_assert_eq(p.count, 3);
    cr_assert_eq(p.records[0].offset, OBJECTS);
    kl_page_free(&p);
    kl_start ts = {.kind = KL_START_TIMESTAMP, .timestamp = 1000};
    cr_assert_eq(kl_read_first_page(R, "ks", "fk", KL_FORWARDS, &ts, 2, &p, &err), KL_OK, "%s",
                 err.msg);
    cr_assert_eq(p.count, 2);
    cr_assert_eq(p.records[0].offset, 100);
    kl_page_free(&p);
    kl_key_meta km;
    int exists = 0;
    cr_assert_eq(kl_read_key_metadata(R, "ks", "fk", &exists, &km, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(km.next_offset, OBJECTS + 1);
}

Test(store, foreign_names_under_a_key_are_skipped)
{
    close_rw();
    T.cfg.compact_records_threshold = 3;
    T.cfg.compact_objects_threshold = 100;
    open_rw();
    append_ts("k", "a", 1);
    append_ts("k", "b", 2);
    static const char *junk[] = {"ks/k/data_ojunk", "ks/k/data_o00000000000000000002.partial",
                                 "ks/k/data_o00000000000000000001-o9_t1-t1_n0-n0_s9_p5.bin"};
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
        char *n = kt_name(&T, junk[i]);
        cr_assert_eq(kl_os_put(T.os, n, "junk", 4, 0, NULL), KL_OK);
        free(n);
    }
    foreign_warnings = 0;
    kl_set_log_handler(count_warning, NULL);
    close_rw(); /* a fresh writer and reader: nothing cached */
    open_rw();
    char out[256];
    read_all("k", KL_FORWARDS, NULL, 0, out, sizeof out);
    cr_assert_str_eq(out, "a b ");
    kl_start last = {.kind = KL_START_LAST};
    read_all("k", KL_BACKWARDS, &last, 1, out, sizeof out);
    cr_assert_str_eq(out, "b a ");
    append_ts("k", "c", 3); /* completes a batch: a merge of a, b, c */
    append_ts("k", "d", 4);
    read_all("k", KL_FORWARDS, NULL, 0, out, sizeof out);
    cr_assert_str_eq(out, "a b c d ");
    kl_key_meta meta;
    int exists = 0;
    kl_error err = {0};
    cr_assert_eq(kl_read_key_metadata(R, "ks", "k", &exists, &meta, &err), KL_OK, "%s", err.msg);
    cr_assert(exists);
    cr_assert_eq(meta.next_offset, 5);
    kl_set_log_handler(NULL, NULL);
    cr_assert_eq(foreign_warnings, 1, "one warning for the key, got %d", foreign_warnings);
    cr_assert(strstr(foreign_msg, "ks/k/"), "%s", foreign_msg);
    /* the foreign names are left alone */
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
        char *n = kt_name(&T, junk[i]);
        cr_assert_eq(kl_os_head(T.os, n, NULL, NULL), KL_OK, "%s was touched", junk[i]);
        free(n);
    }
}
