/* test_batch.c -- Criterion tests of the batching writer (batch_writer.c).
 *
 * Most tests run the batching writer over a *test writer*: a real kl_writer
 * implementation defined here that records every call (records, thread,
 * time), and can be slowed down, held at a gate, or made to fail on demand.
 * That makes the flush triggers, ordering, thread affinity, backpressure
 * and error reporting observable without an object store.  The nonce test
 * runs over the real store writer and the local object store instead.
 *
 * Timing: no test asserts that something happens *quickly*.  Upper bounds
 * are generous timeouts (the suite also runs under ASan and TSan on two
 * cores); lower bounds follow from the implementation's own clocks, and
 * "has not happened yet" is only asserted while the trigger is far away
 * or the inner writer is held at a gate.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "klstore.h"

#define NEVER_MS      100000000ULL /* a flush interval no test reaches */
#define WAIT_LIMIT_MS 20000        /* how long to poll before failing */

/* ------------------------------------------------------------------ */
/* The test writer                                                     */
/* ------------------------------------------------------------------ */

typedef struct rec_entry { /* one record the test writer received */
    char keyspace[64], key[64];
    char *data;
    size_t len;
    int has_timestamp, has_nonce;
    int64_t timestamp;
    kl_u128 nonce;
    size_t call; /* index of the append call */
} rec_entry;

typedef struct call_entry { /* one append call it received */
    char keyspace[64], key[64];
    size_t n;
    pthread_t thread;
    int64_t done_ms; /* monotonic, when the append completed */
} call_entry;

typedef struct test_writer {
    kl_writer base;
    pthread_mutex_t mu;
    pthread_cond_t gate_cv;
    call_entry *calls;
    size_t n_calls, cap_calls;
    rec_entry *recs;
    size_t n_recs, cap_recs;
    size_t attempts; /* append calls, failed ones included */
    size_t flush_key_calls, flush_all_calls, duty_calls, keyspaces;
    char last_flushed_key[64];
    /* fault injection */
    kl_status fail_code; /* KL_OK = succeed */
    int fail_times;      /* -1 = until cleared */
    char fail_key[64];   /* "" = any key */
    unsigned delay_ms;
    int gate_closed;
    int in_append;     /* appends currently inside the writer */
    int max_in_append; /* the most at once */
    char busy[64][64]; /* keys of the appends inside */
    int key_overlap;   /* one key was in two appends at once */
} test_writer;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return p;
    *cap = *cap ? *cap * 2 : 64;
    if (*cap < need) *cap = need;
    p = realloc(p, *cap * elem);
    cr_assert_not_null(p);
    return p;
}

static int should_fail(test_writer *tw, const char *key)
{
    if (tw->fail_code == KL_OK || (tw->fail_key[0] && strcmp(tw->fail_key, key))) return 0;
    if (tw->fail_times > 0 && --tw->fail_times == 0) {
        kl_status code = tw->fail_code;
        tw->fail_code = KL_OK;
        return code;
    }
    return tw->fail_code;
}

static void record_call(test_writer *tw, const char *ks, const char *key, const kl_insertion *ins,
                        size_t n)
{
    tw->calls = grow(tw->calls, &tw->cap_calls, tw->n_calls + 1, sizeof *tw->calls);
    call_entry *c = &tw->calls[tw->n_calls];
    snprintf(c->keyspace, sizeof c->keyspace, "%s", ks);
    snprintf(c->key, sizeof c->key, "%s", key);
    c->n = n;
    c->thread = pthread_self();
    c->done_ms = mono_ms();
    tw->recs = grow(tw->recs, &tw->cap_recs, tw->n_recs + n, sizeof *tw->recs);
    for (size_t i = 0; i < n; i++) {
        rec_entry *r = &tw->recs[tw->n_recs++];
        snprintf(r->keyspace, sizeof r->keyspace, "%s", ks);
        snprintf(r->key, sizeof r->key, "%s", key);
        r->data = malloc(ins[i].len + 1);
        memcpy(r->data, ins[i].data, ins[i].len);
        r->data[ins[i].len] = 0;
        r->len = ins[i].len;
        r->has_timestamp = ins[i].has_timestamp;
        r->timestamp = ins[i].timestamp;
        r->has_nonce = ins[i].has_nonce;
        r->nonce = ins[i].nonce;
        r->call = tw->n_calls;
    }
    tw->n_calls++;
}

static kl_status tw_append(kl_writer *w, const char *ks, const char *key, const kl_insertion *ins,
                           size_t n, kl_error *err)
{
    test_writer *tw = (test_writer *)w;
    pthread_mutex_lock(&tw->mu);
    for (int i = 0; i < tw->in_append && i < 64; i++)
        if (!strcmp(tw->busy[i], key)) tw->key_overlap = 1;
    if (tw->in_append < 64) snprintf(tw->busy[tw->in_append], sizeof tw->busy[0], "%s", key);
    if (++tw->in_append > tw->max_in_append) tw->max_in_append = tw->in_append;
    while (tw->gate_closed) pthread_cond_wait(&tw->gate_cv, &tw->mu);
    unsigned delay = tw->delay_ms;
    pthread_mutex_unlock(&tw->mu);
    if (delay) sleep_ms(delay);
    pthread_mutex_lock(&tw->mu);
    tw->attempts++;
    for (int i = 0; i < tw->in_append && i < 64; i++)
        if (!strcmp(tw->busy[i], key)) {
            memcpy(tw->busy[i], tw->busy[tw->in_append - 1], sizeof tw->busy[0]);
            break;
        }
    tw->in_append--;
    kl_status code = should_fail(tw, key);
    if (!code) record_call(tw, ks, key, ins, n);
    pthread_mutex_unlock(&tw->mu);
    if (code) return kl_seterr(err, code, "test writer: injected failure");
    return KL_OK;
}

static kl_status tw_flush_key(kl_writer *w, const char *ks, const char *key, kl_error *err)
{
    test_writer *tw = (test_writer *)w;
    pthread_mutex_lock(&tw->mu);
    tw->flush_key_calls++;
    snprintf(tw->last_flushed_key, sizeof tw->last_flushed_key, "%s", key);
    pthread_mutex_unlock(&tw->mu);
    return KL_OK;
}

static kl_status tw_flush_all(kl_writer *w, kl_error *err)
{
    test_writer *tw = (test_writer *)w;
    pthread_mutex_lock(&tw->mu);
    tw->flush_all_calls++;
    pthread_mutex_unlock(&tw->mu);
    return KL_OK;
}

static kl_status tw_duty_cycle(kl_writer *w, kl_error *err)
{
    test_writer *tw = (test_writer *)w;
    pthread_mutex_lock(&tw->mu);
    tw->duty_calls++;
    pthread_mutex_unlock(&tw->mu);
    return KL_OK;
}

static kl_status tw_create_keyspace(kl_writer *w, const char *ks, int64_t *created, kl_error *err)
{
    test_writer *tw = (test_writer *)w;
    pthread_mutex_lock(&tw->mu);
    tw->keyspaces++;
    pthread_mutex_unlock(&tw->mu);
    if (created) *created = 42;
    return KL_OK;
}

static void tw_destroy(kl_writer *w)
{
    test_writer *tw = (test_writer *)w;
    for (size_t i = 0; i < tw->n_recs; i++) free(tw->recs[i].data);
    free(tw->recs);
    free(tw->calls);
    pthread_cond_destroy(&tw->gate_cv);
    pthread_mutex_destroy(&tw->mu);
    free(tw);
}

static const kl_writer_ops test_writer_ops = {
    .create_keyspace = tw_create_keyspace,
    .append = tw_append,
    .flush_key = tw_flush_key,
    .flush_all = tw_flush_all,
    .duty_cycle = tw_duty_cycle,
    .destroy = tw_destroy,
};

static test_writer *tw_new(void)
{
    test_writer *tw = calloc(1, sizeof *tw);
    cr_assert_not_null(tw);
    tw->base.ops = &test_writer_ops;
    pthread_mutex_init(&tw->mu, NULL);
    pthread_cond_init(&tw->gate_cv, NULL);
    return tw;
}

static void tw_fail(test_writer *tw, kl_status code, int times, const char *key)
{
    pthread_mutex_lock(&tw->mu);
    tw->fail_code = code;
    tw->fail_times = times;
    snprintf(tw->fail_key, sizeof tw->fail_key, "%s", key ? key : "");
    pthread_mutex_unlock(&tw->mu);
}

static void tw_set_gate(test_writer *tw, int closed)
{
    pthread_mutex_lock(&tw->mu);
    tw->gate_closed = closed;
    pthread_cond_broadcast(&tw->gate_cv);
    pthread_mutex_unlock(&tw->mu);
}

static void tw_set_delay(test_writer *tw, unsigned ms)
{
    pthread_mutex_lock(&tw->mu);
    tw->delay_ms = ms;
    pthread_mutex_unlock(&tw->mu);
}

/* Reads one counter of the test writer under its lock. */
#define TW_GET(tw, field)                                                                          \
    ({                                                                                             \
        pthread_mutex_lock(&(tw)->mu);                                                             \
        __typeof__((tw)->field) v_ = (tw)->field;                                                  \
        pthread_mutex_unlock(&(tw)->mu);                                                           \
        v_;                                                                                        \
    })

/* Records the test writer received for one key. */
static size_t tw_count_key(test_writer *tw, const char *key)
{
    size_t n = 0;
    pthread_mutex_lock(&tw->mu);
    for (size_t i = 0; i < tw->n_recs; i++) n += !strcmp(tw->recs[i].key, key);
    pthread_mutex_unlock(&tw->mu);
    return n;
}

/* Polls until the test writer has completed at least n append calls. */
static int64_t wait_calls(test_writer *tw, size_t n)
{
    int64_t start = mono_ms();
    while (TW_GET(tw, n_calls) < n) {
        cr_assert_lt(mono_ms() - start, WAIT_LIMIT_MS,
                     "timed out waiting for %zu inner appends (have %zu)", n, TW_GET(tw, n_calls));
        sleep_ms(5);
    }
    return mono_ms();
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static kl_batch_config quiet_config(void)
{
    kl_batch_config c;
    kl_batch_config_init(&c);
    c.batch_check_interval_millis = 10;
    c.batch_flush_interval_millis = NEVER_MS;
    c.batch_flush_record_count_threshold = UINT64_MAX;
    c.batch_flush_size_threshold = UINT64_MAX;
    return c;
}

static kl_writer *batch_new(test_writer *tw, const kl_batch_config *c)
{
    kl_writer *w = NULL;
    kl_error err = {0};
    kl_status st = kl_batch_writer_new(&tw->base, c, &w, &err);
    cr_assert_eq(st, KL_OK, "kl_batch_writer_new: %s", err.msg);
    cr_assert_not_null(w);
    return w;
}

static kl_status append_str(kl_writer *w, const char *ks, const char *key, const char *payload,
                            kl_error *err)
{
    kl_insertion ins = {.data = payload, .len = strlen(payload)};
    return w->ops->append(w, ks, key, &ins, 1, err);
}

static void must_append(kl_writer *w, const char *ks, const char *key, const char *payload)
{
    kl_error err = {0};
    kl_status st = append_str(w, ks, key, payload, &err);
    cr_assert_eq(st, KL_OK, "append %s/%s: %s", ks, key, err.msg);
}

static void must_append_size(kl_writer *w, const char *key, size_t len)
{
    char *buf = malloc(len);
    memset(buf, 'x', len);
    kl_insertion ins = {.data = buf, .len = len};
    kl_error err = {0};
    cr_assert_eq(w->ops->append(w, "ks", key, &ins, 1, &err), KL_OK, "%s", err.msg);
    free(buf);
}

static void destroy_both(kl_writer *w, test_writer *tw)
{
    w->ops->destroy(w);
    tw->base.ops->destroy(&tw->base);
}

/* ------------------------------------------------------------------ */
/* Configuration and validation                                        */
/* ------------------------------------------------------------------ */

Test(batch, defaults_match_spec)
{
    kl_batch_config c;
    kl_batch_config_init(&c);
    cr_assert_eq(c.writer_thread_count, 1);
    cr_assert_eq(c.writer_thread_queue_capacity, 0);
    cr_assert_eq(c.batch_check_interval_millis, 100);
    cr_assert_eq(c.batch_flush_interval_millis, 1000);
    cr_assert_eq(c.batch_flush_record_count_threshold, UINT64_MAX);
    cr_assert_eq(c.batch_flush_size_threshold, 1000000);
    cr_assert_eq(c.writes_in_flight, 8);
}

Test(batch, bad_config_is_einval)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    kl_writer *w = (kl_writer *)1;
    kl_error err = {0};
    c.writer_thread_count = 0;
    cr_assert_eq(kl_batch_writer_new(&tw->base, &c, &w, &err), KL_EINVAL);
    cr_assert_null(w);
    cr_assert(strstr(err.msg, "writer_thread_count"), "%s", err.msg);
    c = quiet_config();
    c.batch_check_interval_millis = 0;
    cr_assert_eq(kl_batch_writer_new(&tw->base, &c, &w, &err), KL_EINVAL);
    c = quiet_config();
    c.writes_in_flight = 0;
    cr_assert_eq(kl_batch_writer_new(&tw->base, &c, &w, &err), KL_EINVAL);
    cr_assert(strstr(err.msg, "writes_in_flight"), "%s", err.msg);
    tw->base.ops->destroy(&tw->base);
}

Test(batch, bad_input_is_einval_and_queues_nothing)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    kl_writer *w = batch_new(tw, &c);
    kl_error err = {0};
    char byte = 'x';
    kl_insertion good = {.data = &byte, .len = 1};
    kl_insertion huge = {.data = &byte, .len = (size_t)KL_RECORD_MAX + 1};
    kl_insertion none = {.data = &byte, .len = 1, .has_nonce = 1, .nonce = KL_NONCE_NONE};
    kl_insertion mixed[2] = {good, none};

    cr_assert_eq(w->ops->append(w, "ks", "a/b", &good, 1, &err), KL_EINVAL);
    cr_assert_eq(w->ops->append(w, "", "k", &good, 1, &err), KL_EINVAL);
    cr_assert_eq(w->ops->append(w, "ks", "k", &huge, 1, &err), KL_EINVAL);
    cr_assert_eq(w->ops->append(w, "ks", "k", &none, 1, &err), KL_EINVAL);
    /* A batch with one bad record is rejected whole. */
    cr_assert_eq(w->ops->append(w, "ks", "k", mixed, 2, &err), KL_EINVAL);
    cr_assert_eq(w->ops->flush_all(w, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(TW_GET(tw, n_recs), 0);
    destroy_both(w, tw);
}

Test(batch, create_keyspace_passes_through)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    kl_writer *w = batch_new(tw, &c);
    int64_t created = 0;
    cr_assert_eq(w->ops->create_keyspace(w, "ks", &created, NULL), KL_OK);
    cr_assert_eq(created, 42);
    cr_assert_eq(TW_GET(tw, keyspaces), 1);
    destroy_both(w, tw);
}

/* ------------------------------------------------------------------ */
/* Flush triggers, each on its own                                     */
/* ------------------------------------------------------------------ */

Test(batch, record_count_threshold_flushes)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.batch_flush_record_count_threshold = 5;
    kl_writer *w = batch_new(tw, &c);
    char buf[16];
    for (int i = 0; i < 12; i++) {
        snprintf(buf, sizeof buf, "r%d", i);
        must_append(w, "ks", "k", buf);
    }
    wait_calls(tw, 2);
    /* The remaining 2 records are below every threshold: they stay. */
    sleep_ms(300);
    cr_assert_eq(TW_GET(tw, n_calls), 2);
    cr_assert_eq(tw->calls[0].n, 5);
    cr_assert_eq(tw->calls[1].n, 5);
    cr_assert_eq(w->ops->flush_key(w, "ks", "k", NULL), KL_OK);
    cr_assert_eq(TW_GET(tw, n_calls), 3);
    cr_assert_eq(tw->calls[2].n, 2);
    for (int i = 0; i < 12; i++) {
        snprintf(buf, sizeof buf, "r%d", i);
        cr_assert_str_eq(tw->recs[i].data, buf);
    }
    destroy_both(w, tw);
}

Test(batch, size_threshold_flushes)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.batch_flush_size_threshold = 1000;
    kl_writer *w = batch_new(tw, &c);
    for (int i = 0; i < 9; i++) must_append_size(w, "k", 100);
    sleep_ms(300);
    cr_assert_eq(TW_GET(tw, n_calls), 0, "900 bytes must not flush yet");
    must_append_size(w, "k", 100);
    wait_calls(tw, 1);
    cr_assert_eq(tw->calls[0].n, 10);
    /* One append over the threshold flushes at once, as one object. */
    must_append_size(w, "k", 5000);
    wait_calls(tw, 2);
    cr_assert_eq(tw->calls[1].n, 1);
    destroy_both(w, tw);
}

Test(batch, flush_interval_flushes)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.batch_flush_interval_millis = 600;
    c.batch_check_interval_millis = 20;
    kl_writer *w = batch_new(tw, &c);
    int64_t before = mono_ms();
    must_append(w, "ks", "k", "a");
    must_append(w, "ks", "k", "b");
    must_append(w, "ks", "other", "c");
    int64_t done = wait_calls(tw, 2);
    /* Not before the interval (a property of the implementation's clock,
     * not of scheduling), and as one object per key. */
    cr_assert_geq(tw->calls[0].done_ms - before, 600 - 1, "flushed after %lld ms",
                  (long long)(tw->calls[0].done_ms - before));
    cr_assert_lt(done - before, WAIT_LIMIT_MS);
    size_t k_calls = 0;
    for (size_t i = 0; i < 2; i++)
        if (!strcmp(tw->calls[i].key, "k")) {
            k_calls++;
            cr_assert_eq(tw->calls[i].n, 2);
        }
    cr_assert_eq(k_calls, 1);
    destroy_both(w, tw);
}

Test(batch, duty_cycle_runs_due_flushes)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    /* The threads never check on their own; every batch is due at once. */
    c.batch_check_interval_millis = NEVER_MS;
    c.batch_flush_interval_millis = 0;
    kl_writer *w = batch_new(tw, &c);
    must_append(w, "ks", "k", "a");
    sleep_ms(200);
    cr_assert_eq(TW_GET(tw, n_calls), 0);
    cr_assert_eq(w->ops->duty_cycle(w, NULL), KL_OK);
    cr_assert_eq(TW_GET(tw, n_calls), 1, "duty_cycle returns after the flush");
    cr_assert_eq(TW_GET(tw, duty_calls), 1);
    destroy_both(w, tw);
}

Test(batch, timestamps_taken_at_append_time)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.batch_flush_interval_millis = 300;
    kl_writer *w = batch_new(tw, &c);
    int64_t t0 = kl_now_ms();
    must_append(w, "ks", "k", "untimed");
    int64_t t1 = kl_now_ms();
    kl_insertion given = {.data = "timed", .len = 5, .has_timestamp = 1, .timestamp = -12345};
    cr_assert_eq(w->ops->append(w, "ks", "k", &given, 1, NULL), KL_OK);
    wait_calls(tw, 1);
    cr_assert(tw->recs[0].has_timestamp);
    cr_assert(tw->recs[0].timestamp >= t0 && tw->recs[0].timestamp <= t1,
              "timestamp %lld not within the append call [%lld, %lld]",
              (long long)tw->recs[0].timestamp, (long long)t0, (long long)t1);
    cr_assert_eq(tw->recs[1].timestamp, -12345);
    destroy_both(w, tw);
}

/* ------------------------------------------------------------------ */
/* Ordering and thread affinity                                        */
/* ------------------------------------------------------------------ */

#define PRODUCERS  4
#define ORDER_KEYS 16
#define PER_KEY    300

typedef struct producer_arg {
    kl_writer *w;
    int id;
} producer_arg;

/* Appends PER_KEY records "p<id>:<seq>" to every key, interleaving keys,
 * and flushes now and then so that flushes race with appends. */
static void *producer_main(void *arg)
{
    producer_arg *p = arg;
    char key[16], payload[32];
    for (int seq = 0; seq < PER_KEY; seq++) {
        for (int k = 0; k < ORDER_KEYS; k++) {
            snprintf(key, sizeof key, "k%d", k);
            snprintf(payload, sizeof payload, "p%d:%d", p->id, seq);
            kl_error err;
            kl_status st = append_str(p->w, "ks", key, payload, &err);
            cr_assert_eq(st, KL_OK, "%s", err.msg);
        }
        if (seq % 97 == 0) cr_assert_eq(p->w->ops->flush_key(p->w, "ks", key, NULL), KL_OK);
    }
    return NULL;
}

Test(batch, per_key_order_with_many_threads, .timeout = 300)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.writer_thread_count = 3;
    c.writer_thread_queue_capacity = 8; /* producers block now and then */
    c.batch_flush_record_count_threshold = 7;
    c.batch_flush_interval_millis = 5;
    c.batch_check_interval_millis = 2;
    kl_writer *w = batch_new(tw, &c);
    pthread_t th[PRODUCERS];
    producer_arg args[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        args[i] = (producer_arg){w, i};
        pthread_create(&th[i], NULL, producer_main, &args[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) pthread_join(th[i], NULL);
    cr_assert_eq(w->ops->flush_all(w, NULL), KL_OK);

    /* Per key and producer, the sequence numbers arrive as 0, 1, 2, ...:
     * in append order, each exactly once. */
    int next[ORDER_KEYS][PRODUCERS] = {{0}};
    cr_assert_eq(tw->n_recs, (size_t)PRODUCERS * ORDER_KEYS * PER_KEY);
    for (size_t i = 0; i < tw->n_recs; i++) {
        int k, p, seq;
        cr_assert_eq(sscanf(tw->recs[i].key, "k%d", &k), 1);
        cr_assert_eq(sscanf(tw->recs[i].data, "p%d:%d", &p, &seq), 2);
        cr_assert_eq(seq, next[k][p], "key k%d producer %d: got %d, expected %d", k, p, seq,
                     next[k][p]);
        next[k][p]++;
    }
    size_t max_batch = 0;
    for (size_t i = 0; i < tw->n_calls; i++)
        if (tw->calls[i].n > max_batch) max_batch = tw->calls[i].n;
    cr_assert_leq(max_batch, 7, "the count threshold bounds a batch");
    destroy_both(w, tw);
}

Test(batch, each_key_always_on_the_same_thread)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.writer_thread_count = 4;
    c.writes_in_flight = 1; /* no helpers: writer threads write */
    c.batch_flush_record_count_threshold = 1;
    kl_writer *w = batch_new(tw, &c);
    char key[16];
    enum { KEYS = 64, ROUNDS = 5 };
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < KEYS; k++) {
            snprintf(key, sizeof key, "key-%d", k);
            must_append(w, "ks", key, "x");
        }
        cr_assert_eq(w->ops->flush_all(w, NULL), KL_OK);
    }
    cr_assert_eq(tw->n_calls, KEYS * ROUNDS);
    pthread_t distinct[4];
    size_t n_distinct = 0;
    for (size_t i = 0; i < tw->n_calls; i++) {
        for (size_t j = 0; j < i; j++)
            if (!strcmp(tw->calls[i].key, tw->calls[j].key))
                cr_assert(pthread_equal(tw->calls[i].thread, tw->calls[j].thread),
                          "%s written by two threads", tw->calls[i].key);
        size_t d = 0;
        while (d < n_distinct && !pthread_equal(distinct[d], tw->calls[i].thread)) d++;
        if (d == n_distinct) {
            cr_assert_lt(n_distinct, 4, "more writer threads than configured");
            distinct[n_distinct++] = tw->calls[i].thread;
        }
    }
    /* 64 keys over 4 threads by a stable hash: every thread gets some. */
    cr_assert_eq(n_distinct, 4);
    destroy_both(w, tw);
}

/* A flush of many keys keeps writes_in_flight writes going at once, and
 * never two of one key (its records must reach the store in order); the
 * timer and full batches found in one drain do the same. */
static void *flush_all_thread(void *arg)
{
    kl_writer *w = arg;
    cr_assert_eq(w->ops->flush_all(w, NULL), KL_OK);
    return NULL;
}

/* Waits until exactly `n` appends are inside the test writer. */
static void wait_in_append(test_writer *tw, int n)
{
    int64_t start = mono_ms();
    while (TW_GET(tw, in_append) < n) {
        cr_assert_lt(mono_ms() - start, WAIT_LIMIT_MS, "only %d writes in flight, expected %d",
                     TW_GET(tw, in_append), n);
        sleep_ms(2);
    }
}

Test(batch, writes_of_different_keys_overlap_never_of_one_key)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.writes_in_flight = 4;
    kl_writer *w = batch_new(tw, &c);
    char key[16];
    enum { KEYS = 16, ROUNDS = 3 };
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < KEYS; k++) {
            snprintf(key, sizeof key, "key-%d", k);
            must_append(w, "ks", key, "x");
        }
        /* With the store stuck, a flush has writes_in_flight writes going
         * at once, no more. */
        tw_set_gate(tw, 1);
        pthread_t th;
        pthread_create(&th, NULL, flush_all_thread, w);
        wait_in_append(tw, 4);
        sleep_ms(50);
        cr_assert_eq(TW_GET(tw, in_append), 4);
        tw_set_gate(tw, 0);
        pthread_join(th, NULL);
    }
    /* Full batches (threshold 1) found in one drain go out together too,
     * and a key with a write in flight waits for it. */
    c.batch_flush_record_count_threshold = 1;
    kl_writer *w2 = batch_new(tw, &c);
    tw->delay_ms = 2;
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < KEYS; k++) {
            snprintf(key, sizeof key, "key-%d", k);
            must_append(w2, "ks2", key, "y");
        }
    cr_assert_eq(w2->ops->flush_all(w2, NULL), KL_OK);
    pthread_mutex_lock(&tw->mu);
    cr_assert_eq(tw->max_in_append, 4, "at most writes_in_flight at once");
    cr_assert_not(tw->key_overlap, "a key was in two writes at once");
    cr_assert_eq(tw->n_recs, (size_t)(KEYS * ROUNDS + KEYS * 4));
    pthread_mutex_unlock(&tw->mu);
    w2->ops->destroy(w2);
    destroy_both(w, tw);
}

/* Several writer threads share the pool's writes_in_flight - 1 helpers
 * and each writes too: up to writes_in_flight - 1 + writer_thread_count
 * writes at once in all, as klstore.h says. */
Test(batch, writer_threads_share_the_helpers)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.writer_thread_count = 2;
    c.writes_in_flight = 4;
    kl_writer *w = batch_new(tw, &c);
    char key[16];
    for (int k = 0; k < 32; k++) {
        snprintf(key, sizeof key, "key-%d", k);
        must_append(w, "ks", key, "x");
    }
    tw_set_gate(tw, 1);
    pthread_t th;
    pthread_create(&th, NULL, flush_all_thread, w);
    wait_in_append(tw, 5);
    sleep_ms(50);
    cr_assert_eq(TW_GET(tw, in_append), 5, "3 helpers + 2 writer threads");
    tw_set_gate(tw, 0);
    pthread_join(th, NULL);
    cr_assert_eq(tw->n_recs, 32);
    destroy_both(w, tw);
}

/* ------------------------------------------------------------------ */
/* Backpressure                                                        */
/* ------------------------------------------------------------------ */

#define BP_APPENDS 6

typedef struct bp_state {
    kl_writer *w;
    atomic_int returned;         /* appends that have returned */
    int64_t took_ms[BP_APPENDS]; /* how long each append took */
} bp_state;

static void *bp_producer(void *arg)
{
    bp_state *s = arg;
    char payload[16];
    for (int i = 0; i < BP_APPENDS; i++) {
        snprintf(payload, sizeof payload, "%d", i);
        int64_t t = mono_ms();
        must_append(s->w, "ks", "k", payload);
        s->took_ms[i] = mono_ms() - t;
        atomic_fetch_add(&s->returned, 1);
    }
    return NULL;
}

static void wait_returned(bp_state *s, int n)
{
    int64_t start = mono_ms();
    while (atomic_load(&s->returned) < n) {
        cr_assert_lt(mono_ms() - start, WAIT_LIMIT_MS);
        sleep_ms(5);
    }
}

/* The writer thread is stuck in the inner append (gate closed) writing
 * append 0.  It may also hold append 1, waiting for that write (a key has
 * one write in flight), if append 1 was queued when it drained append 0.
 * The queue (capacity 2) takes the next two; the append after them must
 * block until the gate opens. */
Test(batch, full_queue_blocks_the_caller)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.writer_thread_queue_capacity = 2;
    c.batch_flush_record_count_threshold = 1;
    kl_writer *w = batch_new(tw, &c);
    tw_set_gate(tw, 1);
    bp_state s = {.w = w};
    pthread_t th;
    pthread_create(&th, NULL, bp_producer, &s);
    wait_returned(&s, 3);
    sleep_ms(500);
    int held = atomic_load(&s.returned);
    cr_assert(held == 3 || held == 4, "%d appends returned: the full queue must block", held);
    sleep_ms(200);
    cr_assert_eq(atomic_load(&s.returned), held, "append %d must block on the full queue", held);
    cr_assert_eq(TW_GET(tw, in_append), 1);
    tw_set_gate(tw, 0);
    pthread_join(th, NULL);
    cr_assert_geq(s.took_ms[held], 250, "append %d blocked only %lld ms", held,
                  (long long)s.took_ms[held]);
    cr_assert_eq(w->ops->flush_all(w, NULL), KL_OK);
    cr_assert_eq(tw->n_recs, BP_APPENDS);
    for (int i = 0; i < BP_APPENDS; i++) cr_assert_eq(atoi(tw->recs[i].data), i);
    destroy_both(w, tw);
}

Test(batch, unbounded_queue_never_blocks)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.batch_flush_record_count_threshold = 1;
    kl_writer *w = batch_new(tw, &c);
    tw_set_gate(tw, 1);
    bp_state s = {.w = w};
    pthread_t th;
    pthread_create(&th, NULL, bp_producer, &s);
    pthread_join(th, NULL); /* all returned while the gate is closed */
    cr_assert_eq(TW_GET(tw, n_calls), 0);
    tw_set_gate(tw, 0);
    cr_assert_eq(w->ops->flush_all(w, NULL), KL_OK);
    cr_assert_eq(tw->n_recs, BP_APPENDS);
    destroy_both(w, tw);
}

/* ------------------------------------------------------------------ */
/* Durability of flush_key / flush_all                                 */
/* ------------------------------------------------------------------ */

Test(batch, flush_key_waits_until_written)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    kl_writer *w = batch_new(tw, &c);
    tw_set_delay(tw, 150); /* a slow store */
    must_append(w, "ks", "a", "a1");
    must_append(w, "ks", "a", "a2");
    must_append(w, "ks", "b", "b1");
    cr_assert_eq(w->ops->flush_key(w, "ks", "a", NULL), KL_OK);
    /* On return, a's records were appended (the slow append completed)
     * and the inner flush_key ran; b was left alone. */
    cr_assert_eq(tw_count_key(tw, "a"), 2);
    cr_assert_eq(TW_GET(tw, flush_key_calls), 1);
    cr_assert_str_eq(tw->last_flushed_key, "a");
    cr_assert_eq(tw_count_key(tw, "b"), 0);
    cr_assert_eq(w->ops->flush_all(w, NULL), KL_OK);
    cr_assert_eq(tw_count_key(tw, "b"), 1);
    cr_assert_eq(TW_GET(tw, flush_all_calls), 1);
    /* Flushing a key with nothing pending is fine and cheap. */
    cr_assert_eq(w->ops->flush_key(w, "ks", "never", NULL), KL_OK);
    destroy_both(w, tw);
}

/* flush_key from one thread while another is blocked in the gated inner
 * writer: it must not return before the write completes. */
typedef struct flusher {
    kl_writer *w;
    atomic_int done;
    kl_status st;
} flusher;

static void *flusher_main(void *arg)
{
    flusher *f = arg;
    f->st = f->w->ops->flush_all(f->w, NULL);
    atomic_store(&f->done, 1);
    return NULL;
}

Test(batch, flush_all_blocks_while_store_is_stuck)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.writer_thread_count = 2;
    kl_writer *w = batch_new(tw, &c);
    char key[16];
    for (int k = 0; k < 10; k++) {
        snprintf(key, sizeof key, "k%d", k);
        must_append(w, "ks", key, "x");
    }
    tw_set_gate(tw, 1);
    flusher f = {.w = w};
    pthread_t th;
    pthread_create(&th, NULL, flusher_main, &f);
    sleep_ms(400);
    cr_assert_eq(atomic_load(&f.done), 0, "flush_all returned before the write");
    tw_set_gate(tw, 0);
    pthread_join(th, NULL);
    cr_assert_eq(f.st, KL_OK);
    cr_assert_eq(TW_GET(tw, n_recs), 10);
    destroy_both(w, tw);
}

static void *key_flusher_main(void *arg)
{
    flusher *f = arg;
    f->st = f->w->ops->flush_key(f->w, "ks", "b", NULL);
    atomic_store(&f->done, 1);
    return NULL;
}

/* The writer thread is busy writing "a" when "b" is appended and then
 * flushed: the flush must first take in "b" (queued before it). */
Test(batch, flush_key_covers_appends_queued_while_thread_busy)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.batch_flush_size_threshold = 100; /* "a" is written at once, "b" not */
    kl_writer *w = batch_new(tw, &c);
    tw_set_gate(tw, 1);
    must_append_size(w, "a", 200); /* stuck on "a" */
    pthread_t thb;
    int64_t start = mono_ms();
    while (TW_GET(tw, in_append) == 0) {
        cr_assert_lt(mono_ms() - start, WAIT_LIMIT_MS);
        sleep_ms(5);
    }
    must_append(w, "ks", "b", "b1");
    flusher fb = {.w = w};
    pthread_create(&thb, NULL, key_flusher_main, &fb);
    sleep_ms(200); /* let it post */
    tw_set_gate(tw, 0);
    pthread_join(thb, NULL);
    cr_assert_eq(fb.st, KL_OK);
    cr_assert_eq(tw_count_key(tw, "b"), 1, "flush_key(b) returned before b was written");
    destroy_both(w, tw);
}

/* ------------------------------------------------------------------ */
/* Errors of the inner writer                                          */
/* ------------------------------------------------------------------ */

Test(batch, retryable_error_is_sticky_until_a_retry_succeeds)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    kl_writer *w = batch_new(tw, &c);
    kl_error err = {0};
    tw_fail(tw, KL_EIO, -1, "bad");
    must_append(w, "ks", "bad", "1");
    must_append(w, "ks", "bad", "2");
    must_append(w, "ks", "good", "g1");

    /* The next flush of the key gets the error, naming the key. */
    cr_assert_eq(w->ops->flush_key(w, "ks", "bad", &err), KL_EIO);
    cr_assert_eq(err.code, KL_EIO);
    cr_assert(strstr(err.msg, "ks/bad"), "%s", err.msg);
    cr_assert(strstr(err.msg, "2 batched records"), "%s", err.msg);
    /* So does the next append to it, which queues nothing ... */
    cr_assert_eq(append_str(w, "ks", "bad", "refused", &err), KL_EIO);
    cr_assert(strstr(err.msg, "ks/bad"), "%s", err.msg);
    /* ... and every flush covering it; other keys are unaffected. */
    cr_assert_eq(w->ops->flush_all(w, &err), KL_EIO);
    cr_assert_eq(append_str(w, "ks", "good", "g2", &err), KL_OK);
    cr_assert_eq(w->ops->flush_key(w, "ks", "good", &err), KL_OK, "%s", err.msg);
    cr_assert_eq(tw_count_key(tw, "bad"), 0);

    /* The fault clears: the next flush retries and clears the error. */
    tw_fail(tw, KL_OK, 0, NULL);
    cr_assert_eq(w->ops->flush_key(w, "ks", "bad", &err), KL_OK, "%s", err.msg);
    cr_assert_eq(append_str(w, "ks", "bad", "3", &err), KL_OK, "%s", err.msg);
    cr_assert_eq(w->ops->flush_all(w, &err), KL_OK, "%s", err.msg);

    /* Everything accepted was written exactly once, in order. */
    cr_assert_eq(tw_count_key(tw, "bad"), 3);
    const char *want[] = {"1", "2", "3"};
    size_t j = 0;
    for (size_t i = 0; i < tw->n_recs; i++)
        if (!strcmp(tw->recs[i].key, "bad")) cr_assert_str_eq(tw->recs[i].data, want[j++]);
    destroy_both(w, tw);
}

Test(batch, failed_batch_retried_at_flush_interval_not_in_a_hot_loop)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.batch_check_interval_millis = 5;
    c.batch_flush_interval_millis = 200;
    c.batch_flush_record_count_threshold = 1;
    kl_writer *w = batch_new(tw, &c);
    tw_fail(tw, KL_EIO, -1, NULL);
    int64_t start = mono_ms();
    must_append(w, "ks", "k", "x");
    while (TW_GET(tw, attempts) < 3) {
        cr_assert_lt(mono_ms() - start, WAIT_LIMIT_MS, "no automatic retry");
        sleep_ms(5);
    }
    /* The first attempt is immediate, each retry waits a flush interval. */
    int64_t elapsed = mono_ms() - start;
    cr_assert_geq(elapsed, 2 * 200 - 2, "3 attempts after %lld ms", (long long)elapsed);
    tw_fail(tw, KL_OK, 0, NULL);
    wait_calls(tw, 1); /* a later automatic retry succeeds */
    /* The writer thread records the recovery just after the inner call
     * returns: until then the key still (rightly) refuses appends. */
    kl_error err = {0};
    kl_status st;
    int64_t ok_wait = mono_ms();
    while ((st = append_str(w, "ks", "k", "y", &err)) == KL_EIO) {
        cr_assert_lt(mono_ms() - ok_wait, WAIT_LIMIT_MS, "no recovery: %s", err.msg);
        sleep_ms(1);
    }
    cr_assert_eq(st, KL_OK, "%s", err.msg);
    cr_assert_eq(w->ops->flush_all(w, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(tw_count_key(tw, "k"), 2);
    destroy_both(w, tw);
}

Test(batch, rejected_records_reported_lost_once)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    kl_writer *w = batch_new(tw, &c);
    kl_error err = {0};
    tw_fail(tw, KL_EINVAL, 1, NULL); /* one rejection */
    must_append(w, "ks", "k", "doomed1");
    must_append(w, "ks", "k", "doomed2");
    cr_assert_eq(w->ops->flush_key(w, "ks", "k", &err), KL_ECLOSED);
    cr_assert(strstr(err.msg, "ks/k: 2 batched records were lost"), "%s", err.msg);
    /* The next append learns of the loss too, once (and is not queued). */
    cr_assert_eq(append_str(w, "ks", "k", "refused", &err), KL_ECLOSED);
    cr_assert(strstr(err.msg, "ks/k"), "%s", err.msg);
    cr_assert_eq(append_str(w, "ks", "k", "ok", &err), KL_OK, "%s", err.msg);
    cr_assert_eq(w->ops->flush_key(w, "ks", "k", &err), KL_OK, "%s", err.msg);
    cr_assert_eq(TW_GET(tw, n_recs), 1);
    cr_assert_str_eq(tw->recs[0].data, "ok");
    destroy_both(w, tw);
}

Test(batch, failing_key_refuses_appends_while_others_proceed)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.batch_flush_record_count_threshold = 1;
    kl_writer *w = batch_new(tw, &c);
    kl_error err = {0};
    tw_fail(tw, KL_EIO, -1, "bad");
    must_append(w, "ks", "bad", "1");
    /* Once the failure is known, appends to the key return it. */
    int64_t start = mono_ms();
    kl_status st;
    while ((st = append_str(w, "ks", "bad", "more", &err)) == KL_OK) {
        cr_assert_lt(mono_ms() - start, WAIT_LIMIT_MS);
        sleep_ms(5);
    }
    cr_assert_eq(st, KL_EIO);
    for (int i = 0; i < 5; i++) cr_assert_eq(append_str(w, "ks", "bad", "more", &err), KL_EIO);
    must_append(w, "ks", "fine", "f");
    cr_assert_eq(w->ops->flush_key(w, "ks", "fine", &err), KL_OK, "%s", err.msg);
    tw_fail(tw, KL_OK, 0, NULL);
    cr_assert_eq(w->ops->flush_all(w, &err), KL_OK, "%s", err.msg);
    /* "1" and the appends accepted before the failure was visible; none of
     * the refused ones. */
    size_t bad = 0;
    for (size_t i = 0; i < tw->n_recs; i++)
        if (!strcmp(tw->recs[i].key, "bad"))
            cr_assert_str_eq(tw->recs[i].data, bad++ ? "more" : "1");
    cr_assert_geq(bad, 1);
    destroy_both(w, tw);
}

/* ------------------------------------------------------------------ */
/* Destroy                                                             */
/* ------------------------------------------------------------------ */

Test(batch, destroy_flushes_everything)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    c.writer_thread_count = 2;
    c.writer_thread_queue_capacity = 4;
    kl_writer *w = batch_new(tw, &c);
    char key[16];
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof key, "k%d", i % 3);
        must_append(w, "ks", key, "x");
    }
    w->ops->destroy(w);
    cr_assert_eq(tw->n_recs, 30);
    cr_assert_eq(tw->n_calls, 3, "one object per key");
    cr_assert_eq(tw->flush_all_calls, 1);
    tw->base.ops->destroy(&tw->base);
}

/* Captures what the code under test writes to stderr (fd 2) in a file. */
typedef struct stderr_capture {
    int saved_fd;
    FILE *file;
} stderr_capture;

static stderr_capture capture_stderr(void)
{
    stderr_capture cap = {.file = tmpfile()};
    cr_assert_not_null(cap.file);
    fflush(stderr);
    cap.saved_fd = dup(2);
    dup2(fileno(cap.file), 2);
    return cap;
}

/* Restores stderr and returns what was written (malloc'd). */
static char *end_capture(stderr_capture cap)
{
    fflush(stderr);
    dup2(cap.saved_fd, 2);
    close(cap.saved_fd);
    fseek(cap.file, 0, SEEK_END);
    long n = ftell(cap.file);
    char *text = calloc(1, (size_t)n + 1);
    rewind(cap.file);
    if (fread(text, 1, (size_t)n, cap.file) != (size_t)n) text[0] = 0;
    fclose(cap.file);
    return text;
}

Test(batch, destroy_reports_what_it_cannot_write)
{
    test_writer *tw = tw_new();
    kl_batch_config c = quiet_config();
    kl_writer *w = batch_new(tw, &c);
    tw_fail(tw, KL_EIO, -1, "stuck");
    must_append(w, "ks", "stuck", "1");
    must_append(w, "ks", "stuck", "2");
    must_append(w, "ks", "stuck", "3");
    must_append(w, "ks", "fine", "f");
    stderr_capture cap = capture_stderr();
    w->ops->destroy(w);
    char *log = end_capture(cap);
    cr_assert_eq(tw_count_key(tw, "fine"), 1);
    cr_assert(strstr(log, "ks/stuck: 3 records LOST at shutdown"), "stderr: %s", log);
    free(log);
    tw->base.ops->destroy(&tw->base);
}

/* ------------------------------------------------------------------ */
/* Nonce checking over the real store writer                           */
/* ------------------------------------------------------------------ */

#include <ftw.h>

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* One record per append: a payload, and a nonce (0 = none).  Includes
 * replays of earlier nonces, a replay inside one batch and records
 * without a nonce. */
static const unsigned nonce_script[] = {1, 2, 3, 4, 5, 6, 4,  5,  7,  0,
                                        3, 8, 8, 9, 0, 2, 10, 10, 10, 11};
#define NONCE_SCRIPT_LEN (sizeof nonce_script / sizeof nonce_script[0])

static void append_nonce_script(kl_writer *w, const char *key)
{
    char payload[32];
    for (size_t i = 0; i < NONCE_SCRIPT_LEN; i++) {
        snprintf(payload, sizeof payload, "rec%zu", i);
        kl_insertion ins = {.data = payload,
                            .len = strlen(payload),
                            .has_nonce = nonce_script[i] != 0,
                            .nonce = nonce_script[i]};
        kl_error err = {0};
        cr_assert_eq(w->ops->append(w, "ks", key, &ins, 1, &err), KL_OK, "%s", err.msg);
    }
}

/* The payloads the exactly-once contract keeps: no nonce, or a nonce at
 * least the key's next nonce (which then moves past it). */
static size_t expected_nonce_survivors(char out[][32])
{
    size_t n = 0;
    kl_u128 next = 0;
    for (size_t i = 0; i < NONCE_SCRIPT_LEN; i++) {
        if (nonce_script[i] && nonce_script[i] < next) continue;
        if (nonce_script[i]) next = (kl_u128)nonce_script[i] + 1;
        snprintf(out[n++], 32, "rec%zu", i);
    }
    return n;
}

static void assert_log_is(kl_reader *r, const char *key, char want[][32], size_t n_want)
{
    kl_page page = {0};
    kl_error err = {0};
    kl_start start = {.kind = KL_START_FIRST};
    cr_assert_eq(kl_read_first_page(r, "ks", key, KL_FORWARDS, &start, 1000, &page, &err), KL_OK,
                 "%s", err.msg);
    cr_assert_eq(page.count, n_want, "%s: %zu records, expected %zu", key, page.count, n_want);
    for (size_t i = 0; i < page.count; i++) {
        cr_assert_eq(page.records[i].offset, i + 1);
        cr_assert_eq(page.records[i].len, strlen(want[i]));
        cr_assert(!memcmp(page.records[i].data, want[i], page.records[i].len),
                  "%s offset %zu: expected %s", key, i + 1, want[i]);
    }
    kl_page_free(&page);
}

Test(batch, nonce_dedup_unchanged_by_batching)
{
    char dir[] = "/tmp/kl-test-batch-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    kl_error err = {0};
    kl_objstore *os = NULL;
    kl_writer *store = NULL, *batched = NULL;
    kl_reader *reader = NULL;
    kl_store_config sc;
    kl_store_config_init(&sc);
    cr_assert_eq(kl_objstore_local_new(dir, &os, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_store_writer_new(os, &sc, &store, &err), KL_OK, "%s", err.msg);
    kl_batch_config c = quiet_config();
    c.batch_flush_record_count_threshold = 3; /* replays span batches */
    c.writer_thread_count = 2;
    cr_assert_eq(kl_batch_writer_new(store, &c, &batched, &err), KL_OK, "%s", err.msg);

    append_nonce_script(batched, "batched");
    cr_assert_eq(batched->ops->flush_all(batched, &err), KL_OK, "%s", err.msg);
    append_nonce_script(store, "direct"); /* the same, unbatched */

    char want[NONCE_SCRIPT_LEN][32];
    size_t n_want = expected_nonce_survivors(want);
    cr_assert_eq(n_want, 13);
    cr_assert_eq(kl_store_reader_new(os, &sc, &reader, &err), KL_OK, "%s", err.msg);
    assert_log_is(reader, "direct", want, n_want);
    assert_log_is(reader, "batched", want, n_want);

    /* Replaying the whole script after a restart keeps nothing new. */
    batched->ops->destroy(batched);
    cr_assert_eq(kl_batch_writer_new(store, &c, &batched, &err), KL_OK, "%s", err.msg);
    append_nonce_script(batched, "batched");
    batched->ops->destroy(batched);
    kl_key_meta meta;
    int exists = 0;
    cr_assert_eq(kl_read_key_metadata(reader, "ks", "batched", &exists, &meta, &err), KL_OK, "%s",
                 err.msg);
    cr_assert(exists);
    /* The records without a nonce are accepted again; nothing else. */
    cr_assert_eq(meta.next_offset, n_want + 2 + 1);

    kl_reader_destroy(reader);
    kl_writer_destroy(store);
    kl_os_destroy(os);
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
