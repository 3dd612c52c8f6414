/* compactor.c -- the store writer's compaction thread (compactor.h).
 *
 * Why one thread per writer and not a pool: compaction is background
 * upkeep, a bounded step per key, and one thread at a time keeps a
 * writer's own merges of a key from racing each other (other writers'
 * merges are handled by the protocol, FORMAT.md).  Keys queue in arrival
 * order, so a busy key cannot starve the others. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "compactor.h"

typedef struct job {
    struct job *next;
    char dir[];
} job;

struct kl_compactor {
    kl_compact_fn fn;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t work, idle;
    job *head, *tail;
    int running; /* fn is running */
    int stop;
    pthread_t thread;
};

static job *pop(kl_compactor *c)
{
    job *j = c->head;
    if (j && !(c->head = j->next)) c->tail = NULL;
    return j;
}

static void *loop(void *arg)
{
    kl_compactor *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        job *j = pop(c);
        if (!j) {
            pthread_cond_broadcast(&c->idle);
            if (c->stop) break;
            pthread_cond_wait(&c->work, &c->mu);
            continue;
        }
        c->running = 1;
        pthread_mutex_unlock(&c->mu);
        c->fn(c->ctx, j->dir);
        free(j);
        pthread_mutex_lock(&c->mu);
        c->running = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

kl_compactor *Kl_compactor_new(kl_compact_fn fn, void *ctx)
{
    kl_compactor *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fn = fn;
    c->ctx = ctx;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->work, NULL);
    pthread_cond_init(&c->idle, NULL);
    if (pthread_create(&c->thread, NULL, loop, c) != 0) {
        pthread_cond_destroy(&c->idle);
        pthread_cond_destroy(&c->work);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
    }
    return c;
}

int Kl_compactor_queue(kl_compactor *c, const char *dir)
{
    size_t len = strlen(dir) + 1;
    job *j = malloc(sizeof *j + len);
    if (!j) return -1;
    j->next = NULL;
    memcpy(j->dir, dir, len);
    pthread_mutex_lock(&c->mu);
    if (c->tail)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void Kl_compactor_wait(kl_compactor *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->head || c->running) pthread_cond_wait(&c->idle, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

void Kl_compactor_free(kl_compactor *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->idle);
    pthread_cond_destroy(&c->work);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
