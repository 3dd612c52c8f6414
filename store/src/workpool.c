/* workpool.c -- a few helper threads for Kl_workpool_run (workpool.h).
 *
 * A set of jobs is an index range on the caller's stack.  Callers and
 * helpers claim indices under one mutex: the jobs are store writes that
 * take a round trip or an fsync each, so a lock per job costs nothing
 * next to them, and it keeps the code obviously correct. */
#include <pthread.h>
#include <stdlib.h>

#include "workpool.h"

typedef struct jobset {
    struct jobset *next;
    void (*fn)(void *ctx, size_t i);
    void *ctx;
    size_t n, next_i, done;
    pthread_cond_t all_done;
} jobset;

struct kl_workpool {
    pthread_mutex_t mu;
    pthread_cond_t work;
    jobset *sets; /* sets with jobs left, oldest first */
    int stop;
    size_t n_threads;
    pthread_t *threads;
};

/* Claims the next job of the oldest set that has one; under p->mu. */
static jobset *claim(kl_workpool *p, size_t *i)
{
    jobset *s = p->sets;
    if (!s) return NULL;
    *i = s->next_i++;
    if (s->next_i == s->n) p->sets = s->next; /* fully claimed: unlink */
    return s;
}

static void finish(jobset *s)
{
    if (++s->done == s->n) pthread_cond_signal(&s->all_done);
}

static void *helper(void *arg)
{
    kl_workpool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        size_t i;
        jobset *s = claim(p, &i);
        if (!s) {
            if (p->stop) break;
            pthread_cond_wait(&p->work, &p->mu);
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        s->fn(s->ctx, i);
        pthread_mutex_lock(&p->mu);
        finish(s);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

kl_workpool *Kl_workpool_new(size_t helpers)
{
    kl_workpool *p = calloc(1, sizeof *p);
    if (!p || !(p->threads = calloc(helpers ? helpers : 1, sizeof *p->threads))) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    while (p->n_threads < helpers &&
           pthread_create(&p->threads[p->n_threads], NULL, helper, p) == 0)
        p->n_threads++;
    if (p->n_threads == 0) {
        Kl_workpool_free(p);
        return NULL;
    }
    return p;
}

void Kl_workpool_run(kl_workpool *p, void (*fn)(void *ctx, size_t i), void *ctx, size_t n)
{
    if (!p || n < 2) {
        for (size_t i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    jobset s = {.fn = fn, .ctx = ctx, .n = n};
    pthread_cond_init(&s.all_done, NULL);
    pthread_mutex_lock(&p->mu);
    jobset **tail = &p->sets;
    while (*tail) tail = &(*tail)->next;
    *tail = &s;
    pthread_cond_broadcast(&p->work);
    /* Work on our own set only: another caller's jobs are its business,
     * and this caller's latency should not grow with theirs. */
    while (s.next_i < s.n) {
        size_t i = s.next_i++;
        if (s.next_i == s.n) { /* unlink s: fully claimed */
            for (jobset **q = &p->sets; *q; q = &(*q)->next)
                if (*q == &s) {
                    *q = s.next;
                    break;
                }
        }
        pthread_mutex_unlock(&p->mu);
        fn(ctx, i);
        pthread_mutex_lock(&p->mu);
        finish(&s);
    }
    while (s.done < s.n) pthread_cond_wait(&s.all_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&s.all_done);
}

void Kl_workpool_free(kl_workpool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
