/* qarena.c -- bump-pointer chunks for queued appends (see qarena.h for
 * why).  Each thread carves from its current chunk (found through a
 * pthread key, whose destructor lets go of it when the thread exits); a
 * chunk counts the appends carved from it plus one for the thread still
 * carving, and goes to a small pool of warm chunks when the count drops to
 * zero. */
#define _GNU_SOURCE
#include "qarena.h"
#include "recycle.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#define CHUNK_BYTES (256u << 10)
#define BIG_BYTES   (32u << 10)
#define POOL_MAX    16

typedef struct qchunk {
    atomic_size_t refs;
    struct qchunk *next; /* in the pool */
    size_t used;         /* carved bytes (owning thread only) */
    _Alignas(16) unsigned char data[];
} qchunk;

/* The chunk of a big block: it came from the recycle pool (recycle.h). */
static char big_block;
#define BIG_CHUNK ((void *)&big_block)

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static qchunk *pool;
static size_t pool_n;
static pthread_key_t current;
static pthread_once_t current_once = PTHREAD_ONCE_INIT;

static void chunk_unref(qchunk *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
    pthread_mutex_lock(&pool_mu);
    if (pool_n < POOL_MAX) {
        c->next = pool;
        pool = c;
        pool_n++;
        c = NULL;
    }
    pthread_mutex_unlock(&pool_mu);
    free(c);
}

static void thread_exit(void *c) { chunk_unref(c); }
static void make_key(void) { (void)pthread_key_create(&current, thread_exit); }

/* A chunk with one reference (the carving thread's), warm if possible. */
static qchunk *chunk_get(void)
{
    pthread_mutex_lock(&pool_mu);
    qchunk *c = pool;
    if (c) {
        pool = c->next;
        pool_n--;
    }
    pthread_mutex_unlock(&pool_mu);
    if (!c) {
        c = malloc(sizeof *c + CHUNK_BYTES);
        if (!c) return NULL;
        Kl_populate(c->data, CHUNK_BYTES);
    }
    atomic_init(&c->refs, 1);
    c->used = 0;
    return c;
}

void *Kl_qarena_alloc(size_t size, void **chunk)
{
    size = (size + 15) & ~(size_t)15;
    *chunk = NULL;
    if (size > BIG_BYTES) {
        /* A many-record append (a FUSE write, a Kafka burst): a pooled
         * large buffer, warm after the first few. */
        void *p = Kl_recycle_get(size);
        if (p) *chunk = BIG_CHUNK;
        return p;
    }
    if (pthread_once(&current_once, make_key) != 0) return malloc(size);
    qchunk *c = pthread_getspecific(current);
    if (c && c->used + size > CHUNK_BYTES &&
        atomic_load_explicit(&c->refs, memory_order_acquire) == 1)
        c->used = 0; /* everything carved from it is gone: reuse */
    if (!c || c->used + size > CHUNK_BYTES) {
        qchunk *fresh = chunk_get();
        if (!fresh || pthread_setspecific(current, fresh) != 0) {
            if (fresh) chunk_unref(fresh);
            return malloc(size);
        }
        if (c) chunk_unref(c);
        c = fresh;
    }
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    void *p = c->data + c->used;
    c->used += size;
    *chunk = c;
    return p;
}

void Kl_qarena_free(void *p, void *chunk)
{
    if (chunk == BIG_CHUNK)
        Kl_recycle_put(p);
    else if (chunk)
        chunk_unref(chunk);
    else
        free(p);
}
