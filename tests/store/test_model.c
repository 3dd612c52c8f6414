/* test_model.c -- randomized model test: random appends (with and without
 * nonces, duplicates, random timestamps), random compaction thresholds,
 * writer restarts and cache evictions, checked against an in-memory model
 * by reading in random directions from random start positions with random
 * page sizes.  A second part races a reader against a writer whose tiny
 * thresholds make it compact constantly: every read must return each
 * offset exactly once, in order.
 *
 * The seed is printed; KL_MODEL_SEED=N replays a failure. */
#include <inttypes.h>
#include <pthread.h>

#include "test_env.h"

typedef struct mrec {
    uint64_t offset;
    int64_t ts;
    int has_nonce;
    kl_u128 nonce;
    char val[48];
} mrec;

typedef struct mkey {
    mrec *v;
    size_t n, cap;
    kl_u128 next_nonce;
} mkey;

static uint64_t rng;
static uint64_t rnd(void)
{ /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}
static uint64_t rnd_in(uint64_t lo, uint64_t hi) { return lo + rnd() % (hi - lo + 1); }

static uint64_t seed_from_env(void)
{
    const char *s = getenv("KL_MODEL_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 16;
    cr_log_info("model seed %" PRIu64 " (replay with KL_MODEL_SEED)", seed);
    fprintf(stderr, "test_model: seed %" PRIu64 "\n", seed);
    return seed ? seed : 1;
}

static int scale(void) { return kt_is_s3() ? 1 : 3; }

static void model_add(mkey *k, const mrec *r)
{
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 64;
        k->v = realloc(k->v, k->cap * sizeof *k->v);
    }
    k->v[k->n++] = *r;
}

/* Appends a random batch to the store and the model (nonce rules of
 * FORMAT.md applied to the model independently). */
static void random_append(kl_writer *w, const char *key, mkey *k)
{
    size_t n = rnd_in(0, 6);
    kl_insertion ins[6];
    mrec recs[6];
    for (size_t i = 0; i < n; i++) {
        mrec *r = &recs[i];
        memset(r, 0, sizeof *r);
        r->has_nonce = rnd() % 3 != 0;
        if (r->has_nonce) {
            kl_u128 base = k->next_nonce + (kl_u128)rnd_in(0, 4);
            r->nonce = base >= 3 ? base - rnd_in(0, 3) : base;
        }
        r->ts = (int64_t)rnd_in(0, 1000) - 200;
        snprintf(r->val, sizeof r->val, "%s-%" PRIu64, key, rnd());
        ins[i] = (kl_insertion){.data = r->val,
                                .len = strlen(r->val),
                                .has_nonce = r->has_nonce,
                                .nonce = r->nonce,
                                .has_timestamp = 1,
                                .timestamp = r->ts};
    }
    kl_error err = {0};
    cr_assert_eq(kl_append(w, "ks", key, ins, n, &err), KL_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        mrec *r = &recs[i];
        if (r->has_nonce) {
            if (r->nonce < k->next_nonce) continue;
            k->next_nonce = r->nonce + 1;
        }
        r->offset = k->n + 1;
        model_add(k, r);
    }
}

/* The model's answer for a read: indexes into k->v, in reading order. */
static size_t expected(const mkey *k, kl_direction dir, const kl_start *s, size_t *out)
{
    size_t n = k->n, start = 0, cnt = 0;
    if (n == 0) return 0;
    /* Forward start index (0-based; n = past the end). */
    switch (s->kind) {
    case KL_START_FIRST: start = 0; break;
    case KL_START_LAST: start = n - 1; break;
    case KL_START_OFFSET: start = s->offset ? s->offset - 1 : 0; break;
    case KL_START_TIMESTAMP:
    case KL_START_NONCE: {
        /* Timestamps are random per record, so the store's contract for a
         * timestamp search is "first record matching within the first
         * object whose range matches"; the model is only asked about
         * nonces (monotone) and handled via offsets for timestamps. */
        int back = dir == KL_BACKWARDS;
        start = n;
        for (size_t i = 0; i < n; i++) {
            const mrec *r = &k->v[i];
            if (r->has_nonce && (back ? r->nonce > s->nonce : r->nonce >= s->nonce)) {
                start = i;
                break;
            }
        }
        if (back) {
            if (start == 0) return 0;
            start--;
        }
        break;
    }
    }
    if (dir == KL_FORWARDS) {
        for (size_t i = start; i < n; i++) out[cnt++] = i;
    } else {
        if (start >= n) start = n - 1;
        for (size_t i = start + 1; i-- > 0;) out[cnt++] = i;
    }
    return cnt;
}

static void check_read(kl_reader *r, const char *key, const mkey *k)
{
    kl_direction dir = rnd() % 2 ? KL_BACKWARDS : KL_FORWARDS;
    kl_start s = {0};
    switch (rnd() % 4) {
    case 0: s.kind = KL_START_FIRST; break;
    case 1: s.kind = KL_START_LAST; break;
    case 2:
        s.kind = KL_START_OFFSET;
        s.offset = rnd_in(0, k->n + 2);
        break;
    default:
        s.kind = KL_START_NONCE;
        s.nonce = (kl_u128)rnd_in(0, (uint64_t)k->next_nonce + 2);
        break;
    }
    uint64_t psize = rnd_in(1, 9);
    size_t *want = malloc((k->n + 1) * sizeof *want);
    size_t nwant = expected(k, dir, &s, want), got = 0;
    kl_page p;
    kl_error err = {0};
    cr_assert_eq(kl_read_first_page(r, "ks", key, dir, &s, psize, &p, &err), KL_OK, "%s", err.msg);
    for (;;) {
        for (size_t i = 0; i < p.count; i++, got++) {
            cr_assert_lt(got, nwant, "read more than the model has (kind %d dir %d)", s.kind, dir);
            const mrec *m = &k->v[want[got]];
            const kl_record *rec = &p.records[i];
            cr_assert_eq(rec->offset, m->offset, "kind %d dir %d page %" PRIu64, s.kind, dir,
                         psize);
            cr_assert_eq(rec->len, strlen(m->val));
            cr_assert_eq(memcmp(rec->data, m->val, rec->len), 0);
            cr_assert_eq(rec->timestamp, m->ts);
            cr_assert_eq(rec->has_nonce, m->has_nonce);
            if (m->has_nonce) cr_assert(rec->nonce == m->nonce);
        }
        if (p.count == 0 || !p.continuation) break;
        char *tok = strdup(p.continuation);
        kl_page_free(&p);
        cr_assert_eq(kl_read_next_page(r, "ks", key, tok, psize, &p, &err), KL_OK, "%s", err.msg);
        free(tok);
    }
    kl_page_free(&p);
    cr_assert_eq(got, nwant, "kind %d dir %d: got %zu of %zu records", s.kind, dir, got, nwant);
    free(want);

    kl_key_meta km;
    int exists;
    cr_assert_eq(kl_read_key_metadata(r, "ks", key, &exists, &km, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(exists, k->n > 0);
    if (exists) {
        cr_assert_eq(km.next_offset, k->n + 1);
        cr_assert(km.next_nonce == k->next_nonce);
    }
}

static kt_store T;
static void setup(void) { kt_open(&T); }
static void teardown(void) { kt_close(&T); }
TestSuite(model, .init = setup, .fini = teardown, .timeout = 600);

Test(model, random_operations_match_the_model)
{
    rng = seed_from_env();
    T.cfg.compact_records_threshold = rnd_in(1, 25);
    T.cfg.compact_size_threshold = rnd_in(60, 3000);
    T.cfg.compact_objects_threshold = rnd_in(1, 8);
    T.cfg.max_cached_keys = rnd_in(1, 3);
    T.cfg.reader_cache_bytes = rnd() % 2 ? 0 : 1 << 20;
    const char *keys[] = {"a", "b", "c"};
    mkey model[3] = {0};
    kl_writer *w;
    kl_reader *r;
    kl_error err = {0};
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &w, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_store_reader_new(T.os, &T.cfg, &r, &err), KL_OK, "%s", err.msg);
    int ops = 150 * scale();
    for (int op = 0; op < ops; op++) {
        int ki = (int)rnd_in(0, 2);
        uint64_t what = rnd() % 100;
        if (what < 70) {
            random_append(w, keys[ki], &model[ki]);
        } else if (what < 97) {
            check_read(r, keys[ki], &model[ki]);
        } else {
            kl_writer_destroy(w); /* a restart: state reloads from the store */
            cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &w, &err), KL_OK, "%s", err.msg);
        }
    }
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 4; j++) check_read(r, keys[i], &model[i]);
        free(model[i].v);
    }
    kl_writer_destroy(w);
    kl_reader_destroy(r);
}

/* ---- a reader racing a compacting writer ---- */

typedef struct race {
    kl_objstore *os;
    const kl_store_config *cfg;
    volatile int done;
    int passes;
    char failure[256];
} race;

/* Values are "o<offset>", so the reader can check each record on its own,
 * without sharing the model with the writer thread. */
static void *race_reader(void *arg)
{
    race *rc = arg;
    kl_reader *r;
    kl_error err = {0};
    if (kl_store_reader_new(rc->os, rc->cfg, &r, &err) != KL_OK) {
        snprintf(rc->failure, sizeof rc->failure, "reader: %.200s", err.msg);
        return NULL;
    }
    uint64_t local = 0x9e3779b97f4a7c15ULL;
    while (!rc->done && !rc->failure[0]) {
        local = local * 6364136223846793005ULL + 1;
        uint64_t psize = 1 + (local >> 33) % 7;
        kl_page p;
        uint64_t expect = 1;
        kl_status st = kl_read_first_page(r, "ks", "race", KL_FORWARDS, NULL, psize, &p, &err);
        while (st == KL_OK) {
            for (size_t i = 0; i < p.count && !rc->failure[0]; i++) {
                char want[32];
                snprintf(want, sizeof want, "o%" PRIu64, expect);
                if (p.records[i].offset != expect || p.records[i].len != strlen(want) ||
                    memcmp(p.records[i].data, want, p.records[i].len) != 0)
                    snprintf(rc->failure, sizeof rc->failure,
                             "pass %d: got offset %" PRIu64 " ('%.*s'), expected %" PRIu64,
                             rc->passes, p.records[i].offset, (int)p.records[i].len,
                             (const char *)p.records[i].data, expect);
                expect++;
            }
            int end = p.count == 0;
            char *tok = strdup(p.continuation);
            kl_page_free(&p);
            if (end || rc->failure[0]) {
                free(tok);
                break;
            }
            st = kl_read_next_page(r, "ks", "race", tok, psize, &p, &err);
            free(tok);
        }
        if (st != KL_OK && !rc->failure[0])
            snprintf(rc->failure, sizeof rc->failure, "pass %d: %.200s", rc->passes, err.msg);
        rc->passes++;
    }
    kl_reader_destroy(r);
    return NULL;
}

Test(model, reader_during_compaction_sees_each_offset_once)
{
    rng = seed_from_env();
    T.cfg.compact_records_threshold = 7;
    T.cfg.compact_size_threshold = UINT64_MAX;
    T.cfg.compact_objects_threshold = 3;
    T.cfg.reader_cache_bytes = 0; /* every read goes to the store */
    kl_writer *w;
    kl_error err = {0};
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &w, &err), KL_OK, "%s", err.msg);
    race rc = {.os = T.os, .cfg = &T.cfg};
    pthread_t th;
    pthread_create(&th, NULL, race_reader, &rc);
    uint64_t next = 1;
    /* Keep writing until the reader has overlapped several compactions
     * (an S3 reader is slower than a local one), within a fixed bound. */
    int appends = 250 * scale();
    for (int i = 0; !rc.failure[0] && (i < appends || (rc.passes < 4 && i < 8 * appends)); i++) {
        size_t n = rnd_in(1, 3);
        char vals[3][32];
        kl_insertion ins[3];
        for (size_t j = 0; j < n; j++) {
            snprintf(vals[j], sizeof vals[j], "o%" PRIu64, next++);
            ins[j] = kt_rec(vals[j]);
        }
        cr_assert_eq(kl_append(w, "ks", "race", ins, n, &err), KL_OK, "%s", err.msg);
    }
    rc.done = 1;
    pthread_join(th, NULL);
    kl_writer_destroy(w);
    cr_assert_eq(rc.failure[0], 0, "%s", rc.failure);
    cr_assert_gt(rc.passes, 3, "the reader ran concurrently (%d passes)", rc.passes);
}
