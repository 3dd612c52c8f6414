/* objcache.c -- byte-bounded LRU of decoded objects (see objcache.h).
 * A linear list is enough: the cache holds tens to hundreds of ~1 MiB
 * objects, and a lookup costs far less than the GET it saves. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "objcache.h"

struct kl_objcache {
    pthread_mutex_t mu;
    uint64_t max_bytes, bytes;
    kl_cobj *newest, *oldest;
};

kl_objcache *kl_objcache_new(uint64_t max_bytes) {
    kl_objcache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    return c;
}

static void cobj_free(kl_cobj *o) {
    free(o->name);
    free(o->body);
    free(o->recs);
    free(o);
}

static void unlink_obj(kl_objcache *c, kl_cobj *o) {
    if (o->older) o->older->newer = o->newer; else c->oldest = o->newer;
    if (o->newer) o->newer->older = o->older; else c->newest = o->older;
    o->older = o->newer = NULL;
    o->cached = 0;
    c->bytes -= o->len;
}

static void push_newest(kl_objcache *c, kl_cobj *o) {
    o->older = c->newest;
    o->newer = NULL;
    if (c->newest) c->newest->newer = o; else c->oldest = o;
    c->newest = o;
    o->cached = 1;
    c->bytes += o->len;
}

/* Drops least recently used objects over the bound; returns those no
 * page references so they can be freed outside the lock. */
static kl_cobj *evict(kl_objcache *c) {
    kl_cobj *dead = NULL;
    while (c->bytes > c->max_bytes && c->oldest) {
        kl_cobj *o = c->oldest;
        unlink_obj(c, o);
        if (--o->refs == 0) {
            o->newer = dead;
            dead = o;
        }
    }
    return dead;
}

static void free_list(kl_cobj *o) {
    while (o) {
        kl_cobj *next = o->newer;
        cobj_free(o);
        o = next;
    }
}

kl_status kl_objcache_get(kl_objcache *c, kl_objstore *os, const char *name,
                          const kl_object_meta *m, kl_cobj **out, kl_error *err) {
    pthread_mutex_lock(&c->mu);
    for (kl_cobj *o = c->newest; o; o = o->older) {
        if (strcmp(o->name, name) == 0) {
            unlink_obj(c, o);
            push_newest(c, o);
            o->refs++;
            pthread_mutex_unlock(&c->mu);
            *out = o;
            return KL_OK;
        }
    }
    pthread_mutex_unlock(&c->mu);

    kl_cobj *o = calloc(1, sizeof *o);
    if (!o || !(o->name = strdup(name))) {
        free(o);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    kl_status st = kl_os_get(os, name, 0, UINT64_MAX, &o->body, &o->len, err);
    if (st == KL_OK) st = kl_codec_decode(o->body, o->len, m, name, &o->recs, &o->n, err);
    if (st) {
        cobj_free(o);
        return st;
    }
    o->refs = 1; /* the caller's */
    pthread_mutex_lock(&c->mu);
    kl_cobj *dead = NULL;
    if (o->len <= c->max_bytes) {
        o->refs++; /* the cache's */
        push_newest(c, o);
        dead = evict(c);
    }
    pthread_mutex_unlock(&c->mu);
    free_list(dead);
    *out = o;
    return KL_OK;
}

void kl_objcache_release(kl_objcache *c, kl_cobj *o) {
    if (!o) return;
    pthread_mutex_lock(&c->mu);
    int last = --o->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (last) cobj_free(o);
}

void kl_objcache_free(kl_objcache *c) {
    if (!c) return;
    while (c->oldest) {
        kl_cobj *o = c->oldest;
        unlink_obj(c, o);
        if (--o->refs == 0) cobj_free(o);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}
