/* keycache.c -- bounded LRU of per-key writer state (see keycache.h):
 * the library's hash table (klstore.h kl_htab) for lookup plus a doubly linked list
 * for recency.  States holding a failed append's attempt sit on a second
 * list, outside the bound: evicting one would let a retry write its
 * records twice, and each stands for records its caller still holds
 * (keycache.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "keycache.h"

typedef struct node {
    char *id;
    kl_keystate *s;
    kl_hnode h;                 /* in the cache's table */
    struct node *older, *newer; /* in its list */
    int pinned;                 /* in `pinned`, not `lru` */
} node;

typedef struct list {
    node *newest, *oldest;
    size_t count;
} list;

struct kl_keycache {
    pthread_mutex_t mu;
    kl_htab table;
    size_t max;
    list lru, pinned;
};

void Kl_keystate_free(kl_keystate *s)
{
    if (!s) return;
    free(s->pending);
    free(s->claims);
    Kl_links_free(s->chain, s->n_chain);
    Kl_attempt_free(s->attempt);
    free(s);
}

void Kl_attempt_free(kl_attempt *a)
{
    if (a) free(a->in_objs);
    free(a);
}

void Kl_keystate_mark_stale(kl_keystate *s)
{
    s->stale = 1;
    s->epoch = 0; /* a merge planned on it must not apply (compact.h) */
}

void Kl_links_free(kl_link *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].claim);
        free(v[i].object);
        free(v[i].tag);
    }
    free(v);
}

int Kl_keystate_add_pending(kl_keystate *s, const kl_object_meta *m)
{
    if (s->n_pending == s->cap_pending) {
        size_t cap = s->cap_pending ? s->cap_pending * 2 : 8;
        kl_object_meta *p = realloc(s->pending, cap * sizeof *p);
        if (!p) return -1;
        s->pending = p;
        s->cap_pending = cap;
    }
    s->pending[s->n_pending++] = *m;
    return 0;
}

int Kl_keystate_add_claim(kl_keystate *s, uint64_t slot, uint64_t seen_ns)
{
    /* Slots come mostly in ascending order: search only when not past all. */
    if (s->n_claims && s->claims[s->n_claims - 1].slot >= slot)
        for (size_t i = s->n_claims; i-- > 0;)
            if (s->claims[i].slot == slot) return 0;
    if (s->n_claims == s->cap_claims) {
        size_t cap = s->cap_claims ? s->cap_claims * 2 : 16;
        kl_claim *p = realloc(s->claims, cap * sizeof *p);
        if (!p) return -1;
        s->claims = p;
        s->cap_claims = cap;
    }
    s->claims[s->n_claims++] = (kl_claim){slot, seen_ns};
    return 0;
}

kl_keycache *Kl_keycache_new(size_t max_keys)
{
    kl_keycache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->max = max_keys ? max_keys : 1;
    if (kl_htab_init(&c->table, 64)) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static uint64_t id_hash(const char *id) { return Kl_hash(id, strlen(id), KL_HASH_SEED); }

static int id_eq(const kl_hnode *h, const void *id)
{
    return strcmp(KL_HENTRY(h, node, h)->id, id) == 0;
}

static void list_unlink(list *l, node *n)
{
    if (n->older)
        n->older->newer = n->newer;
    else
        l->oldest = n->newer;
    if (n->newer)
        n->newer->older = n->older;
    else
        l->newest = n->older;
    l->count--;
}

static void list_push(list *l, node *n)
{
    n->newer = NULL;
    n->older = l->newest;
    if (l->newest)
        l->newest->newer = n;
    else
        l->oldest = n;
    l->newest = n;
    l->count++;
}

/* Removes n from its chain and its list; returns its state. */
static kl_keystate *remove_node(kl_keycache *c, node *n)
{
    kl_htab_remove(&c->table, &n->h);
    list_unlink(n->pinned ? &c->pinned : &c->lru, n);
    kl_keystate *s = n->s;
    free(n->id);
    free(n);
    return s;
}

kl_keystate *Kl_keycache_take(kl_keycache *c, const char *id)
{
    pthread_mutex_lock(&c->mu);
    kl_keystate *s = NULL;
    kl_hnode *h = kl_htab_find(&c->table, id_hash(id), id_eq, id);
    if (h) s = remove_node(c, KL_HENTRY(h, node, h));
    pthread_mutex_unlock(&c->mu);
    return s;
}

void Kl_keycache_put(kl_keycache *c, const char *id, kl_keystate *s)
{
    node *n = calloc(1, sizeof *n);
    if (!n || !(n->id = strdup(id))) {
        free(n);
        Kl_keystate_free(s); /* a cache miss later, not an error */
        return;
    }
    n->s = s;
    n->pinned = s->attempt != NULL;
    pthread_mutex_lock(&c->mu);
    kl_htab_insert(&c->table, &n->h, id_hash(id));
    list_push(n->pinned ? &c->pinned : &c->lru, n);
    kl_keystate *evicted[8];
    int ne = 0;
    while (c->lru.count > c->max && ne < 8) evicted[ne++] = remove_node(c, c->lru.oldest);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < ne; i++) Kl_keystate_free(evicted[i]);
}

size_t Kl_keycache_count(kl_keycache *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->lru.count + c->pinned.count;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void Kl_keycache_each(kl_keycache *c, void (*fn)(const char *id, kl_keystate *s, void *ctx),
                      void *ctx)
{
    pthread_mutex_lock(&c->mu);
    for (node *n = c->lru.newest; n; n = n->older) fn(n->id, n->s, ctx);
    for (node *n = c->pinned.newest; n; n = n->older) fn(n->id, n->s, ctx);
    pthread_mutex_unlock(&c->mu);
}

void Kl_keycache_free(kl_keycache *c)
{
    if (!c) return;
    while (c->lru.oldest) Kl_keystate_free(remove_node(c, c->lru.oldest));
    while (c->pinned.oldest) Kl_keystate_free(remove_node(c, c->pinned.oldest));
    kl_htab_free(&c->table);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
