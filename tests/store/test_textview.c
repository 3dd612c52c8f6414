/* test_textview.c -- text views (klstore.h "Text views") without FUSE, on a
 * directory and on S3: whole texts compared byte for byte, reads at every
 * position, seeks, a growing end, read-your-writes through a batching
 * writer (placed without a LIST), compaction under a read, many views
 * loaded at once, corrupt objects, and the cache counters. */
#include <inttypes.h>

#include "buf.h"
#include "codec.h"
#include "common/objstore_wrap.h"
#include "test_env.h"

static kt_store T;
static kl_writer *W;
static kl_reader *R;

static void setup(void)
{
    kt_open(&T);
    kl_error err = {0};
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &W, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_store_reader_new(T.os, &T.cfg, &R, &err), KL_OK, "%s", err.msg);
}
static void teardown(void)
{
    kl_writer_destroy(W);
    kl_reader_destroy(R);
    kt_close(&T);
}
TestSuite(textview, .init = setup, .fini = teardown, .timeout = 300);

/* Appends lines (one object) with timestamps ts, ts+1, ... and nonces. */
static void put_lines(kl_writer *w, const char *key, const char *const *lines, size_t n, int64_t ts,
                      uint64_t nonce)
{
    kl_insertion ins[16];
    cr_assert_leq(n, 16);
    for (size_t i = 0; i < n; i++) {
        ins[i] = kt_rec(lines[i]);
        ins[i].has_timestamp = 1;
        ins[i].timestamp = ts + (int64_t)i;
        ins[i].has_nonce = nonce != 0;
        ins[i].nonce = nonce + i;
    }
    kl_error err = {0};
    cr_assert_eq(kl_append(w, "ks", key, ins, n, &err), KL_OK, "%s", err.msg);
    /* Compaction runs on the writer's thread after the append: wait for
     * it, so that each test knows the objects the key holds. */
    cr_assert_eq(kl_duty_cycle(w, &err), KL_OK);
}

static kl_textview *open_view(const char *key)
{
    kl_textview *tv = NULL;
    kl_error err = {0};
    cr_assert_eq(kl_textview_open(R, "ks", key, &tv, &err), KL_OK, "%s", err.msg);
    return tv;
}

/* The whole text of a view, read in chunks of `chunk` bytes. */
static char *read_text(kl_textview *tv, size_t chunk, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap + 1);
    for (;;) {
        if (n + chunk > cap) out = realloc(out, (cap = 2 * (n + chunk)) + 1);
        size_t got = 0;
        kl_error err = {0};
        cr_assert_eq(kl_textview_read(tv, n, out + n, chunk, 0, &got, &err), KL_OK, "%s", err.msg);
        if (got == 0) break;
        n += got;
    }
    out[n] = 0;
    *len = n;
    return out;
}

static uint64_t lists(void)
{
    kl_os_stats s;
    kl_os_stats_read(T.os, &s);
    return s.calls[KL_OP_LIST];
}

/* Three objects of lines of different lengths, including an empty one. */
static const char *const A[] = {"alpha", "", "gamma delta"};
static const char *const B[] = {"b1", "b22", "b333", "b4444"};
static const char *const C[] = {"last line of the log"};
static const char WANT[] = "alpha\n\ngamma delta\nb1\nb22\nb333\nb4444\nlast line of the log\n";

static void fill(const char *key)
{
    put_lines(W, key, A, 3, 1000, 10);
    put_lines(W, key, B, 4, 2000, 20);
    put_lines(W, key, C, 1, 3000, 30);
}

Test(textview, the_text_is_every_record_and_a_newline_read_in_any_chunks)
{
    fill("k");
    kl_textview *tv = open_view("k");
    for (size_t chunk = 1; chunk <= sizeof WANT; chunk++) {
        size_t len;
        char *got = read_text(tv, chunk, &len);
        cr_assert_eq(len, strlen(WANT), "chunk %zu", chunk);
        cr_assert_str_eq(got, WANT, "chunk %zu", chunk);
        free(got);
    }
    kl_textview_info info;
    kl_textview_stat(tv, &info);
    cr_assert_eq(info.size, strlen(WANT));
    cr_assert_eq(info.objects, 3);
    cr_assert_eq(info.pending, 0);
    cr_assert_eq(info.next_offset, 9);
    cr_assert_eq(info.first_timestamp, 1000);
    cr_assert_eq(info.last_timestamp, 3000);
    cr_assert(info.loaded);
    kl_textview_close(tv);
}

Test(textview, reads_at_every_position_and_past_the_end)
{
    fill("k");
    kl_textview *tv = open_view("k");
    size_t n = strlen(WANT);
    /* Backwards, so that no read continues where the previous stopped. */
    for (size_t pos = n + 3; pos-- > 0;) {
        char buf[64] = {0};
        size_t got = 0;
        kl_error err = {0};
        cr_assert_eq(kl_textview_read(tv, pos, buf, 7, 0, &got, &err), KL_OK, "%s", err.msg);
        size_t want = pos >= n ? 0 : (n - pos < 7 ? n - pos : 7);
        cr_assert_eq(got, want, "at %zu", pos);
        if (want) cr_assert_eq(memcmp(buf, WANT + pos, want), 0, "at %zu: '%.*s'", pos, 7, buf);
    }
    kl_textview_close(tv);
}

Test(textview, seeks_to_offsets_timestamps_and_nonces)
{
    fill("k");
    kl_textview *tv = open_view("k");
    struct {
        kl_start s;
        const char *from;
    } cases[] = {
        {{.kind = KL_START_FIRST}, WANT},
        {{.kind = KL_START_OFFSET, .offset = 2}, "\ngamma"},
        {{.kind = KL_START_OFFSET, .offset = 5}, "b22\n"},
        {{.kind = KL_START_TIMESTAMP, .timestamp = 2002}, "b333\n"},
        {{.kind = KL_START_TIMESTAMP, .timestamp = 2500}, "last line"},
        {{.kind = KL_START_NONCE, .nonce = 21}, "b22\n"},
        {{.kind = KL_START_OFFSET, .offset = 9}, ""},
        {{.kind = KL_START_TIMESTAMP, .timestamp = 9999}, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint64_t pos = 7777;
        kl_error err = {0};
        cr_assert_eq(kl_textview_seek(tv, &cases[i].s, &pos, &err), KL_OK, "%zu: %s", i, err.msg);
        const char *at = strstr(WANT, cases[i].from);
        if (!*cases[i].from) at = WANT + strlen(WANT);
        cr_assert_eq(pos, (uint64_t)(at - WANT), "%zu: %" PRIu64, i, pos);
    }
    kl_start last = {.kind = KL_START_LAST};
    uint64_t pos;
    kl_error err = {0};
    cr_assert_eq(kl_textview_seek(tv, &last, &pos, &err), KL_EINVAL);
    kl_textview_close(tv);
}

Test(textview, the_end_grows_with_other_writers_appends)
{
    kl_textview *tv = open_view("k");
    size_t len;
    char *t = read_text(tv, 100, &len);
    cr_assert_eq(len, 0, "a key without data reads empty");
    free(t);
    fill("k");
    /* Within max_age the old listing stands; with 0 the read lists. */
    char buf[128];
    size_t got = 1;
    kl_error err = {0};
    cr_assert_eq(kl_textview_read(tv, 0, buf, sizeof buf, 60000, &got, &err), KL_OK);
    cr_assert_eq(got, 0, "a fresh listing is not repeated");
    cr_assert_eq(kl_textview_read(tv, 0, buf, sizeof buf, 0, &got, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(got, strlen(WANT));
    cr_assert_eq(memcmp(buf, WANT, got), 0);
    const char *more[] = {"tail -f sees this"};
    put_lines(W, "k", more, 1, 4000, 0);
    cr_assert_eq(kl_textview_read(tv, got, buf, sizeof buf, 0, &got, &err), KL_OK);
    cr_assert_eq(got, strlen("tail -f sees this\n"));
    cr_assert_eq(memcmp(buf, "tail -f sees this\n", got), 0);
    kl_textview_close(tv);
}

/* The observer routes published objects to the view, as klstorefs does. */
static void on_published(const char *ks, const char *key, kl_publish_event ev,
                         const kl_object_meta *m, void *ctx)
{
    (void)ks;
    (void)key;
    kl_textview_report(ctx, ev, m);
}

Test(textview, appended_lines_read_at_once_and_take_their_place_without_a_list)
{
    kl_error err = {0};
    kl_writer *sw, *bw;
    kl_textview *tv = open_view("k");
    kl_batch_config bc;
    kl_batch_config_init(&bc);
    bc.batch_flush_interval_millis = 3600000; /* only explicit flushes */
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &sw, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_store_writer_observe(sw, on_published, tv, &err), KL_OK);
    cr_assert_eq(kl_batch_writer_new(sw, &bc, &bw, &err), KL_OK, "%s", err.msg);

    put_lines(W, "k", A, 3, 1000, 0); /* another writer's object first */
    cr_assert_eq(kl_textview_refresh(tv, 0, &err), KL_OK, "%s", err.msg);
    kl_insertion ins[2] = {kt_rec("mine 1"), kt_rec("mine 2")};
    cr_assert_eq(kl_textview_append(tv, bw, ins, 2, &err), KL_OK, "%s", err.msg);
    size_t len;
    char *t = read_text(tv, 5, &len);
    cr_assert_str_eq(t, "alpha\n\ngamma delta\nmine 1\nmine 2\n", "read-your-writes");
    free(t);
    kl_textview_info info;
    kl_textview_stat(tv, &info);
    cr_assert_eq(info.pending, strlen("mine 1\nmine 2\n"));

    uint64_t before = lists();
    cr_assert_eq(kl_flush_key(bw, "ks", "k", &err), KL_OK, "%s", err.msg);
    uint64_t after_flush = lists();
    kl_textview_stat(tv, &info);
    cr_assert_eq(info.pending, 0, "the published object took the lines' place");
    cr_assert_eq(info.objects, 2);
    char buf[256];
    size_t got;
    cr_assert_eq(kl_textview_read(tv, 0, buf, sizeof buf, 60000, &got, &err), KL_OK);
    cr_assert_eq(got, info.size);
    cr_assert_eq(memcmp(buf, "alpha\n\ngamma delta\nmine 1\nmine 2\n", got), 0);
    cr_assert_eq(lists(), after_flush, "placing our own object needs no LIST");
    (void)before;

    /* Another writer's object lands between two of ours: our lines stay at
     * the end until a listing shows where they went, never twice. */
    cr_assert_eq(kl_textview_append(tv, bw, ins, 1, &err), KL_OK);
    put_lines(W, "k", C, 1, 5000, 0);
    cr_assert_eq(kl_flush_key(bw, "ks", "k", &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_textview_refresh(tv, 0, &err), KL_OK, "%s", err.msg);
    t = read_text(tv, 64, &len);
    cr_assert_str_eq(t, "alpha\n\ngamma delta\nmine 1\nmine 2\nlast line of the log\nmine 1\n");
    free(t);
    kl_textview_stat(tv, &info);
    cr_assert_eq(info.pending, 0);
    kl_writer_destroy(bw);
    kl_writer_destroy(sw);
    kl_textview_close(tv);
}

/* The pending tail under a steady stream: objects are published (and
 * leave the tail's front) while lines of every length up to 3000 bytes keep
 * joining its end, so the tail slides down and grows many times.  After
 * every burst the whole text is exactly the lines appended so far. */
Test(textview, the_pending_tail_stays_exact_while_objects_leave_its_front)
{
    kl_error err = {0};
    kl_writer *sw, *bw;
    kl_textview *tv = open_view("k");
    kl_batch_config bc;
    kl_batch_config_init(&bc);
    bc.batch_flush_interval_millis = 3600000;
    bc.batch_flush_size_threshold = 20000; /* objects publish as we go */
    bc.batch_check_interval_millis = 1;
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &sw, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_store_writer_observe(sw, on_published, tv, &err), KL_OK);
    cr_assert_eq(kl_batch_writer_new(sw, &bc, &bw, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_textview_refresh(tv, 0, &err), KL_OK, "%s", err.msg);

    kl_buf want = {0};
    static char line[3001];
    uint64_t x = 88172645463325252ULL; /* xorshift: lengths of every size */
    size_t published_mid_stream = 0;
    for (int burst = 0; burst < 40; burst++) {
        for (int i = 0; i < 9; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t len = (size_t)(x % 3001);
            for (size_t j = 0; j < len; j++) line[j] = (char)('a' + (burst + i + (int)j) % 26);
            kl_insertion ins = {.data = line, .len = len};
            cr_assert_eq(kl_textview_append(tv, bw, &ins, 1, &err), KL_OK, "%s", err.msg);
            cr_assert_eq(Kl_buf_append(&want, line, len), 0);
            cr_assert_eq(Kl_buf_append(&want, "\n", 1), 0);
        }
        if (burst % 2) usleep(2000); /* let the writer thread publish */
        size_t len;
        char *t = read_text(tv, 4096, &len);
        cr_assert_eq(len, want.len, "burst %d: %zu bytes, want %zu", burst, len, want.len);
        cr_assert_eq(memcmp(t, want.data, len), 0, "burst %d: the text differs", burst);
        free(t);
        kl_textview_info info;
        kl_textview_stat(tv, &info);
        if (info.pending > 0 && info.pending < want.len) published_mid_stream++;
    }
    cr_assert_gt(published_mid_stream, 0, "objects never left the tail's front mid-stream");
    cr_assert_eq(kl_flush_key(bw, "ks", "k", &err), KL_OK, "%s", err.msg);
    kl_writer_destroy(bw);
    kl_writer_destroy(sw);
    kl_textview_close(tv);
    kl_textview *fresh = open_view("k"); /* what the store holds, no tail */
    size_t len;
    char *t = read_text(fresh, 65536, &len);
    cr_assert_eq(len, want.len);
    cr_assert_eq(memcmp(t, want.data, len), 0, "the store holds every line once");
    free(t);
    kl_textview_close(fresh);
    Kl_buf_free(&want);
}

Test(textview, a_failed_append_shows_nothing)
{
    kl_error err = {0};
    kl_textview *tv = open_view("k");
    kl_insertion bad = kt_rec("x");
    bad.has_nonce = 1;
    bad.nonce = KL_NONCE_NONE; /* reserved: refused */
    cr_assert_neq(kl_textview_append(tv, W, &bad, 1, &err), KL_OK);
    kl_textview_info info;
    kl_textview_stat(tv, &info);
    cr_assert_eq(info.size, 0);
    cr_assert_eq(info.pending, 0);
    kl_textview_close(tv);
}

Test(textview, compaction_under_a_read_changes_no_byte)
{
    kl_writer_destroy(W);
    T.cfg.compact_records_threshold = 6;
    kl_error err = {0};
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &W, &err), KL_OK, "%s", err.msg);
    const char *one[1];
    char lines[8][16];
    for (int i = 0; i < 4; i++) {
        snprintf(lines[i], sizeof lines[i], "line %d", i + 1);
        one[0] = lines[i];
        put_lines(W, "k", one, 1, 100 + i, 0);
    }
    kl_textview *tv = open_view("k");
    char buf[8];
    size_t got;
    cr_assert_eq(kl_textview_read(tv, 0, buf, 3, 0, &got, &err), KL_OK, "%s", err.msg);
    kl_textview_info info;
    kl_textview_stat(tv, &info);
    cr_assert_eq(info.objects, 4);
    for (int i = 4; i < 8; i++) {
        snprintf(lines[i], sizeof lines[i], "line %d", i + 1);
        one[0] = lines[i];
        put_lines(W, "k", one, 1, 100 + i, 0);
    }
    kl_object_meta *v;
    size_t n;
    cr_assert_eq(kl_list_objects(T.os, &T.cfg, "ks", "k", 0, 0, &v, &n, &err), KL_OK);
    free(v);
    cr_assert_lt(n, 8, "a merge replaced the objects the view indexed (%zu left)", n);
    size_t len;
    char *t = read_text(tv, 5, &len);
    cr_assert_str_eq(t, "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\n");
    free(t);
    kl_textview_close(tv);
}

Test(textview, many_views_refresh_at_once)
{
    char names[20][16];
    kl_textview *tvs[21];
    for (int k = 0; k < 20; k++) {
        snprintf(names[k], sizeof names[k], "k%d", k);
        for (int i = 0; i <= k % 3; i++) put_lines(W, names[k], A, 3, 1000 + i, 0);
        tvs[k] = open_view(names[k]);
    }
    tvs[20] = open_view("missing");
    kl_error err = {0};
    uint64_t before = lists();
    cr_assert_eq(kl_textview_refresh_many(tvs, 21, 0, 4, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(lists() - before, 21, "one listing per key");
    for (int k = 0; k < 21; k++) {
        kl_textview_info info;
        kl_textview_stat(tvs[k], &info);
        cr_assert(info.loaded, "%d", k);
        uint64_t objs = k < 20 ? (uint64_t)(k % 3 + 1) : 0;
        cr_assert_eq(info.objects, objs, "%d", k);
        cr_assert_eq(info.size, objs * strlen("alpha\n\ngamma delta\n"), "%d", k);
        kl_textview_close(tvs[k]);
    }
    kl_textview *bad;
    cr_assert_eq(kl_textview_open(R, "ks", ".bad", &bad, &err), KL_EINVAL);
    cr_assert(strstr(err.msg, "'.bad'"), "%s", err.msg);
}

Test(textview, a_corrupt_object_is_an_error_not_wrong_text)
{
    fill("k");
    kl_object_meta *v;
    size_t n;
    kl_error err = {0};
    cr_assert_eq(kl_list_objects(T.os, &T.cfg, "ks", "k", 0, 0, &v, &n, &err), KL_OK);
    char suffix[256], name[512];
    cr_assert_gt(kl_object_name_format(&v[1], suffix, sizeof suffix), 0);
    snprintf(name, sizeof name, "%sks/k/%s", T.prefix, suffix);
    /* Same size, one record's length field broken. */
    uint8_t *body;
    size_t blen;
    cr_assert_eq(kl_os_get(T.os, name, 0, UINT64_MAX, &body, &blen, &err), KL_OK, "%s", err.msg);
    body[32] ^= 0x40;
    cr_assert_eq(kl_os_put(T.os, name, body, blen, 0, &err), KL_OK, "%s", err.msg);
    free(body);
    free(v);
    kl_textview *tv = open_view("k");
    char buf[256];
    size_t got;
    /* The first object reads; the read stops at the damage... */
    cr_assert_eq(kl_textview_read(tv, 0, buf, sizeof buf, 0, &got, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(got, strlen("alpha\n\ngamma delta\n"));
    /* ...and reports it when it starts there. */
    cr_assert_eq(kl_textview_read(tv, got, buf, sizeof buf, 0, &got, &err), KL_EBADDATA);
    cr_assert(strstr(err.msg, "data_o"), "names the object: %s", err.msg);
    kl_textview_close(tv);
}

Test(textview, reads_count_in_the_readers_cache)
{
    fill("k");
    kl_textview *tv = open_view("k");
    kl_cache_stats a, b;
    kl_error err = {0};
    cr_assert_eq(kl_reader_cache_stats(R, &a, &err), KL_OK);
    char buf[4];
    size_t got;
    cr_assert_eq(kl_textview_read(tv, 0, buf, 2, 0, &got, &err), KL_OK);
    cr_assert_eq(kl_textview_read(tv, 2, buf, 2, 0, &got, &err), KL_OK);
    cr_assert_eq(kl_reader_cache_stats(R, &b, &err), KL_OK);
    cr_assert_eq(b.misses - a.misses, 1, "one fetch");
    cr_assert_eq(b.hits - a.hits, 1, "then a hit");
    kl_textview_close(tv);
}

Test(textview, a_scan_fetches_each_object_once)
{
    char lines[12][24];
    const char *one[1];
    for (int i = 0; i < 12; i++) {
        snprintf(lines[i], sizeof lines[i], "object %d's line", i);
        one[0] = lines[i];
        put_lines(W, "k", one, 1, 100 + i, 0);
    }
    kl_textview *tv = open_view("k");
    kl_cache_stats a, b;
    kl_error err = {0};
    cr_assert_eq(kl_reader_cache_stats(R, &a, &err), KL_OK);
    size_t len;
    char *t = read_text(tv, 3, &len); /* many reads per object */
    free(t);
    cr_assert_eq(kl_reader_cache_stats(R, &b, &err), KL_OK);
    cr_assert_eq(b.misses - a.misses, 12, "one fetch per object, readahead included: %" PRIu64,
                 b.misses - a.misses);
    kl_textview_close(tv);
}

/* An object of the right name and size whose body holds one record more
 * than its name says: a read that ends inside it is refused, not served
 * with bytes of records the name does not promise. */
Test(textview, an_object_with_records_beyond_its_name_is_an_error)
{
    const char *one[] = {"0123456789012345678901234567890123456789012345678901234567890123456789"};
    put_lines(W, "k", one, 1, 100, 0);
    kl_object_meta *v;
    size_t n;
    kl_error err = {0};
    cr_assert_eq(kl_list_objects(T.os, &T.cfg, "ks", "k", 0, 0, &v, &n, &err), KL_OK);
    cr_assert_eq(n, 1);
    kl_buf b = {0};
    /* The same 110 bytes: 30 + 40 and 0 + 40, where the name says 70 + 40. */
    Kl_codec_put(&b, 1, 100, 0, 0, "abcdefghijklmnopqrstuvwxyzABCD", 30);
    Kl_codec_put(&b, 2, 100, 0, 0, "", 0);
    cr_assert_eq(b.len, v[0].size);
    char suffix[256], name[512];
    cr_assert_gt(kl_object_name_format(&v[0], suffix, sizeof suffix), 0);
    snprintf(name, sizeof name, "%sks/k/%s", T.prefix, suffix);
    cr_assert_eq(kl_os_put(T.os, name, b.data, b.len, 0, &err), KL_OK, "%s", err.msg);
    free(b.data);
    free(v);
    kl_textview *tv = open_view("k");
    char buf[10];
    size_t got = 0;
    /* From inside the first record into the second, ending well before
     * the object's 71 text bytes. */
    cr_assert_eq(kl_textview_read(tv, 25, buf, sizeof buf, 0, &got, &err), KL_EBADDATA,
                 "got %zu bytes '%.*s'", got, (int)got, buf);
    cr_assert(strstr(err.msg, "holds records its name does not say"), "%s", err.msg);
    kl_textview_close(tv);
}

/* ---- a view's own lines while listings race the writer's reports ----------
 *
 * Each test below runs a store writer on a wrapper of the store whose
 * claim or publish reads the view (through a listing) at the moment the
 * race can happen, and compares the whole text there and at the end. */

typedef kl_status (*claim_op)(kl_objstore *, const char *, const char *, const kl_body *, char **,
                              kl_error *);
typedef kl_status (*publish_op)(kl_objstore *, const char *, const char *, const char *,
                                const kl_body *, kl_error *);

static kl_textview *hook_tv; /* the view the hooks read */

/* The whole text of tv, freshly listed, is `want`. */
static void text_is(kl_textview *tv, const char *want, const char *why)
{
    kl_error err = {0};
    cr_assert_eq(kl_textview_refresh(tv, 0, &err), KL_OK, "%s", err.msg);
    size_t len;
    char *text = read_text(tv, 3, &len);
    cr_assert_str_eq(text, want, "%s", why);
    free(text);
}

/* A store writer observed by the view, on a wrapper of T.os whose claim
 * and publish (unless NULL) are the test's. */
static kl_writer *hooked_writer(kl_objstore **os, kl_objstore_ops *ops, claim_op claim,
                                publish_op publish, kl_textview *tv)
{
    *os = kl_wrap_new(T.os);
    *ops = *(*os)->ops;
    if (claim) ops->claim = claim;
    if (publish) ops->publish = publish;
    (*os)->ops = ops;
    kl_error err = {0};
    kl_writer *sw;
    cr_assert_eq(kl_store_writer_new(*os, &T.cfg, &sw, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_textview_refresh(tv, 0, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_store_writer_observe(sw, on_published, tv, &err), KL_OK);
    hook_tv = tv;
    return sw;
}

static void hooked_done(kl_writer *w, kl_textview *tv, kl_objstore *os)
{
    kl_textview_info info;
    kl_textview_stat(tv, &info);
    cr_assert_eq(info.pending, 0);
    hook_tv = NULL;
    kl_writer_destroy(w);
    kl_textview_close(tv);
    kl_os_destroy(os);
}

/* Our claims of key k's slots (not the writer's fencing probe). */
static int our_claim(const char *claim) { return strstr(claim, "ks/k/claim_") != NULL; }

/* A listing made after the writer published an object but before it
 * reported it (the report follows the request's answer) shows each line
 * once: the writer reported the object ENCODED before sending it, so the
 * view knows it as its own.  The publish below reads the view in that
 * window, every time. */
static const char *ahead_want; /* what a read in the window shows (NULL: below) */
static int ahead_reads;
static kl_status ahead_publish(kl_objstore *os, const char *c, const char *o, const char *t,
                               const kl_body *d, kl_error *e)
{
    kl_status st = kl_os_publish(((kl_wrap *)os)->inner, c, o, t, d, e);
    if (st == KL_OK && hook_tv) {
        const char *want = ahead_want ? ahead_want : ahead_reads ? "x\ny\nz\n" : "x\ny\n";
        text_is(hook_tv, want, "a line shown twice");
        ahead_reads++;
    }
    return st;
}

Test(textview, a_listing_ahead_of_the_writers_report_shows_each_line_once)
{
    if (!kl_os_can_claim(T.os)) return; /* the store cannot fence: no claims */
    kl_objstore *os;
    kl_objstore_ops ops;
    kl_textview *tv = open_view("k");
    kl_writer *sw = hooked_writer(&os, &ops, NULL, ahead_publish, tv);
    kl_error err = {0};
    kl_insertion ins[2] = {kt_rec("x"), kt_rec("y")};
    cr_assert_eq(kl_textview_append(tv, sw, ins, 2, &err), KL_OK, "%s", err.msg);
    ins[0] = kt_rec("z");
    cr_assert_eq(kl_textview_append(tv, sw, ins, 1, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(ahead_reads, 2, "the view was read between publish and report");
    text_is(tv, "x\ny\nz\n", "");
    hooked_done(sw, tv, os);
}

/* Our first claim loses its slot to another writer, whose object a
 * listing then shows where ours was encoded: that object is not ours and
 * retires none of our lines, which stay at the end until ours is in. */
static int lost_claims;
static kl_status lost_claim(kl_objstore *os, const char *c, const char *o, const kl_body *d,
                            char **t, kl_error *e)
{
    if (our_claim(c) && lost_claims++ == 0) {
        const char *w[] = {"w1", "w2", "w3"}; /* covers our object's offsets */
        put_lines(W, "k", w, 3, 50, 0);       /* takes the slot first */
        text_is(hook_tv, "w1\nw2\nw3\nx\ny\n", "the other writer's object retired our lines");
    }
    return kl_os_claim(((kl_wrap *)os)->inner, c, o, d, t, e);
}

Test(textview, an_object_that_lost_its_slot_retires_no_line)
{
    if (!kl_os_can_claim(T.os)) return; /* the store cannot fence: no claims */
    kl_objstore *os;
    kl_objstore_ops ops;
    kl_textview *tv = open_view("k");
    kl_writer *sw = hooked_writer(&os, &ops, lost_claim, ahead_publish, tv);
    ahead_want = "w1\nw2\nw3\nx\ny\n";
    kl_error err = {0};
    kl_insertion ins[2] = {kt_rec("x"), kt_rec("y")};
    cr_assert_eq(kl_textview_append(tv, sw, ins, 2, &err), KL_OK, "%s", err.msg);
    cr_assert_geq(lost_claims, 2, "the first claim lost its slot");
    text_is(tv, "w1\nw2\nw3\nx\ny\n", "");
    hooked_done(sw, tv, os);
}

/* A publish that lands but answers with an error, through a store writer
 * (which reports from the appending thread).  The failed append takes its
 * lines back and forgets its objects, whatever a listing saw meanwhile:
 * retried, its lines show once; followed by another append, no later line
 * is cut. */
static int landed_fail_once, landed_read_once;
static const char *landed_want;
static kl_status landed_publish(kl_objstore *os, const char *c, const char *o, const char *t,
                                const kl_body *d, kl_error *e)
{
    kl_status st = kl_os_publish(((kl_wrap *)os)->inner, c, o, t, d, e);
    if (st == KL_OK && landed_fail_once) {
        landed_fail_once = 0;
        return kl_seterr(e, KL_EIO, "the answer was lost");
    }
    return st;
}
static kl_status landed_claim(kl_objstore *os, const char *c, const char *o, const kl_body *d,
                              char **t, kl_error *e)
{
    if (landed_read_once && our_claim(c)) {
        landed_read_once = 0;
        text_is(hook_tv, landed_want, "lines lost or cut");
    }
    return kl_os_claim(((kl_wrap *)os)->inner, c, o, d, t, e);
}

Test(textview, a_retried_append_whose_failed_publish_landed_shows_each_line_once)
{
    if (!kl_os_can_claim(T.os)) return; /* the store cannot fence: no claims */
    kl_objstore *os;
    kl_objstore_ops ops;
    kl_textview *tv = open_view("k");
    kl_writer *sw = hooked_writer(&os, &ops, landed_claim, landed_publish, tv);
    kl_error err = {0};
    kl_insertion ins[2] = {kt_rec("x"), kt_rec("y")};
    landed_fail_once = 1;
    cr_assert_eq(kl_textview_append(tv, sw, ins, 2, &err), KL_EIO);
    text_is(tv, "x\ny\n", "the lines landed");
    cr_assert_eq(kl_textview_append(tv, sw, ins, 2, &err), KL_OK, "%s", err.msg); /* the retry */
    text_is(tv, "x\ny\n", "lines shown twice");
    hooked_done(sw, tv, os);
}

Test(textview, a_failed_append_whose_publish_landed_cuts_no_later_line)
{
    if (!kl_os_can_claim(T.os)) return; /* the store cannot fence: no claims */
    kl_objstore *os;
    kl_objstore_ops ops;
    kl_textview *tv = open_view("k");
    kl_writer *sw = hooked_writer(&os, &ops, landed_claim, landed_publish, tv);
    kl_error err = {0};
    kl_insertion ins[3] = {kt_rec("x"), kt_rec("y")};
    landed_fail_once = 1;
    cr_assert_eq(kl_textview_append(tv, sw, ins, 2, &err), KL_EIO);
    ins[0] = kt_rec("z1"), ins[1] = kt_rec("z2"), ins[2] = kt_rec("z3");
    landed_read_once = 1; /* a reader lists while z's claim is made */
    landed_want = "x\ny\nz1\nz2\nz3\n";
    cr_assert_eq(kl_textview_append(tv, sw, ins, 3, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(landed_read_once, 0);
    text_is(tv, "x\ny\nz1\nz2\nz3\n", "");
    hooked_done(sw, tv, os);
}

/* The retry of that failed append while a listing already shows its
 * object: the retry encodes the object again (ENCODED of a listed object),
 * and a reader looking while the retry reads the claim sees each line once. */
static int retry_reads;
static kl_status retry_claim_target(kl_objstore *os, const char *c, char **o, char **t, kl_error *e)
{
    if (landed_read_once && our_claim(c)) {
        landed_read_once = 0;
        retry_reads++;
        size_t len; /* no listing first: what a reader of the file gets */
        char *text = read_text(hook_tv, 3, &len);
        cr_assert_str_eq(text, "x\ny\n", "a line shown twice while the retry looks");
        free(text);
    }
    return kl_os_claim_target(((kl_wrap *)os)->inner, c, o, t, e);
}

Test(textview, a_retry_of_a_landed_append_shows_its_lines_once_while_it_looks)
{
    if (!kl_os_can_claim(T.os)) return; /* the store cannot fence: no claims */
    kl_objstore *os;
    kl_objstore_ops ops;
    kl_textview *tv = open_view("k");
    kl_writer *sw = hooked_writer(&os, &ops, NULL, landed_publish, tv);
    ops.claim_target = retry_claim_target;
    kl_error err = {0};
    kl_insertion ins[2] = {kt_rec("x"), kt_rec("y")};
    landed_fail_once = 1;
    cr_assert_eq(kl_textview_append(tv, sw, ins, 2, &err), KL_EIO);
    text_is(tv, "x\ny\n", "the lines landed");
    landed_read_once = 1;
    cr_assert_eq(kl_textview_append(tv, sw, ins, 2, &err), KL_OK, "%s", err.msg); /* the retry */
    cr_assert_eq(retry_reads, 1, "the retry read no claim: the test is void");
    text_is(tv, "x\ny\n", "");
    hooked_done(sw, tv, os);
}

/* An append whose object is in (reported PUBLISHED) but whose call fails
 * afterwards (a compaction merged our claim's bytes into the object
 * before, then reloading the key fails).  The retry finds every record in
 * and publishes nothing: the writer names the object IN_AGAIN, and the
 * lines the retry added again leave the tail -- once, and every later line
 * is whole. */
static int merged_armed, merged_fail_list;
static char merged_name[512];
static kl_status merged_claim(kl_objstore *os, const char *c, const char *o, const kl_body *d,
                              char **t, kl_error *e)
{
    kl_objstore *in = ((kl_wrap *)os)->inner;
    kl_status st = kl_os_claim(in, c, o, d, t, e);
    if (st != KL_OK || !merged_armed || !our_claim(c)) return st;
    merged_armed = 0;
    /* One object [1, ours.last] holds the object before and our bytes. */
    kl_object_meta *v = NULL, mine;
    size_t n = 0;
    kl_error err = {0};
    cr_assert_eq(kl_list_objects(in, &T.cfg, "ks", "k", 0, 0, &v, &n, &err), KL_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(kl_object_name_parse(strrchr(o, '/') + 1, &mine, &err), KL_OK, "%s", err.msg);
    char suffix[256], name[512];
    cr_assert_gt(kl_object_name_format(&v[0], suffix, sizeof suffix), 0);
    snprintf(name, sizeof name, "%sks/k/%s", T.prefix, suffix);
    uint8_t *prev = NULL;
    size_t plen = 0;
    cr_assert_eq(kl_os_get(in, name, 0, v[0].size + 1, &prev, &plen, &err), KL_OK, "%s", err.msg);
    kl_object_meta mg = v[0];
    mg.last_offset = mine.last_offset;
    mg.max_ts = mine.max_ts > v[0].max_ts ? mine.max_ts : v[0].max_ts;
    mg.min_ts = mine.min_ts < v[0].min_ts ? mine.min_ts : v[0].min_ts;
    mg.next_nonce = mine.next_nonce;
    mg.size = plen + d->len;
    kl_buf b = {0};
    cr_assert_eq(Kl_buf_append(&b, prev, plen), 0);
    for (size_t i = 0; i < d->n; i++)
        cr_assert_eq(Kl_buf_append(&b, d->v[i].iov_base, d->v[i].iov_len), 0);
    cr_assert_gt(kl_object_name_format(&mg, suffix, sizeof suffix), 0);
    snprintf(merged_name, sizeof merged_name, "%sks/k/%s", T.prefix, suffix);
    cr_assert_eq(kl_os_put(in, merged_name, b.data, b.len, 0, &err), KL_OK, "%s", err.msg);
    Kl_buf_free(&b);
    free(prev);
    free(v);
    return st;
}
static kl_status merged_get(kl_objstore *os, const char *n, uint64_t off, uint64_t len, uint8_t **d,
                            size_t *ol, kl_error *e)
{
    if (merged_name[0] && strcmp(n, merged_name) == 0) merged_fail_list = 1; /* the body check */
    return kl_os_get(((kl_wrap *)os)->inner, n, off, len, d, ol, e);
}
static kl_status merged_list(kl_objstore *os, const kl_list_req *r, kl_listing *o, kl_error *e)
{
    if (merged_fail_list) {
        merged_fail_list = 0;
        merged_name[0] = 0;
        return kl_seterr(e, KL_EIO, "the reload's LIST failed");
    }
    return kl_os_list(((kl_wrap *)os)->inner, r, o, e);
}

Test(textview, a_retry_of_an_append_reported_published_shows_each_line_once)
{
    if (!kl_os_can_claim(T.os)) return; /* the store cannot fence: no claims */
    const char *p[] = {"p"};
    put_lines(W, "k", p, 1, 10, 0);
    kl_objstore *os = kl_wrap_new(T.os);
    kl_objstore_ops ops = *os->ops;
    ops.claim = merged_claim;
    ops.get = merged_get;
    ops.list = merged_list;
    os->ops = &ops;
    kl_store_config cfg = T.cfg;
    cfg.skip_tail_check = 0; /* the claim is checked with a LIST */
    kl_error err = {0};
    kl_writer *sw;
    cr_assert_eq(kl_store_writer_new(os, &cfg, &sw, &err), KL_OK, "%s", err.msg);
    kl_textview *tv = open_view("k");
    cr_assert_eq(kl_textview_refresh(tv, 0, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_store_writer_observe(sw, on_published, tv, &err), KL_OK);
    kl_insertion ins[2] = {kt_rec("x"), kt_rec("y")};
    merged_armed = 1;
    cr_assert_neq(kl_textview_append(tv, sw, ins, 2, &err), KL_OK, "the staged failure");
    cr_assert_eq(kl_textview_append(tv, sw, ins, 2, &err), KL_OK, "%s", err.msg); /* the retry */
    text_is(tv, "p\nx\ny\n", "lines shown twice");
    ins[0] = kt_rec("zz");
    cr_assert_eq(kl_textview_append(tv, sw, ins, 1, &err), KL_OK, "%s", err.msg);
    text_is(tv, "p\nx\ny\nzz\n", "a later line cut");
    hooked_done(sw, tv, os);
}

/* Retried again and again: each call repeats the failed one plus a record,
 * and each publish lands but answers with an error.  The last retry finds
 * every earlier object in; the writer names them all IN_AGAIN (however
 * many), and each line shows once. */
Test(textview, many_failed_retries_show_each_line_once)
{
    if (!kl_os_can_claim(T.os)) return; /* the store cannot fence: no claims */
    kl_objstore *os;
    kl_objstore_ops ops;
    kl_textview *tv = open_view("k");
    kl_writer *sw = hooked_writer(&os, &ops, NULL, landed_publish, tv);
    kl_error err = {0};
    enum { FAILS = 12 };
    static char names[FAILS][8];
    kl_insertion ins[FAILS];
    char want[256] = "";
    for (int i = 0; i < FAILS; i++) {
        snprintf(names[i], sizeof names[i], "r%d", i);
        ins[i] = kt_rec(names[i]);
        strcat(want, names[i]), strcat(want, "\n");
    }
    for (int i = 1; i <= FAILS; i++) {
        landed_fail_once = 1;
        cr_assert_eq(kl_textview_append(tv, sw, ins, (size_t)i, &err), KL_EIO, "call %d", i);
    }
    cr_assert_eq(kl_textview_append(tv, sw, ins, FAILS, &err), KL_OK, "%s", err.msg);
    size_t len;
    char *text = read_text(tv, 3, &len); /* no listing first: what a reader gets */
    cr_assert_str_eq(text, want, "lines shown twice after the retry");
    free(text);
    text_is(tv, want, "");
    hooked_done(sw, tv, os);
}

/* A text view's lines carry no nonce: refused with a clear error, and
 * neither the view nor the log changes. */
Test(textview, lines_with_a_nonce_are_refused_and_nothing_changes)
{
    fill("k");
    kl_textview *tv = open_view("k");
    kl_insertion ins[2] = {kt_rec("x"), kt_rec("y")};
    ins[1].has_nonce = 1;
    ins[1].nonce = 99;
    kl_error err = {0};
    cr_assert_eq(kl_textview_append(tv, W, ins, 2, &err), KL_EINVAL);
    cr_assert_str_eq(err.msg,
                     "ks/k: record 1 has a nonce; lines appended through a text view carry none");
    text_is(tv, WANT, "the view changed");
    kl_textview *fresh = open_view("k");
    text_is(fresh, WANT, "the log changed");
    kl_textview_close(fresh);
    kl_textview_close(tv);
}

/* Another writer takes our slot with an object of our object's very name
 * (same offsets, timestamps and sizes, no nonces): a listing made then
 * takes it for ours, and our lines leave the tail early.  Once the writer
 * reports ours DROPPED and publishes it at the next slot, every line shows
 * once, and a line appended meanwhile stays (in between, ours were
 * briefly absent -- never twice, never cut). */
static int twin_claims;
static kl_writer *twin_bw;
static kl_status twin_claim(kl_objstore *os, const char *c, const char *o, const kl_body *d,
                            char **t, kl_error *e)
{
    if (our_claim(c) && twin_claims++ == 0) {
        const char *w[] = {"a", "b"};
        put_lines(W, "k", w, 2, 50, 0); /* the sizes and timestamps of ours */
        text_is(hook_tv, "a\nb\n", "the twin was not taken for ours: the test is void");
        kl_insertion z = kt_rec("z"); /* queued behind ours, still pending */
        kl_error err = {0};
        cr_assert_eq(kl_textview_append(hook_tv, twin_bw, &z, 1, &err), KL_OK, "%s", err.msg);
    }
    return kl_os_claim(((kl_wrap *)os)->inner, c, o, d, t, e);
}

Test(textview, a_twin_of_our_object_from_another_writer_leaves_every_line_once)
{
    if (!kl_os_can_claim(T.os)) return; /* the store cannot fence: no claims */
    kl_objstore *os;
    kl_objstore_ops ops;
    kl_textview *tv = open_view("k");
    kl_writer *sw = hooked_writer(&os, &ops, twin_claim, NULL, tv);
    kl_batch_config bc;
    kl_batch_config_init(&bc);
    bc.batch_flush_interval_millis = 3600000; /* only explicit flushes */
    kl_error err = {0};
    cr_assert_eq(kl_batch_writer_new(sw, &bc, &twin_bw, &err), KL_OK, "%s", err.msg);
    kl_insertion ins[2] = {kt_rec("x"), kt_rec("y")};
    for (int i = 0; i < 2; i++) ins[i].has_timestamp = 1, ins[i].timestamp = 50 + i;
    cr_assert_eq(kl_textview_append(tv, twin_bw, ins, 2, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_flush_key(twin_bw, "ks", "k", &err), KL_OK, "%s", err.msg);
    cr_assert_geq(twin_claims, 2);
    text_is(tv, "a\nb\nx\ny\nz\n", "a line lost or shown twice");
    cr_assert_eq(kl_flush_key(twin_bw, "ks", "k", &err), KL_OK, "%s", err.msg);
    text_is(tv, "a\nb\nx\ny\nz\n", "");
    kl_writer_destroy(twin_bw);
    hooked_done(sw, tv, os);
}

/* A listing that is older than the writer's report of its newest object
 * (the LIST started before that object's PUT finished) must not make the
 * object's lines vanish: the view keeps what continues the listing. */
static char lag_hide[512];
static kl_status lag_list(kl_objstore *os, const kl_list_req *r, kl_listing *o, kl_error *e)
{
    kl_status st = kl_os_list(((kl_wrap *)os)->inner, r, o, e);
    size_t k = 0;
    for (size_t i = 0; st == KL_OK && i < o->n_objects; i++) {
        if (lag_hide[0] && strcmp(o->objects[i].name, lag_hide) == 0)
            free(o->objects[i].name);
        else
            o->objects[k++] = o->objects[i];
    }
    if (st == KL_OK) o->n_objects = k;
    return st;
}

Test(textview, a_listing_older_than_a_published_object_loses_no_line)
{
    kl_objstore *lag = kl_wrap_new(T.os);
    kl_objstore_ops ops = *lag->ops;
    ops.list = lag_list;
    lag->ops = &ops;
    kl_reader *r2;
    kl_textview *tv;
    kl_error err = {0};
    cr_assert_eq(kl_store_reader_new(lag, &T.cfg, &r2, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_textview_open(r2, "ks", "k", &tv, &err), KL_OK, "%s", err.msg);
    const char *a[] = {"first"}, *x[] = {"second"};
    put_lines(W, "k", a, 1, 100, 0);
    cr_assert_eq(kl_textview_refresh(tv, 0, &err), KL_OK, "%s", err.msg);
    put_lines(W, "k", x, 1, 200, 0);
    kl_object_meta *v;
    size_t n;
    cr_assert_eq(kl_list_objects(T.os, &T.cfg, "ks", "k", 0, 0, &v, &n, &err), KL_OK);
    cr_assert_eq(n, 2);
    char suffix[256];
    cr_assert_gt(kl_object_name_format(&v[1], suffix, sizeof suffix), 0);
    snprintf(lag_hide, sizeof lag_hide, "%sks/k/%s", T.prefix, suffix);
    kl_textview_report(tv, KL_OBJECT_PUBLISHED, &v[1]); /* the writer's report comes first */
    cr_assert_eq(kl_textview_refresh(tv, 0, &err), KL_OK, "%s", err.msg); /* the old LIST */
    kl_textview_info info;
    kl_textview_stat(tv, &info);
    cr_assert_eq(info.size, strlen("first\nsecond\n"));
    size_t len;
    char *t = read_text(tv, 4, &len);
    cr_assert_str_eq(t, "first\nsecond\n");
    free(t);
    lag_hide[0] = 0;
    free(v);
    kl_textview_close(tv);
    kl_reader_destroy(r2);
    kl_os_destroy(lag);
}
