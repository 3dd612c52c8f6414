/* flusher.c -- runs the periodic kl_flush_all on a thread of its own.
 *
 * Why: a flush writes every pending batch to the store and can take
 * seconds (S3 retries: max_retries x request_timeout_ms).  Run on the main
 * thread it stops everything else: no records are parsed or appended,
 * librdkafka's queue fills up and fetching stops, and a flush longer than
 * max.poll.interval.ms gets the consumer thrown out of its group.  So the
 * main thread only hands the flush over and keeps polling and appending;
 * checkpoint.c picks the result up and commits the snapshot of positions
 * it took before handing over (the writer's flush covers every append
 * made before it started, later appends are not in the snapshot).
 *
 * One flush at a time; the thread only ever touches the writer it was
 * given and the result fields, under the mutex. */
#include <string.h>

#include "bridge.h"
#include "log.h"

static void *flusher_main(void *arg)
{
    br_flusher *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->stop && !f->requested) pthread_cond_wait(&f->cv, &f->mu);
        if (!f->requested) /* stop, after a flush handed over */
            break;
        kl_writer *w = f->w;
        f->requested = 0;
        pthread_mutex_unlock(&f->mu);
        kl_error e = {0};
        long long t0 = kl_mono_ms();
        kl_status st = kl_flush_all(w, &e);
        long long ms = kl_mono_ms() - t0;
        pthread_mutex_lock(&f->mu);
        f->status = st;
        f->err = e;
        f->ms = ms;
        f->done = 1;
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

int br_flusher_start(br_flusher *f)
{
    memset(f, 0, sizeof *f);
    if (pthread_mutex_init(&f->mu, NULL)) return -1;
    if (pthread_cond_init(&f->cv, NULL)) {
        pthread_mutex_destroy(&f->mu);
        return -1;
    }
    if (pthread_create(&f->thread, NULL, flusher_main, f)) {
        pthread_cond_destroy(&f->cv);
        pthread_mutex_destroy(&f->mu);
        return -1;
    }
    f->running = 1;
    return 0;
}

void br_flusher_stop(br_flusher *f)
{
    if (!f->running) return;
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL); /* runs a flush handed over first */
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    f->running = 0;
}

void br_flusher_begin(br_flusher *f, kl_writer *w)
{
    pthread_mutex_lock(&f->mu);
    f->w = w;
    f->requested = 1;
    f->done = 0;
    f->busy = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

int br_flusher_result(br_flusher *f, int wait, kl_status *st, kl_error *e, long long *ms)
{
    if (!f->busy) return 0;
    pthread_mutex_lock(&f->mu);
    while (wait && !f->done) pthread_cond_wait(&f->cv, &f->mu);
    int done = f->done;
    if (done) {
        *st = f->status;
        *e = f->err;
        *ms = f->ms;
        f->done = 0;
        f->busy = 0;
        f->w = NULL;
    }
    pthread_mutex_unlock(&f->mu);
    return done;
}
