/* objcache.c -- fetched data objects, rendered as text, and readahead.
 *
 * Reads map to whole objects (kl_read_object fetches and decodes one), so
 * the unit of caching is an object: its text (records joined by '\n') and
 * the text position of each record (for time-travel views).  Objects are
 * immutable under their (first, last) offsets -- a compaction writes a new
 * object with a new range -- so a cached object never goes stale and the
 * cache needs no invalidation, only an LRU byte bound (-o cache_mb).
 *
 * Each object is fetched once however many readers want it: the first
 * caller inserts a LOADING entry and fetches without the lock; the others
 * wait on the condition variable.  Readahead threads use the same path, so
 * a reader that catches up with a prefetch simply waits for it.
 *
 * Text buffers are recycled (a few spares are kept), and on a local store
 * an object a read has gone through to its end is dropped at once (the
 * kernel's page cache already holds the file): first-touch faults of fresh
 * memory cost more than rendering the text, so a scan should run in the
 * same few warm buffers rather than fill the cache with new ones. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fs.h"

enum { LOADING = 1, READY = 2, FAILED = 3, DROPPED = 4 };
#define SPARES    8
#define QUEUE_MAX 64
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

typedef struct ra_item {
    node *k;
    kl_object_meta m;
} ra_item;

struct objcache {
    klfs *fs;
    pthread_mutex_t mu;
    pthread_cond_t loaded;
    cobj **buckets;
    size_t nbuckets;
    size_t bytes, max_bytes;
    cobj lru; /* sentinel: lnext = most recent */
    /* readahead */
    pthread_cond_t work;
    ra_item q[QUEUE_MAX];
    size_t qhead, qlen;
    pthread_t *threads;
    unsigned nthreads;
    int stop;
    /* recycled text buffers (under mu) */
    uint8_t *spare[SPARES];
    size_t spare_cap[SPARES];
    unsigned nspare;
};

static size_t bucket(objcache *c, node *k, uint64_t first, uint64_t last)
{
    uint64_t h = (uintptr_t)k * 0x9e3779b97f4a7c15ull ^ first * 0xff51afd7ed558ccdull ^ last;
    return (size_t)(h ^ (h >> 29)) % c->nbuckets;
}

static cobj *find(objcache *c, node *k, uint64_t first, uint64_t last)
{
    for (cobj *o = c->buckets[bucket(c, k, first, last)]; o; o = o->hnext)
        if (o->k == k && o->first == first && o->last == last) return o;
    return NULL;
}

static void unhash(objcache *c, cobj *o)
{
    cobj **p = &c->buckets[bucket(c, o->k, o->first, o->last)];
    while (*p && *p != o) p = &(*p)->hnext;
    if (*p) *p = o->hnext;
}

static void lru_unlink(cobj *o)
{
    if (o->lnext) {
        o->lnext->lprev = o->lprev;
        o->lprev->lnext = o->lnext;
    }
    o->lnext = o->lprev = NULL;
}

static void lru_front(objcache *c, cobj *o)
{
    lru_unlink(o);
    o->lnext = c->lru.lnext;
    o->lprev = &c->lru;
    c->lru.lnext->lprev = o;
    c->lru.lnext = o;
}

static size_t footprint(const cobj *o)
{
    return o->len + (o->last - o->first + 2) * sizeof(uint64_t) + sizeof *o;
}

/* Keeps the text buffer as a spare when there is room (mu held). */
static void cobj_free(objcache *c, cobj *o)
{
    if (o->text && c->nspare < SPARES) {
        c->spare[c->nspare] = o->text;
        c->spare_cap[c->nspare++] = o->cap;
    } else {
        free(o->text);
    }
    free(o->recpos);
    free(o);
}

/* Drops least recently used objects nobody holds until under the bound. */
static void evict(objcache *c)
{
    cobj *o = c->lru.lprev;
    while (c->bytes > c->max_bytes && o != &c->lru) {
        cobj *prev = o->lprev;
        if (o->refs == 0) {
            unhash(c, o);
            lru_unlink(o);
            c->bytes -= footprint(o);
            cobj_free(c, o);
        }
        o = prev;
    }
}

/* A text buffer of at least len bytes: the smallest fitting spare, else
 * fresh memory, populated in one call rather than faulted in a page at a
 * time (MADV_POPULATE_WRITE, Linux >= 5.14; older kernels take the
 * faults). */
static uint8_t *text_alloc(objcache *c, size_t len, size_t *cap)
{
    pthread_mutex_lock(&c->mu);
    unsigned best = SPARES;
    for (unsigned i = 0; i < c->nspare; i++)
        if (c->spare_cap[i] >= len && (best == SPARES || c->spare_cap[i] < c->spare_cap[best]))
            best = i;
    if (best < SPARES) {
        uint8_t *p = c->spare[best];
        *cap = c->spare_cap[best];
        c->spare[best] = c->spare[--c->nspare];
        c->spare_cap[best] = c->spare_cap[c->nspare];
        pthread_mutex_unlock(&c->mu);
        return p;
    }
    pthread_mutex_unlock(&c->mu);
    uint8_t *p = malloc(len ? len : 1);
    uintptr_t page = 4096, from = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t to = ((uintptr_t)p + len) & ~(page - 1);
    if (p && to > from + 16 * page) (void)madvise((void *)from, to - from, MADV_POPULATE_WRITE);
    *cap = len ? len : 1;
    return p;
}

/* Fetches the object and renders its text (no lock held). */
static kl_status fetch(klfs *fs, cobj *o, const kl_object_meta *m, kl_error *err)
{
    kl_page pg;
    kl_status st =
        kl_read_object(fs->os, &fs->cfg.store, o->k->parent->name, o->k->name, m, &pg, err);
    if (st) return st;
    size_t total = 0;
    for (size_t i = 0; i < pg.count; i++) total += pg.records[i].len + 1;
    uint64_t want = m->last_offset - m->first_offset + 1;
    if (pg.count != want || total + pg.count * (uint64_t)KLFS_TEXT_SHRINK != m->size) {
        /* The name promises size - 39 * records text bytes; the byte map of
         * the whole key relies on it. */
        st = kl_seterr(err, KL_EBADDATA, "object %s/%s o%llu-o%llu: body does not match its name",
                       o->k->parent->name, o->k->name, (unsigned long long)m->first_offset,
                       (unsigned long long)m->last_offset);
    }
    if (st == KL_OK) {
        o->text = text_alloc(fs->cache, total, &o->cap);
        o->recpos = malloc((pg.count + 1) * sizeof *o->recpos);
        if (!o->text || !o->recpos) st = kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    size_t at = 0;
    for (size_t i = 0; st == KL_OK && i < pg.count; i++) {
        o->recpos[i] = at;
        if (pg.records[i].len) memcpy(o->text + at, pg.records[i].data, pg.records[i].len);
        at += pg.records[i].len;
        o->text[at++] = '\n';
    }
    if (st == KL_OK) {
        o->recpos[pg.count] = at;
        o->len = at;
    }
    kl_page_free(&pg);
    return st;
}

static void release_locked(objcache *c, cobj *o)
{
    if (--o->refs == 0 && (o->state == FAILED || o->state == DROPPED))
        cobj_free(c, o);
    else if (o->refs == 0)
        evict(c);
}

/* `read` tells a read (counted as a cache hit or miss) from a prefetch. */
static kl_status get(objcache *c, node *k, const kl_object_meta *m, cobj **out, kl_error *err,
                     int read)
{
    pthread_mutex_lock(&c->mu);
    cobj *o = find(c, k, m->first_offset, m->last_offset);
    if (read) {
        if (o)
            KLFS_COUNT(c->fs, cache_hits, 1);
        else
            KLFS_COUNT(c->fs, cache_misses, 1);
    }
    if (o) {
        o->refs++;
        while (o->state == LOADING) pthread_cond_wait(&c->loaded, &c->mu);
        /* DROPPED while we waited for it to load: its text is still good
         * for us, but it is no longer the cache's to list. */
        kl_status st = o->state == READY || o->state == DROPPED ? KL_OK : o->st;
        if (st == KL_OK) {
            if (o->state == READY) lru_front(c, o);
            *out = o;
        } else {
            release_locked(c, o);
            kl_seterr(err, st, "fetching object failed: %s", kl_status_str(st));
        }
        pthread_mutex_unlock(&c->mu);
        return st;
    }
    o = calloc(1, sizeof *o);
    if (!o) {
        pthread_mutex_unlock(&c->mu);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    o->k = k;
    o->first = m->first_offset;
    o->last = m->last_offset;
    o->state = LOADING;
    o->refs = 1;
    size_t b = bucket(c, k, o->first, o->last);
    o->hnext = c->buckets[b];
    c->buckets[b] = o;
    pthread_mutex_unlock(&c->mu);

    kl_status st = fetch(c->fs, o, m, err);

    pthread_mutex_lock(&c->mu);
    if (st == KL_OK) {
        o->state = READY;
        c->bytes += footprint(o);
        lru_front(c, o);
        *out = o;
    } else {
        o->state = FAILED;
        o->st = st;
        unhash(c, o);
        release_locked(c, o);
    }
    pthread_cond_broadcast(&c->loaded);
    if (st == KL_OK) evict(c);
    pthread_mutex_unlock(&c->mu);
    return st;
}

kl_status objcache_get(objcache *c, node *k, const kl_object_meta *m, cobj **out, kl_error *err)
{
    return get(c, k, m, out, err, 1);
}

void objcache_usage(objcache *c, size_t *bytes, size_t *objects)
{
    pthread_mutex_lock(&c->mu);
    *bytes = c->bytes;
    *objects = 0;
    for (cobj *o = c->lru.lnext; o && o != &c->lru; o = o->lnext) (*objects)++;
    pthread_mutex_unlock(&c->mu);
}

void objcache_done(objcache *c, cobj *o)
{
    pthread_mutex_lock(&c->mu);
    if (o->state == READY) {
        unhash(c, o);
        lru_unlink(o);
        c->bytes -= footprint(o);
        o->state = DROPPED;
    }
    release_locked(c, o);
    pthread_mutex_unlock(&c->mu);
}

void objcache_put(objcache *c, cobj *o)
{
    pthread_mutex_lock(&c->mu);
    release_locked(c, o);
    pthread_mutex_unlock(&c->mu);
}

void objcache_prefetch(objcache *c, node *k, const kl_object_meta *m)
{
    pthread_mutex_lock(&c->mu);
    if (c->nthreads && c->qlen < QUEUE_MAX && !find(c, k, m->first_offset, m->last_offset)) {
        c->q[(c->qhead + c->qlen++) % QUEUE_MAX] = (ra_item){k, *m};
        pthread_cond_signal(&c->work);
    }
    pthread_mutex_unlock(&c->mu);
}

static void *ra_main(void *arg)
{
    objcache *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && c->qlen == 0) pthread_cond_wait(&c->work, &c->mu);
        if (c->stop) break;
        ra_item it = c->q[c->qhead];
        c->qhead = (c->qhead + 1) % QUEUE_MAX;
        c->qlen--;
        pthread_mutex_unlock(&c->mu);
        cobj *o;
        kl_error err = {0};
        /* A failed prefetch is harmless: the reader fetches (and reports)
         * it again. */
        if (get(c, it.k, &it.m, &o, &err, 0) == KL_OK) objcache_put(c, o);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

objcache *objcache_new(klfs *fs, size_t max_bytes, unsigned threads)
{
    objcache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fs = fs;
    c->max_bytes = max_bytes;
    c->nbuckets = 4096;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    c->threads = calloc(threads ? threads : 1, sizeof *c->threads);
    if (!c->buckets || !c->threads) {
        free(c->buckets);
        free(c->threads);
        free(c);
        return NULL;
    }
    c->lru.lnext = c->lru.lprev = &c->lru;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->loaded, NULL);
    pthread_cond_init(&c->work, NULL);
    for (unsigned i = 0; i < threads; i++)
        if (pthread_create(&c->threads[c->nthreads], NULL, ra_main, c) == 0) c->nthreads++;
    return c;
}

void objcache_free(objcache *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->work);
    pthread_mutex_unlock(&c->mu);
    for (unsigned i = 0; i < c->nthreads; i++) pthread_join(c->threads[i], NULL);
    for (cobj *o = c->lru.lnext; o != &c->lru;) {
        cobj *next = o->lnext;
        cobj_free(c, o);
        o = next;
    }
    while (c->nspare) free(c->spare[--c->nspare]);
    pthread_cond_destroy(&c->loaded);
    pthread_cond_destroy(&c->work);
    pthread_mutex_destroy(&c->mu);
    free(c->buckets);
    free(c->threads);
    free(c);
}
