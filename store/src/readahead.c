/* readahead.c -- parallel prefetch of objects into the object cache
 * (see readahead.h).  A fixed ring of hints and a few worker threads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "readahead.h"

#define RING 64

typedef struct hint {
    char *name;
    kl_object_meta m;
} hint;

struct kl_readahead {
    kl_objcache *cache;
    kl_objstore *os;
    pthread_mutex_t mu;
    pthread_cond_t more;
    hint ring[RING];
    size_t head, count;
    int stop;
    int nthreads;
    pthread_t *threads;
};

static void *worker(void *arg)
{
    kl_readahead *ra = arg;
    pthread_mutex_lock(&ra->mu);
    for (;;) {
        while (!ra->stop && ra->count == 0) pthread_cond_wait(&ra->more, &ra->mu);
        if (ra->stop) break;
        hint h = ra->ring[ra->head];
        ra->head = (ra->head + 1) % RING;
        ra->count--;
        pthread_mutex_unlock(&ra->mu);
        kl_cobj *o = NULL;
        /* Errors are the walker's to report when it asks for the object. */
        if (Kl_objcache_get(ra->cache, ra->os, h.name, &h.m, &o, NULL) == KL_OK) Kl_cobj_release(o);
        free(h.name);
        pthread_mutex_lock(&ra->mu);
    }
    pthread_mutex_unlock(&ra->mu);
    return NULL;
}

kl_readahead *Kl_readahead_new(kl_objcache *c, kl_objstore *os, int threads)
{
    if (threads <= 0) return NULL;
    kl_readahead *ra = calloc(1, sizeof *ra);
    if (!ra || !(ra->threads = calloc((size_t)threads, sizeof *ra->threads))) {
        free(ra);
        return NULL;
    }
    ra->cache = c;
    ra->os = os;
    pthread_mutex_init(&ra->mu, NULL);
    pthread_cond_init(&ra->more, NULL);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&ra->threads[i], NULL, worker, ra) == 0) ra->nthreads++;
    if (ra->nthreads == 0) {
        Kl_readahead_free(ra);
        return NULL;
    }
    return ra;
}

void Kl_readahead_push(kl_readahead *ra, const char *name, const kl_object_meta *m)
{
    if (!ra) return;
    char *copy = strdup(name);
    if (!copy) return;
    pthread_mutex_lock(&ra->mu);
    if (ra->count == RING) {
        pthread_mutex_unlock(&ra->mu);
        free(copy);
        return;
    }
    ra->ring[(ra->head + ra->count) % RING] = (hint){copy, *m};
    ra->count++;
    pthread_cond_signal(&ra->more);
    pthread_mutex_unlock(&ra->mu);
}

void Kl_readahead_free(kl_readahead *ra)
{
    if (!ra) return;
    pthread_mutex_lock(&ra->mu);
    ra->stop = 1;
    pthread_cond_broadcast(&ra->more);
    pthread_mutex_unlock(&ra->mu);
    for (int i = 0; i < ra->nthreads; i++) pthread_join(ra->threads[i], NULL);
    for (size_t i = 0; i < ra->count; i++) free(ra->ring[(ra->head + i) % RING].name);
    pthread_cond_destroy(&ra->more);
    pthread_mutex_destroy(&ra->mu);
    free(ra->threads);
    free(ra);
}
