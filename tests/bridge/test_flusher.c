/* test_flusher.c -- the bridge's flush thread (bridge/flusher.c), against
 * a fake writer whose flush_all is slow: handing a flush over does not
 * block, the result is not reported before the flush ends, waiting gets
 * it (status, message, duration), a second flush works, and stopping
 * waits for a flush still running.  The checkpoint logic around it
 * (commit only after success) is covered end to end in test_e2e.c. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "bridge.h"
#include "log.h"

typedef struct fake_writer {
    kl_writer base;
    int delay_ms;
    kl_status result;
    atomic_int flushes;
} fake_writer;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static kl_status fake_flush_all(kl_writer *w, kl_error *err)
{
    fake_writer *f = (fake_writer *)w;
    sleep_ms(f->delay_ms);
    atomic_fetch_add(&f->flushes, 1);
    if (f->result) snprintf(err->msg, sizeof err->msg, "fake failure %d", atomic_load(&f->flushes));
    err->code = f->result;
    return f->result;
}

static const kl_writer_ops fake_ops = {.flush_all = fake_flush_all};

Test(bridge_flusher, flush_runs_beside_the_caller, .timeout = 30)
{
    fake_writer w = {.base = {&fake_ops}, .delay_ms = 300, .result = KL_OK};
    br_flusher f;
    kl_status st;
    kl_error e;
    long long ms;
    cr_assert_eq(br_flusher_start(&f), 0);
    cr_assert_eq(br_flusher_result(&f, 1, &st, &e, &ms), 0, "nothing handed over yet");

    long long t0 = kl_mono_ms();
    br_flusher_begin(&f, &w.base);
    cr_assert(f.busy);
    cr_assert_lt(kl_mono_ms() - t0, 100, "handing over blocked");
    cr_assert_eq(br_flusher_result(&f, 0, &st, &e, &ms), 0, "reported before it ended");
    cr_assert(f.busy);
    cr_assert_eq(br_flusher_result(&f, 1, &st, &e, &ms), 1);
    cr_assert_eq(st, KL_OK);
    cr_assert_geq(ms, 250);
    cr_assert_geq(kl_mono_ms() - t0, 300);
    cr_assert_not(f.busy);
    cr_assert_eq(atomic_load(&w.flushes), 1);

    /* A failure comes back with its message. */
    w.result = KL_EIO;
    w.delay_ms = 10;
    br_flusher_begin(&f, &w.base);
    cr_assert_eq(br_flusher_result(&f, 1, &st, &e, &ms), 1);
    cr_assert_eq(st, KL_EIO);
    cr_assert_str_eq(e.msg, "fake failure 2");

    /* Stopping waits for the flush in progress. */
    w.result = KL_OK;
    w.delay_ms = 200;
    br_flusher_begin(&f, &w.base);
    br_flusher_stop(&f);
    cr_assert_eq(atomic_load(&w.flushes), 3);
}

Test(bridge_flusher, polling_sees_the_end, .timeout = 30)
{
    fake_writer w = {.base = {&fake_ops}, .delay_ms = 50, .result = KL_OK};
    br_flusher f;
    kl_status st = KL_EIO;
    kl_error e;
    long long ms;
    cr_assert_eq(br_flusher_start(&f), 0);
    br_flusher_begin(&f, &w.base);
    int polls = 0;
    while (!br_flusher_result(&f, 0, &st, &e, &ms)) {
        polls++;
        sleep_ms(5);
    }
    cr_assert_gt(polls, 0);
    cr_assert_eq(st, KL_OK);
    br_flusher_stop(&f);
}
