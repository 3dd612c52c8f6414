/* objcache.c -- byte-bounded LRU of fetched objects (see objcache.h):
 * the library's hash table (klstore.h kl_htab) finds an object by name, a doubly
 * linked list keeps recency.  An object is in both or in neither. */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "objcache.h"

struct kl_objcache {
    pthread_mutex_t mu;
    pthread_cond_t loaded;
    uint64_t max_bytes, bytes;
    uint64_t hits, misses, objects;
    kl_cobj *newest, *oldest;
    kl_htab by_name;
};

kl_objcache *Kl_objcache_new(uint64_t max_bytes)
{
    kl_objcache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (kl_htab_init(&c->by_name, 64)) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->loaded, NULL);
    c->max_bytes = max_bytes;
    return c;
}

void Kl_cobj_retain(kl_cobj *o) { atomic_fetch_add(&o->refs, 1); }

void Kl_cobj_release(kl_cobj *o)
{
    if (!o || atomic_fetch_sub(&o->refs, 1) != 1) return;
    free(o->name);
    if (o->body.release) o->body.release(&o->body);
    free(o);
}

static void free_body(kl_mapping *m)
{
    free((void *)m->data);
    *m = (kl_mapping){0};
}

/* The whole object: mapped when the store can, else a plain GET. */
/* A GET asks for one byte more than the name promises: a longer body is
 * then seen (and reported as corrupt by fill) without reading all of it. */
static kl_status load_body(kl_objstore *os, const char *name, uint64_t size, kl_mapping *out,
                           kl_error *err)
{
    if (os->ops->map) return os->ops->map(os, name, out, err);
    uint8_t *data = NULL;
    size_t len = 0;
    kl_status st = kl_os_get(os, name, 0, size + 1, &data, &len, err);
    if (st) return st;
    *out = (kl_mapping){.data = data, .len = len, .release = free_body};
    return KL_OK;
}

static void unlink_obj(kl_objcache *c, kl_cobj *o)
{
    o->linked = 0;
    if (o->older)
        o->older->newer = o->newer;
    else
        c->oldest = o->newer;
    if (o->newer)
        o->newer->older = o->older;
    else
        c->newest = o->older;
    o->older = o->newer = NULL;
    c->bytes -= o->len;
    c->objects--;
    kl_htab_remove(&c->by_name, &o->h);
}

static void push_newest(kl_objcache *c, kl_cobj *o)
{
    o->older = c->newest;
    o->newer = NULL;
    if (c->newest)
        c->newest->newer = o;
    else
        c->oldest = o;
    c->newest = o;
    c->bytes += o->len;
    c->objects++;
    o->linked = 1;
    kl_htab_insert(&c->by_name, &o->h, o->name_hash);
}

/* What an object costs the cache: its body (records are never decoded
 * into arrays of their own, objwalk.h). */
static size_t charge(const kl_cobj *o) { return o->body.len; }

static kl_cobj *cobj_new(const char *name)
{
    kl_cobj *o = calloc(1, sizeof *o);
    if (!o || !(o->name = strdup(name))) {
        free(o);
        return NULL;
    }
    o->name_hash = Kl_hash(name, strlen(name), KL_HASH_SEED);
    atomic_init(&o->refs, 1);
    atomic_init(&o->hint, 0);
    return o;
}

/* Fetches into o (whose len stays 0 until it is complete) and checks what
 * can be checked without reading records: the size and the record count
 * its name promises. */
static kl_status fill(kl_cobj *o, kl_objstore *os, const kl_object_meta *m, kl_error *err)
{
    kl_status st = load_body(os, o->name, m->size, &o->body, err);
    if (st) return st;
    size_t len = o->body.len;
    if (m->size != len)
        return kl_seterr(err, KL_EBADDATA, "%s: body has %zu bytes, its name says %" PRIu64,
                         o->name, len, m->size);
    o->first = m->first_offset;
    o->count = m->last_offset - m->first_offset + 1;
    if (m->last_offset < m->first_offset || o->count > len / KL_RECORD_OVERHEAD)
        return kl_seterr(err, KL_EBADDATA,
                         "%s: %zu bytes cannot hold the %" PRIu64 " records its name says", o->name,
                         len, o->count);
    return KL_OK;
}

kl_status Kl_cobj_fetch(kl_objstore *os, const char *name, const kl_object_meta *m, kl_cobj **out,
                        kl_error *err)
{
    kl_cobj *o = cobj_new(name);
    if (!o) return kl_seterr(err, KL_ENOMEM, "out of memory");
    kl_status st = fill(o, os, m, err);
    if (st) {
        Kl_cobj_release(o);
        return st;
    }
    o->len = charge(o);
    *out = o;
    return KL_OK;
}

static int name_eq(const kl_hnode *h, const void *name)
{
    return strcmp(KL_HENTRY(h, kl_cobj, h)->name, name) == 0;
}

static kl_cobj *find(kl_objcache *c, const char *name)
{
    kl_hnode *h =
        kl_htab_find(&c->by_name, Kl_hash(name, strlen(name), KL_HASH_SEED), name_eq, name);
    return h ? KL_HENTRY(h, kl_cobj, h) : NULL;
}

kl_status Kl_objcache_get(kl_objcache *c, kl_objstore *os, const char *name,
                          const kl_object_meta *m, kl_cobj **out, kl_error *err)
{
    pthread_mutex_lock(&c->mu);
    kl_cobj *o = find(c, name);
    if (o) {
        c->hits++;
        Kl_cobj_retain(o);
        while (o->loading) pthread_cond_wait(&c->loaded, &c->mu);
        if (o->load_st == KL_OK) {
            if (o->linked) {
                unlink_obj(c, o);
                push_newest(c, o);
            }
            pthread_mutex_unlock(&c->mu);
            *out = o;
            return KL_OK;
        }
        /* The other fetch failed: fetch ourselves, to get our own error. */
        pthread_mutex_unlock(&c->mu);
        Kl_cobj_release(o);
        return Kl_cobj_fetch(os, name, m, out, err);
    }
    c->misses++;
    /* Publish a placeholder so concurrent readers wait for this fetch. */
    o = cobj_new(name);
    if (!o) {
        pthread_mutex_unlock(&c->mu);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    o->loading = 1;
    Kl_cobj_retain(o); /* the cache's reference */
    push_newest(c, o);
    pthread_mutex_unlock(&c->mu);

    kl_status st = fill(o, os, m, err);

    kl_cobj *dead = NULL;
    pthread_mutex_lock(&c->mu);
    o->loading = 0;
    o->load_st = st;
    if (o->linked) {
        unlink_obj(c, o);
        if (st == KL_OK && charge(o) <= c->max_bytes) {
            o->len = charge(o);
            push_newest(c, o);
        } else {
            o->newer = dead;
            dead = o;
        }
    }
    if (!o->len) o->len = charge(o);
    while (c->bytes > c->max_bytes && c->oldest) {
        kl_cobj *old = c->oldest;
        unlink_obj(c, old);
        old->newer = dead; /* reuse the link for the release list */
        dead = old;
    }
    pthread_cond_broadcast(&c->loaded);
    pthread_mutex_unlock(&c->mu);
    while (dead) {
        kl_cobj *next = dead->newer;
        Kl_cobj_release(dead);
        dead = next;
    }
    if (st) {
        Kl_cobj_release(o);
        return st;
    }
    *out = o;
    return KL_OK;
}

void Kl_objcache_stats(kl_objcache *c, kl_cache_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = (kl_cache_stats){
        .hits = c->hits, .misses = c->misses, .bytes = c->bytes, .objects = c->objects};
    pthread_mutex_unlock(&c->mu);
}

void Kl_objcache_drop(kl_objcache *c, kl_cobj *o)
{
    pthread_mutex_lock(&c->mu);
    int linked = o->linked && !o->loading;
    if (linked) unlink_obj(c, o);
    pthread_mutex_unlock(&c->mu);
    if (linked) Kl_cobj_release(o); /* the cache's reference */
}

void Kl_objcache_free(kl_objcache *c)
{
    if (!c) return;
    while (c->oldest) {
        kl_cobj *o = c->oldest;
        unlink_obj(c, o);
        Kl_cobj_release(o);
    }
    kl_htab_free(&c->by_name);
    pthread_cond_destroy(&c->loaded);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
