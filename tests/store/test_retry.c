/* test_retry.c -- an append whose outcome was unknown, retried: its records
 * end up in the log exactly once.
 *
 * A request can fail after it took effect (the answer was lost, a timeout
 * fired late) or before; the writer cannot tell which.  The batching
 * writer keeps failed records and writes them again at the next flush, and
 * acknowledges them then, so a retry must find what its failed attempt
 * left (a claim, or a published object) instead of writing the records a
 * second time.  Faults are injected at the object store seam, in front of
 * the real store (a directory, or Ceph RGW with KL_TEST_STORE=s3): each
 * kind of request can fail before it reaches the store or after it took
 * effect.  On RGW, a proxy also loses answers on the wire, so the S3
 * client's own retries take part. */
#include "test_env.h"

#include <pthread.h>
#include <stdatomic.h>

#include "../common/objstore_wrap.h"
#include "writer.h"

/* When the next request of a kind fails: before reaching the store, or
 * after it took effect (its answer lost); a claim may also come back as
 * taken after it took effect (as from an S3 retry that met its own first
 * try and could not read it back). */
enum { NONE, BEFORE, AFTER, AFTER_AS_TAKEN };
/* Atomics: a pipelined append claims on one thread while it publishes on
 * another.  pass_*: requests of that kind let through before the fault. */
static _Atomic int fail_claim, fail_publish, fail_put, fail_claim_get, pass_claims, pass_publishes;
/* Publishes and claims are slowed by this much; claims that end while a
 * publish is under way are counted. */
static _Atomic int publish_ms, claim_ms, publishing, claims_while_publishing;
/* The next claim alone is held back this long (a writer paused). */
static _Atomic int late_claim_ms;

static void slow(_Atomic int *ms)
{
    struct timespec ts = {0, atomic_load(ms) * 1000000L};
    if (ts.tv_nsec) nanosleep(&ts, NULL);
}

/* The fault for this request of a kind, consumed; NONE while passing. */
static int take_fault(_Atomic int *fault, _Atomic int *pass)
{
    if (atomic_load(fault) == NONE) return NONE;
    if (pass && atomic_fetch_sub(pass, 1) > 0) return NONE;
    return atomic_exchange(fault, NONE);
}

static kl_status injected(kl_error *e, const char *what)
{
    return kl_seterr(e, KL_EIO, "injected fault: %s", what);
}

static kl_status f_claim(kl_objstore *os, const char *c, const char *o, const kl_body *d, char **t,
                         kl_error *e)
{
    int f = take_fault(&fail_claim, &pass_claims);
    if (f == BEFORE) return injected(e, "claim not sent");
    slow(&claim_ms);
    int late = atomic_exchange(&late_claim_ms, 0);
    if (late) {
        struct timespec ts = {late / 1000, (late % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    kl_status st = kl_os_claim(KL_WRAP(os)->inner, c, o, d, t, e);
    if (atomic_load(&publishing)) atomic_fetch_add(&claims_while_publishing, 1);
    if (f >= AFTER && st == KL_OK) {
        free(*t);
        *t = NULL;
        if (f == AFTER_AS_TAKEN) return kl_seterr(e, KL_EEXIST, "injected: claim taken");
        return injected(e, "claim's answer lost");
    }
    return st;
}

static kl_status f_publish(kl_objstore *os, const char *c, const char *o, const char *t,
                           const kl_body *d, kl_error *e)
{
    int f = take_fault(&fail_publish, &pass_publishes);
    if (f == BEFORE) return injected(e, "publish not sent");
    atomic_fetch_add(&publishing, 1);
    slow(&publish_ms);
    kl_status st = kl_os_publish(KL_WRAP(os)->inner, c, o, t, d, e);
    atomic_fetch_sub(&publishing, 1);
    return f == AFTER && st == KL_OK ? injected(e, "publish's answer lost") : st;
}

static kl_status f_put(kl_objstore *os, const char *n, const void *d, size_t l, int fl, kl_error *e)
{
    /* Only data objects: the watermark and markers are not the subject. */
    int f = strstr(n, "/data_") ? take_fault(&fail_put, NULL) : NONE;
    if (f == BEFORE) return injected(e, "PUT not sent");
    kl_status st = kl_os_put(KL_WRAP(os)->inner, n, d, l, fl, e);
    return f == AFTER && st == KL_OK ? injected(e, "PUT's answer lost") : st;
}

/* GETs of claims (a writer reading a claim back to see whether it is its
 * own) fail before reaching the store. */
static kl_status f_get(kl_objstore *os, const char *n, uint64_t off, uint64_t len, uint8_t **d,
                       size_t *ol, kl_error *e)
{
    if (strstr(n, "/claim_o") && take_fault(&fail_claim_get, NULL))
        return injected(e, "GET of a claim not sent");
    return kl_os_get(KL_WRAP(os)->inner, n, off, len, d, ol, e);
}

static kt_store T;
static kl_objstore *faulty; /* T.os behind the injector */
static kl_objstore_ops faulty_ops;

static void setup(void)
{
    kt_open(&T);
    faulty = kl_wrap_new(T.os);
    cr_assert_not_null(faulty);
    faulty_ops = *faulty->ops;
    faulty_ops.put = f_put;
    faulty_ops.get = f_get;
    if (faulty_ops.claim) {
        faulty_ops.claim = f_claim;
        faulty_ops.publish = f_publish;
    }
    faulty->ops = &faulty_ops;
    fail_claim = fail_publish = fail_put = fail_claim_get = NONE;
    pass_claims = pass_publishes = publish_ms = claim_ms = publishing = claims_while_publishing = 0;
    late_claim_ms = 0;
}

static void teardown(void)
{
    kl_os_destroy(faulty);
    kt_close(&T);
}

TestSuite(retry, .init = setup, .fini = teardown, .timeout = 120);

/* The key's records, comma-separated, read back by a fresh reader. */
static char *read_all(const char *key)
{
    kl_reader *r;
    kl_error e = {0};
    cr_assert_eq(kl_store_reader_new(T.os, &T.cfg, &r, &e), KL_OK, "%s", e.msg);
    size_t cap = 4096, len = 0;
    char *out = calloc(1, cap);
    kl_page p;
    kl_start from = {.kind = KL_START_FIRST};
    kl_status st = kl_read_first_page(r, "ks", key, KL_FORWARDS, &from, 1000, &p, &e);
    for (;;) {
        cr_assert_eq(st, KL_OK, "%s", e.msg);
        for (size_t i = 0; i < p.count; i++) {
            const kl_record *rec = &p.records[i];
            while (len + rec->len + 2 > cap) out = realloc(out, cap *= 2);
            if (len) out[len++] = ',';
            memcpy(out + len, rec->data, rec->len);
            out[len += rec->len] = 0;
        }
        char *next = p.continuation ? strdup(p.continuation) : NULL;
        size_t got = p.count;
        kl_page_free(&p);
        if (!next || got == 0) {
            free(next);
            break;
        }
        st = kl_read_next_page(r, "ks", key, next, 1000, &p, &e);
        free(next);
    }
    kl_reader_destroy(r);
    return out;
}

/* The whole log of key "k" is `want`. */
static void expect_log(const char *want)
{
    char *got = read_all("k");
    cr_assert_str_eq(got, want);
    free(got);
}

static kl_writer *store_writer(kl_objstore *os, int fencing)
{
    kl_store_config c = T.cfg;
    c.fencing = fencing;
    kl_writer *w;
    kl_error e = {0};
    cr_assert_eq(kl_store_writer_new(os, &c, &w, &e), KL_OK, "%s", e.msg);
    return w;
}

static kl_status append3(kl_writer *w, const char *a, const char *b, const char *c, kl_error *e)
{
    const char *v[3] = {a, b, c};
    kl_insertion ins[3];
    size_t n = 0;
    while (n < 3 && v[n]) ins[n] = kt_rec(v[n]), n++;
    return kl_append(w, "ks", "k", ins, n, e);
}

/* The batching writer's way: a flush fails, the next one writes the same
 * records again and acknowledges them. */
static void batch_fails_once_then_flushes(_Atomic int *fault, int when, int fencing)
{
    kl_writer *sw = store_writer(faulty, fencing), *bw;
    kl_batch_config bc;
    kl_batch_config_init(&bc);
    kl_error e = {0};
    cr_assert_eq(kl_batch_writer_new(sw, &bc, &bw, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(append3(sw, "0", NULL, NULL, &e), KL_OK, "%s", e.msg); /* a key with history */
    cr_assert_eq(append3(bw, "a", "b", "c", &e), KL_OK, "%s", e.msg);
    *fault = when;
    cr_assert_eq(kl_flush_all(bw, &e), KL_EIO, "the injected fault is reported");
    cr_assert_eq(*fault, NONE, "the fault was injected");
    cr_assert_eq(kl_flush_all(bw, &e), KL_OK, "%s", e.msg);
    kl_writer_destroy(bw);
    kl_writer_destroy(sw);
    expect_log("0,a,b,c");
}

static int can_claim(void)
{
    if (!kl_os_can_claim(T.os)) cr_skip_test("this store cannot fence writers");
    return 1;
}

/* A fenced store writer behind the injector (skips where none can be). */
static kl_writer *fenced_writer(void)
{
    can_claim();
    return store_writer(faulty, KL_FENCING_ON);
}

Test(retry, a_publish_that_never_happened_is_made_once)
{
    if (can_claim()) batch_fails_once_then_flushes(&fail_publish, BEFORE, KL_FENCING_ON);
}

Test(retry, a_publish_whose_answer_was_lost_is_not_made_again)
{
    if (can_claim()) batch_fails_once_then_flushes(&fail_publish, AFTER, KL_FENCING_ON);
}

Test(retry, a_claim_whose_answer_was_lost_is_published_not_claimed_again)
{
    if (can_claim()) batch_fails_once_then_flushes(&fail_claim, AFTER, KL_FENCING_ON);
}

/* Within one append: a claim reported taken that holds our own bytes is
 * ours to publish, not another writer's link to publish besides ours. */
Test(retry, a_claim_reported_taken_that_holds_our_bytes_is_ours)
{
    kl_writer *w = fenced_writer();
    kl_error e = {0};
    cr_assert_eq(append3(w, "0", NULL, NULL, &e), KL_OK, "%s", e.msg); /* probes fencing */
    fail_claim = AFTER_AS_TAKEN;
    cr_assert_eq(append3(w, "a", "b", "c", &e), KL_OK, "%s", e.msg);
    cr_assert_eq(fail_claim, NONE, "the fault was injected");
    kl_writer_destroy(w);
    expect_log("0,a,b,c");
}

/* w's append of a, b, c fails (the fault the caller armed), another
 * writer appends x, and w's retry succeeds: the log reads `want`. */
static void failed_then_another_writer_then_retried(kl_writer *w, const char *want)
{
    kl_writer *other = store_writer(T.os, KL_FENCING_ON);
    kl_error e = {0};
    cr_assert_eq(append3(w, "a", "b", "c", &e), KL_EIO);
    cr_assert_eq(append3(other, "x", NULL, NULL, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(append3(w, "a", "b", "c", &e), KL_OK, "%s", e.msg);
    kl_writer_destroy(other);
    kl_writer_destroy(w);
    expect_log(want);
}

/* The same, but the claim cannot be read back: the append fails not
 * knowing whether the claim is its own, and another writer publishes it
 * (as its link) before the retry, which must find the records in. */
Test(retry, a_claim_reported_taken_that_cannot_be_read_back_is_resumed)
{
    kl_writer *w = fenced_writer();
    kl_error e = {0};
    cr_assert_eq(append3(w, "0", NULL, NULL, &e), KL_OK, "%s", e.msg);
    fail_claim = AFTER_AS_TAKEN;
    fail_claim_get = BEFORE;
    failed_then_another_writer_then_retried(w, "0,a,b,c,x");
}

Test(retry, a_claim_that_never_happened_is_made_afresh)
{
    if (can_claim()) batch_fails_once_then_flushes(&fail_claim, BEFORE, KL_FENCING_ON);
}

Test(retry, an_unfenced_put_whose_answer_was_lost_is_not_made_again)
{
    batch_fails_once_then_flushes(&fail_put, AFTER, KL_FENCING_OFF);
}

Test(retry, an_unfenced_put_that_never_happened_is_made_once)
{
    batch_fails_once_then_flushes(&fail_put, BEFORE, KL_FENCING_OFF);
}

/* Another writer publishes the failed attempt's claim (it is the tail's
 * first claim) before the retry: the retry finds its records in. */
Test(retry, a_claim_another_writer_published_counts_as_written)
{
    can_claim();
    fail_publish = BEFORE;
    failed_then_another_writer_then_retried(store_writer(faulty, KL_FENCING_ON), "a,b,c,x");
}

/* A retry may carry more records than the failed call (a batch that grew):
 * the failed ones go in once, the new ones after them. */
Test(retry, a_retry_with_more_records_writes_the_new_ones_after)
{
    kl_writer *w = fenced_writer();
    kl_error e = {0};
    fail_publish = AFTER;
    cr_assert_eq(append3(w, "a", "b", NULL, &e), KL_EIO);
    cr_assert_eq(append3(w, "a", "b", "c", &e), KL_OK, "%s", e.msg);
    kl_writer_destroy(w);
    expect_log("a,b,c");
}

/* A second failure while the first is being resumed, then success: still
 * once. */
Test(retry, a_retry_that_fails_again_is_resumed_later)
{
    kl_writer *w = fenced_writer();
    kl_error e = {0};
    fail_publish = BEFORE;
    cr_assert_eq(append3(w, "a", "b", NULL, &e), KL_EIO);
    fail_publish = BEFORE;
    cr_assert_eq(append3(w, "a", "b", "c", &e), KL_EIO);
    cr_assert_eq(append3(w, "a", "b", "c", &e), KL_OK, "%s", e.msg);
    kl_writer_destroy(w);
    expect_log("a,b,c");
}

/* Other records after a failure: the failed append's outcome stays
 * unknown to its caller (it may or may not be in, as KL_EIO says), and it
 * is never lost from the order: its claim is the tail's, so it is
 * published before the new records. */
Test(retry, other_records_after_a_failure_leave_it_where_it_was)
{
    kl_writer *w = fenced_writer();
    kl_error e = {0};
    fail_publish = BEFORE;
    cr_assert_eq(append3(w, "a", "b", NULL, &e), KL_EIO);
    cr_assert_eq(append3(w, "x", NULL, NULL, &e), KL_OK, "%s", e.msg);
    kl_writer_destroy(w);
    expect_log("a,b,x");
}

/* On a file system without O_TMPFILE or user xattrs the local store's
 * claims are directories; a retry must still recognise its own. */
#include "local_os.h"
Test(retry, a_directory_claim_is_recognised_as_the_attempts_own)
{
    if (T.is_s3) cr_skip_test("directory claims are the local store's");
    atomic_store(&((local_os *)T.os)->dir_claims, 1);
    batch_fails_once_then_flushes(&fail_publish, BEFORE, KL_FENCING_ON);
}

/* The failed attempt outlives the key cache's bound: many other keys
 * appended to before the retry do not evict it. */
Test(retry, the_attempt_survives_the_key_cache_bound)
{
    can_claim();
    kl_store_config c = T.cfg;
    c.fencing = KL_FENCING_ON;
    c.max_cached_keys = 1;
    kl_writer *w;
    kl_error e = {0};
    cr_assert_eq(kl_store_writer_new(faulty, &c, &w, &e), KL_OK, "%s", e.msg);
    fail_publish = BEFORE;
    cr_assert_eq(append3(w, "a", "b", "c", &e), KL_EIO);
    kl_insertion one = kt_rec("o");
    cr_assert_eq(kl_append(w, "ks", "other", &one, 1, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(kl_append(w, "ks", "third", &one, 1, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(append3(w, "a", "b", "c", &e), KL_OK, "%s", e.msg);
    kl_writer_destroy(w);
    expect_log("a,b,c");
}

/* Another writer's claim lies unpublished before the attempt's: the retry
 * publishes it first (as a loser's chain would), then its own.  B's claim
 * of slot 1 stays (its publish fails); A loses slot 1 to it, wins slot 2
 * and fails while publishing B's link, so its claim waits behind B's. */
Test(retry, a_claim_behind_anothers_unpublished_one_is_published_after_it)
{
    can_claim();
    kl_writer *a = store_writer(faulty, KL_FENCING_ON), *b = store_writer(faulty, KL_FENCING_ON);
    kl_error e = {0};
    kl_insertion x = kt_rec("x");
    fail_publish = BEFORE;
    cr_assert_eq(kl_append(b, "ks", "k", &x, 1, &e), KL_EIO);
    fail_publish = BEFORE;
    cr_assert_eq(append3(a, "a", "b", NULL, &e), KL_EIO);
    expect_log(""); /* nothing is published yet */
    cr_assert_eq(append3(a, "a", "b", NULL, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(kl_append(b, "ks", "k", &x, 1, &e), KL_OK, "%s", e.msg);
    kl_writer_destroy(a);
    kl_writer_destroy(b);
    expect_log("x,a,b");
}

/* What the observer (klstorefs' read-your-writes) hears: each object once,
 * even when a retry resumes one object and then fails on the rest. */
static uint64_t observed;
static void observe(const char *ks, const char *key, kl_publish_event ev, const kl_object_meta *m,
                    void *ctx)
{
    (void)ks, (void)key, (void)ctx;
    if (ev != KL_OBJECT_PUBLISHED) return;
    observed += m->last_offset - m->first_offset + 1;
}

Test(retry, a_resumed_object_then_a_failed_rest_then_the_rest)
{
    kl_writer *w = fenced_writer();
    kl_error e = {0};
    cr_assert_eq(kl_store_writer_observe(w, observe, NULL, &e), KL_OK);
    fail_publish = BEFORE;
    cr_assert_eq(append3(w, "a", "b", NULL, &e), KL_EIO);
    cr_assert_eq(observed, 0);
    fail_claim = BEFORE; /* a and b are resumed (a publish), c's claim fails */
    cr_assert_eq(append3(w, "a", "b", "c", &e), KL_EIO);
    cr_assert_eq(observed, 2);
    cr_assert_eq(append3(w, "a", "b", "c", &e), KL_OK, "%s", e.msg);
    cr_assert_eq(observed, 3);
    kl_writer_stats ws;
    cr_assert_eq(kl_store_writer_stats(w, &ws, &e), KL_OK);
    cr_assert_eq(ws.records_written, 3);
    cr_assert_eq(ws.records_duplicate, 0);
    cr_assert_eq(ws.objects, 2);
    kl_writer_destroy(w);
    expect_log("a,b,c");
}

/* ---- on the wire: Ceph RGW behind a proxy that loses answers ---------- */

#include "../bridge/proxy.h"

/* Requests whose answers are lost (those holding `needle`) take effect,
 * and the S3 client's own retries get no answer either, so a flush fails.
 * Once the network is back, the batching writer's retry must find what
 * the failed flush did, not write the records again. */
static void answers_lost_then_a_flush(const char *needle)
{
    if (!T.is_s3) cr_skip_test("needs the S3 server (KL_TEST_STORE=s3)");
    fprintf(stderr, "answers to requests holding '%s' are lost\n", needle);
    const char *ep = getenv("KL_S3_ENDPOINT"), *colon = strrchr(ep, ':');
    cr_assert_not_null(colon);
    ht_proxy *px = ht_proxy_start("127.0.0.1", atoi(colon + 1));
    cr_assert_not_null(px);
    kl_config c;
    kl_config_init(&c);
    free(c.s3.region);
    c.s3.region = strdup(getenv("KL_S3_REGION") ? getenv("KL_S3_REGION") : "us-east-1");
    cr_assert_geq(asprintf(&c.s3.endpoint, "http://127.0.0.1:%d", ht_proxy_port(px)), 0);
    c.s3.bucket_name = strdup(getenv("KL_S3_BUCKET"));
    c.s3.access_key = strdup(getenv("KL_S3_ACCESS_KEY"));
    c.s3.secret_key = strdup(getenv("KL_S3_SECRET_KEY"));
    c.s3.path_style = 1;
    c.s3.use_default_credentials = 0;
    c.s3.max_retries = 1;
    kl_objstore *os;
    kl_error e = {0};
    cr_assert_eq(kl_objstore_s3_new(&c.s3, &os, &e), KL_OK, "%s", e.msg);
    kl_config_free(&c);
    kl_writer *sw = store_writer(os, KL_FENCING_ON), *bw;
    kl_batch_config bc;
    kl_batch_config_init(&bc);
    cr_assert_eq(kl_batch_writer_new(sw, &bc, &bw, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(append3(bw, "0", NULL, NULL, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(kl_flush_all(bw, &e), KL_OK, "%s", e.msg); /* fencing probed */
    cr_assert_eq(append3(bw, "a", "b", "c", &e), KL_OK, "%s", e.msg);
    ht_proxy_deaf(px, needle);
    cr_assert_neq(kl_flush_all(bw, &e), KL_OK, "no answer, no acknowledgement");
    ht_proxy_deaf(px, NULL);
    cr_assert_eq(kl_flush_all(bw, &e), KL_OK, "%s", e.msg);
    kl_writer_destroy(bw);
    kl_writer_destroy(sw);
    kl_os_destroy(os);
    ht_proxy_stop(px);
    expect_log("0,a,b,c");
}

/* The claim's PUT took effect (its retry met it: 412, unheard too). */
Test(retry, a_claim_whose_answers_were_lost_on_the_wire) { answers_lost_then_a_flush("/claim_o"); }

/* The claim was heard, the publishing copy took effect unheard: the retry
 * finds the object published. */
Test(retry, a_copy_whose_answers_were_lost_on_the_wire)
{
    answers_lost_then_a_flush("x-amz-copy-source");
}

/* ---- pipelined objects ------------------------------------------------- */

/* A batching writer whose batches fill at `threshold` bytes, over a fenced
 * store writer behind the injector; records "r000".."r{n-1}", one per
 * append, come faster than the store takes them. */
static kl_writer *pipelined(kl_writer **sw, uint64_t threshold)
{
    *sw = fenced_writer();
    kl_batch_config bc;
    kl_batch_config_init(&bc);
    bc.batch_flush_size_threshold = threshold;
    bc.batch_flush_interval_millis = 60000;
    kl_writer *bw;
    kl_error e = {0};
    cr_assert_eq(kl_batch_writer_new(*sw, &bc, &bw, &e), KL_OK, "%s", e.msg);
    return bw;
}

static char *records(kl_writer *w, int from, int to)
{
    size_t cap = 8 * (size_t)(to + 1), len = 0;
    char *want = calloc(1, cap);
    kl_error e = {0};
    for (int i = from; i < to; i++) {
        char r[16];
        snprintf(r, sizeof r, "r%03d", i);
        if (w) {
            kl_insertion in = kt_rec(r);
            cr_assert_eq(kl_append(w, "ks", "k", &in, 1, &e), KL_OK, "%s", e.msg);
        }
        len += (size_t)snprintf(want + len, cap - len, "%s%s", len ? "," : "", r);
    }
    return want;
}

/* A key written faster than one object at a time: a write holds several
 * objects, and the next one's claim goes out while one is published. */
Test(retry, a_full_batch_goes_out_as_pipelined_objects)
{
    kl_writer *sw, *bw = pipelined(&sw, 40);
    kl_error e = {0};
    atomic_store(&publish_ms, 20);
    atomic_store(&claim_ms, 10);
    free(records(bw, 0, 200));
    cr_assert_eq(kl_flush_all(bw, &e), KL_OK, "%s", e.msg);
    kl_writer_stats ws;
    cr_assert_eq(kl_store_writer_stats(sw, &ws, &e), KL_OK);
    kl_writer_destroy(bw);
    kl_writer_destroy(sw);
    cr_assert_gt(atomic_load(&claims_while_publishing), 0,
                 "no claim overlapped a publish (%lu objects)", (unsigned long)ws.objects);
    /* Objects of about the threshold: 8 records of 4 bytes reach 40 bytes
     * after 10 records; one object per batch would have the same count,
     * but only pipelining overlaps. */
    cr_assert_geq(ws.objects, 200 / 11, "objects: %lu", (unsigned long)ws.objects);
    char *want = records(NULL, 0, 200);
    expect_log(want);
    free(want);
}

/* A fault in the middle of a pipelined write -- a publish lost while the
 * next object's claim is out, or that claim lost -- then the batching
 * writer's retry: every record once. */
static void pipeline_fault(_Atomic int *fault, int mode, _Atomic int *pass, int n_pass)
{
    kl_writer *sw, *bw = pipelined(&sw, 40);
    kl_error e = {0};
    atomic_store(&publish_ms, 10);
    atomic_store(&claim_ms, 2);
    free(records(bw, 0, 30)); /* a first write, then the rest while it runs */
    atomic_store(pass, n_pass);
    atomic_store(fault, mode);
    free(records(bw, 30, 120));
    kl_status st = kl_flush_all(bw, &e);
    for (int i = 0; st != KL_OK && i < 5; i++) st = kl_flush_all(bw, &e);
    cr_assert_eq(st, KL_OK, "%s", e.msg);
    cr_assert_eq(atomic_load(fault), NONE, "the fault was injected");
    cr_assert_gt(atomic_load(&claims_while_publishing), 0, "nothing was pipelined");
    kl_writer_destroy(bw);
    kl_writer_destroy(sw);
    char *want = records(NULL, 0, 120);
    expect_log(want);
    free(want);
}

Test(retry, a_pipelined_publish_lost_before_sending)
{
    pipeline_fault(&fail_publish, BEFORE, &pass_publishes, 4);
}

Test(retry, a_pipelined_publish_whose_answer_was_lost)
{
    pipeline_fault(&fail_publish, AFTER, &pass_publishes, 5);
}

Test(retry, a_pipelined_claim_whose_answer_was_lost)
{
    pipeline_fault(&fail_claim, AFTER, &pass_claims, 5);
}

Test(retry, a_pipelined_claim_never_sent) { pipeline_fault(&fail_claim, BEFORE, &pass_claims, 4); }

/* A pipelined append whose first claim comes back late (its writer paused
 * after deciding to skip the tail check): meanwhile another writer filled
 * that slot, compacted it and deleted its claim once held long enough, so
 * the late claim succeeds.  Checked as after any claim, it is found
 * covered and its records go to the tail -- not published over the other
 * writer's. */
static kl_writer *late_a;
static kl_status late_st;
static void *late_append(void *arg)
{
    (void)arg;
    kl_insertion ins[2] = {kt_rec("a1"), kt_rec("a2")};
    size_t cuts[2] = {1, 1};
    kl_error e = {0};
    late_st = Kl_store_writer_append_objects(late_a, "ks", "k", ins, 2, 0, cuts, 2, &e);
    return NULL;
}

Test(retry, a_pipelined_claim_that_comes_back_late_is_checked)
{
    can_claim();
    kl_store_config c = T.cfg;
    c.fencing = KL_FENCING_ON;
    /* A hold of 1.2 s: the pipelined append decides to skip the check
     * within 200 ms of a0 even on a loaded machine. */
    c.claim_hold_ms = 1200;
    c.compact_records_threshold = 2;
    kl_writer *b;
    kl_error e = {0};
    cr_assert_eq(kl_store_writer_new(faulty, &c, &late_a, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(kl_store_writer_new(T.os, &c, &b, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(append3(late_a, "a0", NULL, NULL, &e), KL_OK, "%s", e.msg);
    atomic_store(&late_claim_ms, 3500);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, late_append, NULL), 0);
    usleep(100000);
    char want[256] = "a0";
    for (int i = 0; i < 14; i++) {
        char r[8];
        snprintf(r, sizeof r, "b%d", i);
        cr_assert_eq(append3(b, r, NULL, NULL, &e), KL_OK, "%s", e.msg);
        snprintf(want + strlen(want), sizeof want - strlen(want), ",%s", r);
        if (i == 9) {
            cr_assert_eq(kl_duty_cycle(b, &e), KL_OK);
            usleep(1500000); /* past the hold: b's claims go at its next rounds */
        }
    }
    cr_assert_eq(kl_duty_cycle(b, &e), KL_OK);
    kl_writer_destroy(b);
    pthread_join(t, NULL);
    cr_assert_eq(late_st, KL_OK);
    kl_writer_destroy(late_a);
    strcat(want, ",a1,a2");
    expect_log(want);
}
