/* writer.c -- the store writer: the spec's S3StoreWriter over any object
 * store.
 *
 * One kl_append = one data object holding the accepted records,
 * published at the key's tail through a claimed slot (tail.h), so that any
 * number of writers may share a key (append.h: the object, a failed
 * append's retry, and the batching writer's appends of several objects,
 * pipelined).  Per-key state (next offset, next
 * nonce, prior pointer, objects since the watermark) lives in a bounded
 * LRU; a miss reloads it from the store.  Appends to one key are
 * serialised by a striped mutex within a writer; across writers the slot
 * claims order them.  Compaction runs on the writer's compactor thread
 * (compactor.h), so an append never waits for a merge: it only queues
 * the key. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "append.h"
#include "buf.h"
#include "claimgc.h"
#include "codec.h"
#include "compact.h"
#include "compactor.h"
#include "keycache.h"
#include "keyindex.h"
#include "layout.h"
#include "recycle.h"
#include "tail.h"
#include "writer.h"

#define STRIPES 64

typedef struct store_writer {
    kl_writer base;
    kl_objstore *os;
    kl_store_config cfg;
    char *prefix;
    kl_keycache *cache;
    kl_compactor *compactor; /* NULL: compaction runs inline, after the append */
    pthread_mutex_t stripes[STRIPES];
    pthread_mutex_t probe_mu;
    atomic_int probed;      /* the fencing decision is made, without a refusal */
    int fenced;             /* appends claim slots (tail.h) */
    kl_error refusal;       /* fencing=on on a store that cannot fence */
    kl_publish_fn observer; /* kl_store_writer_observe */
    void *observer_ctx;
    /* kl_store_writer_stats (relaxed atomics) */
    _Atomic uint64_t appends, written, duplicates, objects, failures, copied;
} store_writer;

static store_writer *SW(kl_writer *w) { return (store_writer *)w; }

static kl_status sw_create_keyspace(kl_writer *w, const char *keyspace, int64_t *created,
                                    kl_error *err)
{
    kl_status st = kl_validate_name("keyspace", keyspace, err);
    if (st) return st;
    char *name = Kl_layout_marker(SW(w)->prefix, keyspace);
    if (!name) return kl_seterr(err, KL_ENOMEM, "out of memory");
    int64_t now = kl_now_ms();
    char body[64];
    int n = snprintf(body, sizeof body, "[keyspace]\ncreated=%" PRId64 "\n", now);
    st = kl_os_put(SW(w)->os, name, body, (size_t)n, KL_PUT_IF_ABSENT, err);
    free(name);
    if (st == KL_EEXIST) return kl_seterr(err, KL_EEXIST, "keyspace '%s' already exists", keyspace);
    if (st == KL_OK && created) *created = now;
    return st;
}

static kl_status check_insertions(const kl_insertion *ins, size_t n, kl_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (ins[i].len > KL_RECORD_MAX)
            return kl_seterr(err, KL_EINVAL, "record %zu is %zu bytes, the maximum is %u", i,
                             ins[i].len, (unsigned)KL_RECORD_MAX);
        if (ins[i].has_nonce && ins[i].nonce == KL_NONCE_NONE)
            return kl_seterr(err, KL_EINVAL,
                             "record %zu uses nonce 2^128-1, which "
                             "the format reserves for 'no nonce'",
                             i);
        if (ins[i].len && !ins[i].data)
            return kl_seterr(err, KL_EINVAL, "record %zu has length but no data", i);
    }
    return KL_OK;
}

static pthread_mutex_t *stripe_of(store_writer *sw, const char *dir)
{
    return &sw->stripes[Kl_hash(dir, strlen(dir), KL_HASH_SEED) % STRIPES];
}

/* Puts s back into the cache, marked stale when st says so. */
static void put_state(store_writer *sw, const char *dir, kl_keystate *s, kl_status st)
{
    if (st == KL_ENOTFOUND) Kl_keystate_mark_stale(s); /* another writer compacted */
    Kl_keycache_put(sw->cache, dir, s);
}

/* One compaction step for a key (compact.h), on the compactor thread: the
 * key's lock is held only while its state is read or updated, never
 * during the merge's GETs and PUT.  A failure is logged and retried when
 * the key is next appended to; the append it followed stays acknowledged
 * (retrying that would duplicate records without nonces).  Returns 1 when
 * the key has more to do (its state is then marked queued). */
static int compact_step(store_writer *sw, const char *dir)
{
    pthread_mutex_t *mu = stripe_of(sw, dir);
    kl_merge m = {0};
    kl_error err = {0};
    kl_status st = KL_OK;
    int again = 0;
    pthread_mutex_lock(mu);
    kl_keystate *s = Kl_keycache_take(sw->cache, dir);
    if (s) {
        s->compact_queued = 0;
        /* A stale state is planned on once the next append reloaded it. */
        if (!s->stale) st = Kl_compact_plan(sw->os, &sw->cfg, dir, s, sw->fenced, &m, &err);
        put_state(sw, dir, s, st);
    }
    pthread_mutex_unlock(mu);
    if (!st && m.n_parts) {
        st = Kl_compact_merge(sw->os, dir, &m, &err);
        int written = st == KL_OK;
        pthread_mutex_lock(mu);
        if ((s = Kl_keycache_take(sw->cache, dir))) {
            if (!st) st = Kl_compact_apply(sw->os, &sw->cfg, dir, s, sw->fenced, &m, &err);
            /* More to do (a long history, or appends meanwhile): go on. */
            if (!st && !s->compact_queued && (again = Kl_compact_due(&sw->cfg, s)))
                s->compact_queued = 1;
            put_state(sw, dir, s, st);
        }
        pthread_mutex_unlock(mu);
        kl_error cerr;
        if (written && Kl_compact_cleanup(sw->os, dir, &m, sw->fenced, &cerr) != KL_OK)
            kl_log(KL_LOG_WARNING, "compaction of '%s': %s", dir, cerr.msg);
    }
    if (st && st != KL_ENOTFOUND)
        kl_log(KL_LOG_WARNING, "compaction of '%s' failed, will retry: %s", dir, err.msg);
    Kl_merge_free(&m);
    return again;
}

/* The compactor's function: a step, queued again while the key has more
 * to do.  Without a thread (or memory to queue) the steps run here, at
 * most 64 of them (the next append goes on). */
static void compact_key(void *ctx, const char *dir)
{
    store_writer *sw = ctx;
    for (int steps = 0;; steps++) {
        if (!compact_step(sw, dir)) return;
        if (sw->compactor && Kl_compactor_queue(sw->compactor, dir) == 0) return;
        if (steps == 64) break;
    }
    pthread_mutex_t *mu = stripe_of(sw, dir);
    pthread_mutex_lock(mu); /* not queued after all: the next append will */
    kl_keystate *s = Kl_keycache_take(sw->cache, dir);
    if (s) {
        s->compact_queued = 0;
        Kl_keycache_put(sw->cache, dir, s);
    }
    pthread_mutex_unlock(mu);
}

/* After an append, under the key's lock: queues the key for compaction if
 * it has work.  Returns 1 when the caller must run compact_key itself
 * (no compactor thread, or no memory to queue). */
static int schedule_compaction(store_writer *sw, const char *dir, kl_keystate *s)
{
    if (!s || s->compact_queued || !Kl_compact_due(&sw->cfg, s)) return 0;
    if (!sw->compactor || Kl_compactor_queue(sw->compactor, dir) != 0) return 1;
    s->compact_queued = 1;
    return 0;
}

/* Whether this writer claims slots: decided once, at the first append
 * (readers never write, so opening a store costs no probe).  A server
 * that ignores If-None-Match would let two claims of one slot both
 * succeed, so the probe claims one name twice: the second must fail. */
static kl_status decide_fencing(store_writer *sw, kl_error *err)
{
    pthread_mutex_lock(&sw->probe_mu);
    kl_status st = KL_OK;
    char why[KL_ERRMSG_MAX] = "";
    if (!atomic_load_explicit(&sw->probed, memory_order_relaxed) && !sw->refusal.code) {
        int can = kl_os_can_claim(sw->os) && sw->cfg.fencing != KL_FENCING_OFF;
        if (can) {
            char name[1024];
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            snprintf(name, sizeof name, "%s.klstore/fencing-probe-%d-%lx-%lx-%p", sw->prefix,
                     (int)getpid(), (unsigned long)ts.tv_sec, (unsigned long)ts.tv_nsec,
                     (void *)sw);
            kl_error perr = {0};
            const char *obj = ".klstore/probe-object";
            char *t1 = NULL, *t2 = NULL;
            kl_status a = kl_os_claim(sw->os, name, obj, KL_BODY_ONE("1", 1), &t1, &perr);
            kl_status b = a ? a : kl_os_claim(sw->os, name, obj, KL_BODY_ONE("2", 1), &t2, &perr);
            const char *v[1] = {name};
            if (a == KL_OK) kl_os_unclaim(sw->os, v, 1, NULL);
            free(t1);
            free(t2);
            kl_status bad = a ? a : b == KL_EEXIST ? KL_OK : b;
            if (bad == KL_EIO || bad == KL_ENOMEM) { /* undecided: the next append asks again */
                st = kl_seterr(err, bad, "probing %s for create-only writes: %s",
                               sw->os->ops->describe(sw->os), perr.msg);
                goto out;
            }
            /* Refused (e.g. 501 NotImplemented) or ignored: cannot fence. */
            can = bad == KL_OK && b == KL_EEXIST;
            if (!can)
                snprintf(why, sizeof why, "%s",
                         bad ? perr.msg
                             : "ignores create-only writes (a second PUT with "
                               "If-None-Match: * of one name succeeded)");
        } else {
            snprintf(why, sizeof why, "has no create-only claims");
        }
        if (!can && sw->cfg.fencing == KL_FENCING_ON) {
            kl_seterr(&sw->refusal, KL_EINVAL,
                      "fencing=on, but %s %s: concurrent writers of "
                      "a key cannot be fenced; nothing was written",
                      sw->os->ops->describe(sw->os), why);
        }
        if (!can && sw->cfg.fencing == KL_FENCING_AUTO)
            kl_log(KL_LOG_WARNING,
                   "%s cannot fence concurrent writers (it %s): keep to one "
                   "writer per key",
                   sw->os->ops->describe(sw->os), why);
        sw->fenced = can;
        if (!sw->refusal.code) atomic_store_explicit(&sw->probed, 1, memory_order_release);
    }
out:
    if (st == KL_OK && sw->refusal.code)
        st = kl_seterr(err, sw->refusal.code, "%s", sw->refusal.msg);
    pthread_mutex_unlock(&sw->probe_mu);
    return st;
}

/* An append of n records of which `written` reached the log (the rest
 * were duplicates by nonce). */
static void count_append(store_writer *sw, kl_status st, size_t n, uint64_t written, size_t objects)
{
    /* A failed append may still have put objects in (a retry's resumed
     * object before the rest failed). */
    atomic_fetch_add_explicit(&sw->written, written, memory_order_relaxed);
    atomic_fetch_add_explicit(&sw->objects, objects, memory_order_relaxed);
    if (st != KL_OK) {
        atomic_fetch_add_explicit(&sw->failures, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&sw->appends, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sw->duplicates, n - written, memory_order_relaxed);
}

/* What an append published, reported to the observer as it goes (under
 * the key's lock, so observers see a key's objects in order). */
typedef struct append_report {
    store_writer *sw;
    const char *keyspace, *key;
    uint64_t written;
    size_t objects;
} append_report;

static void on_object(kl_publish_event ev, const kl_object_meta *m, void *ctx)
{
    append_report *r = ctx;
    if (ev == KL_OBJECT_PUBLISHED) {
        r->written += m->last_offset - m->first_offset + 1;
        r->objects++;
    }
    if (r->sw->observer) r->sw->observer(r->keyspace, r->key, ev, m, r->sw->observer_ctx);
}

/* An append as objects of cuts[] records (n_cuts 0: one object). */
static kl_status store_append(store_writer *sw, const char *keyspace, const char *key,
                              const kl_insertion *ins, size_t n, int framed, const size_t *cuts,
                              size_t n_cuts, kl_error *err)
{
    kl_status st;
    if ((st = kl_validate_name("keyspace", keyspace, err)) ||
        (st = kl_validate_name("key", key, err)) || (st = check_insertions(ins, n, err))) {
        count_append(sw, st, n, 0, 0);
        return st;
    }
    if (n == 0) return KL_OK;
    /* Once decided (and not refused), sw->fenced never changes: the
     * acquire pairs with the release above. */
    if (!atomic_load_explicit(&sw->probed, memory_order_acquire) &&
        (st = decide_fencing(sw, err))) {
        count_append(sw, st, n, 0, 0);
        return st;
    }
    char *dir = Kl_layout_key_dir(sw->prefix, keyspace, key);
    if (!dir) {
        count_append(sw, KL_ENOMEM, n, 0, 0);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    pthread_mutex_t *mu = stripe_of(sw, dir);
    pthread_mutex_lock(mu);
    kl_keystate *s = Kl_keycache_take(sw->cache, dir);
    if (!s) st = Kl_tail_load(sw->os, &sw->cfg, dir, sw->fenced, &s, err);
    /* After a failed append the state may be stale (an I/O error may even
     * hide a write that did land): it is reloaded, keeping what is this
     * writer's own, such as the failed attempt (append.h). */
    else if (s->stale) /* a reload is a fresh state, not stale */
        st = Kl_tail_reload(sw->os, &sw->cfg, dir, sw->fenced, s, err);
    append_report r = {sw, keyspace, key, 0, 0};
    size_t before = 0, copied = 0;
    if (st == KL_OK)
        st = Kl_append_records(sw->os, &sw->cfg, sw->fenced, dir, s, ins, n, framed, cuts, n_cuts,
                               on_object, &r, &before, &copied, err);
    atomic_fetch_add_explicit(&sw->copied, copied, memory_order_relaxed);
    int compact_here = st == KL_OK && schedule_compaction(sw, dir, s);
    if (s) Kl_keycache_put(sw->cache, dir, s);
    count_append(sw, st, n - before, r.written, r.objects);
    pthread_mutex_unlock(mu);
    if (compact_here) compact_key(sw, dir);
    free(dir);
    return st;
}

static kl_status sw_append(kl_writer *w, const char *keyspace, const char *key,
                           const kl_insertion *ins, size_t n, kl_error *err)
{
    return store_append(SW(w), keyspace, key, ins, n, 0, NULL, 0, err);
}

/* The store writer persists before append returns: nothing to flush. */
static kl_status sw_flush_key(kl_writer *w, const char *keyspace, const char *key, kl_error *err)
{
    kl_status st = kl_validate_name("keyspace", keyspace, err);
    return st ? st : kl_validate_name("key", key, err);
}

static kl_status sw_noop(kl_writer *w, kl_error *err) { return KL_OK; }

/* The store writer's scheduled work is compaction: wait for it. */
static kl_status sw_duty_cycle(kl_writer *w, kl_error *err)
{
    (void)err;
    if (SW(w)->compactor) Kl_compactor_wait(SW(w)->compactor);
    return KL_OK;
}

/* A writer going away stores the watermarks it let lag and (fenced)
 * deletes the claims it knows to be below them and held long enough: a
 * few requests for a key it wrote since its last compaction, none for
 * others (a later load finds what is left, e.g. after a crash). */
static void gc_key(const char *dir, kl_keystate *s, void *ctx)
{
    store_writer *sw = ctx;
    kl_error err;
    if (s->stale) return; /* its view may be behind: a later load does this */
    if (Kl_compact_store_watermark(sw->os, dir, s, &err) != KL_OK ||
        (sw->fenced && Kl_claimgc_run(sw->os, &sw->cfg, dir, s, 1, &err) != KL_OK))
        kl_log(KL_LOG_WARNING, "could not store the watermark or delete old claims of '%s': %s",
               dir, err.msg);
}

static void sw_destroy(kl_writer *w)
{
    store_writer *sw = SW(w);
    Kl_compactor_free(sw->compactor); /* after what it has queued */
    Kl_keycache_each(sw->cache, gc_key, sw);
    Kl_keycache_free(sw->cache);
    for (int i = 0; i < STRIPES; i++) pthread_mutex_destroy(&sw->stripes[i]);
    pthread_mutex_destroy(&sw->probe_mu);
    free(sw->prefix);
    free(sw);
}

static const kl_writer_ops store_writer_ops = {
    .create_keyspace = sw_create_keyspace,
    .append = sw_append,
    .flush_key = sw_flush_key,
    .flush_all = sw_noop,
    .duty_cycle = sw_duty_cycle,
    .destroy = sw_destroy,
};

kl_status kl_store_writer_new(kl_objstore *os, const kl_store_config *cfg, kl_writer **out,
                              kl_error *err)
{
    kl_store_config def;
    if (!cfg) {
        kl_store_config_init(&def);
        cfg = &def;
    }
    if (!os) return kl_seterr(err, KL_EINVAL, "no object store given");
    if (cfg->compact_records_threshold == 0 || cfg->compact_size_threshold == 0 ||
        cfg->compact_objects_threshold == 0)
        return kl_seterr(err, KL_EINVAL, "compaction thresholds must be at least 1");
    /* Other writers rely on the hold (FORMAT.md "Skipping the check"): a
     * zeroed config must not delete claims at once. */
    if (cfg->claim_hold_ms < 60 || cfg->claim_hold_ms > 24 * 3600 * 1000)
        return kl_seterr(err, KL_EINVAL,
                         "claim_hold_ms is %" PRIu64 ", it must be 60..86400000 (default 60000)",
                         cfg->claim_hold_ms);
    if (cfg->max_cached_keys == 0)
        return kl_seterr(err, KL_EINVAL, "max_cached_keys must be at least 1");
    store_writer *sw = calloc(1, sizeof *sw);
    if (!sw) return kl_seterr(err, KL_ENOMEM, "out of memory");
    sw->base.ops = &store_writer_ops;
    sw->os = os;
    sw->cfg = *cfg;
    sw->prefix = strdup(cfg->object_prefix ? cfg->object_prefix : "");
    sw->cfg.object_prefix = sw->prefix;
    sw->cache = Kl_keycache_new(cfg->max_cached_keys);
    if (!sw->prefix || !sw->cache) {
        free(sw->prefix);
        Kl_keycache_free(sw->cache);
        free(sw);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&sw->stripes[i], NULL);
    pthread_mutex_init(&sw->probe_mu, NULL);
    sw->compactor = Kl_compactor_new(compact_key, sw);
    *out = &sw->base;
    return KL_OK;
}

kl_status Kl_store_writer_append_objects(kl_writer *w, const char *keyspace, const char *key,
                                         const kl_insertion *ins, size_t n, int framed,
                                         const size_t *cuts, size_t n_cuts, kl_error *err)
{
    if (w->ops != &store_writer_ops) return kl_seterr(err, KL_EINVAL, "not a store writer");
    return store_append(SW(w), keyspace, key, ins, n, framed, cuts, n_cuts, err);
}

int Kl_store_writer_is(const kl_writer *w) { return w && w->ops == &store_writer_ops; }

kl_status kl_store_writer_observe(kl_writer *w, kl_publish_fn fn, void *ctx, kl_error *err)
{
    if (!w || w->ops != &store_writer_ops)
        return kl_seterr(err, KL_EINVAL, "kl_store_writer_observe needs a store writer");
    SW(w)->observer = fn;
    SW(w)->observer_ctx = ctx;
    return KL_OK;
}

kl_status kl_store_writer_stats(kl_writer *w, kl_writer_stats *out, kl_error *err)
{
    if (!w || w->ops != &store_writer_ops)
        return kl_seterr(err, KL_EINVAL, "kl_store_writer_stats needs a store writer");
    store_writer *sw = SW(w);
    *out = (kl_writer_stats){
        .appends = atomic_load_explicit(&sw->appends, memory_order_relaxed),
        .records_written = atomic_load_explicit(&sw->written, memory_order_relaxed),
        .records_duplicate = atomic_load_explicit(&sw->duplicates, memory_order_relaxed),
        .objects = atomic_load_explicit(&sw->objects, memory_order_relaxed),
        .append_failures = atomic_load_explicit(&sw->failures, memory_order_relaxed),
        .records_copied = atomic_load_explicit(&sw->copied, memory_order_relaxed),
    };
    return KL_OK;
}

/* ---- the generic kl_writer entry points ------------------------------ */

kl_status kl_create_keyspace(kl_writer *w, const char *keyspace, int64_t *created, kl_error *err)
{
    return w->ops->create_keyspace(w, keyspace, created, err);
}

kl_status kl_append(kl_writer *w, const char *keyspace, const char *key, const kl_insertion *ins,
                    size_t n, kl_error *err)
{
    return w->ops->append(w, keyspace, key, ins, n, err);
}

kl_status kl_flush_key(kl_writer *w, const char *keyspace, const char *key, kl_error *err)
{
    return w->ops->flush_key(w, keyspace, key, err);
}

kl_status kl_flush_all(kl_writer *w, kl_error *err) { return w->ops->flush_all(w, err); }

kl_status kl_duty_cycle(kl_writer *w, kl_error *err) { return w->ops->duty_cycle(w, err); }

void kl_writer_destroy(kl_writer *w)
{
    if (w) w->ops->destroy(w);
}
