/* keycache.c -- bounded LRU of per-key writer state (see keycache.h):
 * a chained hash table for lookup plus a doubly linked list for recency. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "keycache.h"

typedef struct node {
    char *id;
    kl_keystate *s;
    struct node *hnext;          /* hash chain */
    struct node *older, *newer;  /* recency list */
} node;

struct kl_keycache {
    pthread_mutex_t mu;
    node **table;
    size_t nbuckets, count, max;
    node *newest, *oldest;
};

void Kl_keystate_free(kl_keystate *s) {
    if (!s) return;
    free(s->pending);
    free(s->claims);
    free(s);
}

int Kl_keystate_add_pending(kl_keystate *s, const kl_object_meta *m) {
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

int Kl_keystate_add_claim(kl_keystate *s, uint64_t slot) {
    if (s->n_claims == s->cap_claims) {
        size_t cap = s->cap_claims ? s->cap_claims * 2 : 16;
        uint64_t *p = realloc(s->claims, cap * sizeof *p);
        if (!p) return -1;
        s->claims = p;
        s->cap_claims = cap;
    }
    s->claims[s->n_claims++] = slot;
    return 0;
}

kl_keycache *Kl_keycache_new(size_t max_keys) {
    kl_keycache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->max = max_keys ? max_keys : 1;
    c->nbuckets = 64;
    c->table = calloc(c->nbuckets, sizeof *c->table);
    if (!c->table) { free(c); return NULL; }
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static node **slot(kl_keycache *c, const char *id) {
    return &c->table[Kl_hash(id, strlen(id), KL_HASH_SEED) & (c->nbuckets - 1)];
}

static void unlink_recency(kl_keycache *c, node *n) {
    if (n->older) n->older->newer = n->newer; else c->oldest = n->newer;
    if (n->newer) n->newer->older = n->older; else c->newest = n->older;
}

/* Removes n from its chain and the recency list; returns its state. */
static kl_keystate *remove_node(kl_keycache *c, node *n) {
    node **pp = slot(c, n->id);
    while (*pp != n) pp = &(*pp)->hnext;
    *pp = n->hnext;
    unlink_recency(c, n);
    c->count--;
    kl_keystate *s = n->s;
    free(n->id);
    free(n);
    return s;
}

static void grow(kl_keycache *c) {
    size_t nb = c->nbuckets * 2;
    node **t = calloc(nb, sizeof *t);
    if (!t) return; /* longer chains, still correct */
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (node *n = c->table[i], *next; n; n = next) {
            next = n->hnext;
            node **s = &t[Kl_hash(n->id, strlen(n->id), KL_HASH_SEED) & (nb - 1)];
            n->hnext = *s;
            *s = n;
        }
    }
    free(c->table);
    c->table = t;
    c->nbuckets = nb;
}

kl_keystate *Kl_keycache_take(kl_keycache *c, const char *id) {
    pthread_mutex_lock(&c->mu);
    kl_keystate *s = NULL;
    for (node *n = *slot(c, id); n; n = n->hnext) {
        if (strcmp(n->id, id) == 0) {
            s = remove_node(c, n);
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return s;
}

void Kl_keycache_put(kl_keycache *c, const char *id, kl_keystate *s) {
    node *n = calloc(1, sizeof *n);
    if (!n || !(n->id = strdup(id))) {
        free(n);
        Kl_keystate_free(s); /* a cache miss later, not an error */
        return;
    }
    n->s = s;
    pthread_mutex_lock(&c->mu);
    if (c->count >= c->nbuckets) grow(c);
    node **sl = slot(c, id);
    n->hnext = *sl;
    *sl = n;
    n->older = c->newest;
    if (c->newest) c->newest->newer = n; else c->oldest = n;
    c->newest = n;
    c->count++;
    kl_keystate *evicted[8];
    int ne = 0;
    while (c->count > c->max && ne < 8) evicted[ne++] = remove_node(c, c->oldest);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < ne; i++) Kl_keystate_free(evicted[i]);
}

size_t Kl_keycache_count(kl_keycache *c) {
    pthread_mutex_lock(&c->mu);
    size_t n = c->count;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void Kl_keycache_each(kl_keycache *c, void (*fn)(const char *id, kl_keystate *s, void *ctx),
                      void *ctx) {
    pthread_mutex_lock(&c->mu);
    for (node *n = c->newest; n; n = n->older) fn(n->id, n->s, ctx);
    pthread_mutex_unlock(&c->mu);
}

void Kl_keycache_free(kl_keycache *c) {
    if (!c) return;
    while (c->oldest) Kl_keystate_free(remove_node(c, c->oldest));
    free(c->table);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
