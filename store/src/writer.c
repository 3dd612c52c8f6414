/* writer.c -- the store writer: the spec's S3StoreWriter over any object
 * store.
 *
 * One append call = one data object holding the accepted records.  Per-key
 * state (next offset, next nonce, prior pointer, objects since the
 * watermark) lives in a bounded LRU; a miss reloads it from the store.
 * Appends to one key are serialised by a striped mutex, so the writer is
 * safe to share between threads (the batching writer runs several). */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "compact.h"
#include "keycache.h"
#include "keyindex.h"
#include "layout.h"
#include "recycle.h"

#define STRIPES 64

typedef struct store_writer {
    kl_writer base;
    kl_objstore *os;
    kl_store_config cfg;
    char *prefix;
    kl_keycache *cache;
    pthread_mutex_t stripes[STRIPES];
} store_writer;

static store_writer *SW(kl_writer *w) { return (store_writer *)w; }

static kl_status sw_create_keyspace(kl_writer *w, const char *keyspace,
                                    int64_t *created, kl_error *err) {
    kl_status st = kl_validate_name("keyspace", keyspace, err);
    if (st) return st;
    char *name = kl_layout_marker(SW(w)->prefix, keyspace);
    if (!name) return kl_seterr(err, KL_ENOMEM, "out of memory");
    int64_t now = kl_now_ms();
    char body[64];
    int n = snprintf(body, sizeof body, "[keyspace]\ncreated=%" PRId64 "\n", now);
    st = kl_os_put(SW(w)->os, name, body, (size_t)n, KL_PUT_IF_ABSENT, err);
    free(name);
    if (st == KL_EEXIST)
        return kl_seterr(err, KL_EEXIST, "keyspace '%s' already exists", keyspace);
    if (st == KL_OK && created) *created = now;
    return st;
}

/* Rebuilds a key's state from the store: the watermark, then the objects
 * after it (normally a short tail, since compaction keeps it short). */
static kl_status load_state(store_writer *sw, const char *dir, kl_keystate **out,
                            kl_error *err) {
    uint64_t wm;
    int valid;
    kl_status st = kl_index_watermark(sw->os, dir, &wm, &valid, err);
    if (st) return st;
    if (!valid)
        return kl_seterr(err, KL_EBADDATA, "watermark of '%s' is not an 8-byte offset", dir);
    kl_object_meta *v = NULL;
    size_t n = 0;
    st = kl_index_list(sw->os, dir, wm ? wm : 1, 0, &v, &n, NULL, err);
    if (st) return st;
    kl_keystate *s = calloc(1, sizeof *s);
    if (!s) {
        free(v);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    s->watermark = wm;
    s->next_offset = 1;
    if (n == 0 && wm) {
        /* A watermark ahead of every object: trust the objects instead. */
        kl_object_meta last;
        int found;
        st = kl_index_last(sw->os, dir, &found, &last, err);
        if (st == KL_OK && found) {
            s->next_offset = last.last_offset + 1;
            s->next_nonce = last.next_nonce;
            s->last_first = last.first_offset;
        }
        s->watermark = 0;
    } else if (n) {
        const kl_object_meta *last = &v[n - 1];
        s->next_offset = last->last_offset + 1;
        s->next_nonce = last->next_nonce;
        s->last_first = last->first_offset;
        for (size_t i = 0; i < n && st == KL_OK; i++)
            if (v[i].first_offset > wm && kl_keystate_add_pending(s, &v[i]) != 0)
                st = kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    free(v);
    if (st) {
        kl_keystate_free(s);
        return st;
    }
    *out = s;
    return KL_OK;
}

static kl_status check_insertions(const kl_insertion *ins, size_t n, kl_error *err) {
    for (size_t i = 0; i < n; i++) {
        if (ins[i].len > KL_RECORD_MAX)
            return kl_seterr(err, KL_EINVAL, "record %zu is %zu bytes, the maximum is %u",
                             i, ins[i].len, (unsigned)KL_RECORD_MAX);
        if (ins[i].has_nonce && ins[i].nonce == KL_NONCE_NONE)
            return kl_seterr(err, KL_EINVAL, "record %zu uses nonce 2^128-1, which "
                             "the format reserves for 'no nonce'", i);
        if (ins[i].len && !ins[i].data)
            return kl_seterr(err, KL_EINVAL, "record %zu has length but no data", i);
    }
    return KL_OK;
}

/* Encodes the records the nonce filter accepts; fills m except name-only
 * fields.  Returns the number accepted. */
static size_t encode_batch(const kl_keystate *s, const kl_insertion *ins, size_t n,
                           kl_buf *body, kl_object_meta *m, int *oom) {
    int64_t now = kl_now_ms();
    kl_u128 next_nonce = s->next_nonce;
    size_t acc = 0;
    int any_nonce = 0;
    *m = (kl_object_meta){.first_offset = s->next_offset, .prior = s->last_first,
                          .first_nonce = s->next_nonce};
    for (size_t i = 0; i < n; i++) {
        const kl_insertion *r = &ins[i];
        if (r->has_nonce) {
            if (r->nonce < next_nonce) continue; /* a duplicate: dropped by design */
            if (!any_nonce) m->first_nonce = r->nonce;
            any_nonce = 1;
            next_nonce = r->nonce + 1;
        }
        int64_t ts = r->has_timestamp ? r->timestamp : now;
        if (acc == 0 || ts < m->min_ts) m->min_ts = ts;
        if (acc == 0 || ts > m->max_ts) m->max_ts = ts;
        if (kl_codec_put(body, s->next_offset + acc, ts, r->has_nonce, r->nonce,
                         r->data, (uint32_t)r->len) != 0) {
            *oom = 1;
            return 0;
        }
        acc++;
    }
    m->last_offset = s->next_offset + acc - 1;
    m->next_nonce = next_nonce;
    m->size = body->len;
    return acc;
}

static kl_status append_locked(store_writer *sw, const char *dir, kl_keystate *s,
                               const kl_insertion *ins, size_t n, kl_error *err) {
    /* The body's exact size is known, so encoding never grows it; it comes
     * from the pool of large buffers (recycle.h), warm after the first
     * appends instead of fresh memory for every object. */
    size_t need = 0;
    for (size_t i = 0; i < n; i++) need += ins[i].len + KL_RECORD_OVERHEAD;
    kl_buf body = {.data = kl_recycle_get(need), .cap = need};
    if (!body.data)
        return kl_seterr(err, KL_ENOMEM, "out of memory encoding %zu records", n);
    kl_object_meta m;
    int oom = 0;
    size_t acc = encode_batch(s, ins, n, &body, &m, &oom);
    if (oom) {
        kl_recycle_put(body.data);
        return kl_seterr(err, KL_ENOMEM, "out of memory encoding %zu records", n);
    }
    if (acc == 0) {
        kl_recycle_put(body.data);
        return KL_OK; /* every record was a duplicate */
    }
    /* A complete batch on its own (the usual case for large appends): the
     * object and its watermark go to the store together, so they share
     * one round of syncs; the object is visible first, as compaction
     * orders them. */
    int alone = s->n_pending == 0 && kl_compact_complete_alone(&sw->cfg, &m);
    uint8_t wm_body[8];
    char *name = kl_index_name(dir, &m);
    char *wm = alone ? kl_compact_watermark(dir, m.first_offset, wm_body) : NULL;
    kl_put_item items[2] = {{.name = name, .data = body.data, .len = body.len},
                            {.name = wm, .data = wm_body, .len = sizeof wm_body}};
    kl_status st = name && (wm || !alone)
                       ? kl_os_put_batch(sw->os, items, alone ? 2 : 1, err)
                       : kl_seterr(err, KL_ENOMEM, "out of memory");
    if (st && name && alone) {
        /* The pair failed somewhere, perhaps only at the watermark, with
         * the object already in place.  The object alone decides the
         * append (storing it again is idempotent); the watermark is
         * compaction state, retried below like any failed compaction. */
        alone = 0;
        st = kl_os_put(sw->os, name, body.data, body.len, 0, err);
    }
    free(name);
    free(wm);
    kl_recycle_put(body.data);
    if (st) return st;
    s->next_offset = m.last_offset + 1;
    s->next_nonce = m.next_nonce;
    s->last_first = m.first_offset;
    if (alone) {
        s->watermark = m.first_offset;
        return KL_OK;
    }
    if (kl_keystate_add_pending(s, &m) != 0)
        return kl_seterr(err, KL_ENOMEM, "out of memory");

    /* The records are durable now.  A failed compaction must not fail the
     * append (a retry would duplicate records without nonces): it is
     * logged and retried with the next append. */
    kl_error cerr = {0};
    if (kl_compact_maybe(sw->os, &sw->cfg, dir, s, &cerr) != KL_OK)
        kl_log(KL_LOG_WARNING, "compaction of '%s' failed, will retry: %s", dir, cerr.msg);
    return KL_OK;
}

/* One writer per key is the contract, but a second writer (another
 * process, another mount) is an easy mistake, and our cached state would
 * then make us write an object overlapping its own: one writer's records
 * would be lost to readers.  So before writing, one LIST checks that
 * nothing exists at or past our next offset; if something does, the state
 * is reloaded (and the nonce filter reruns against it).  A writer that
 * keeps racing us is an error, never silent corruption. */
static kl_status ensure_fresh(store_writer *sw, const char *dir, kl_keystate **s,
                              kl_error *err) {
    for (int attempt = 0; attempt < 3; attempt++) {
        kl_object_meta *v = NULL;
        size_t n = 0;
        kl_status st = kl_index_list(sw->os, dir, (*s)->next_offset, 1, &v, &n, NULL, err);
        free(v);
        if (st || n == 0) return st;
        kl_keystate_free(*s);
        *s = NULL;
        if ((st = load_state(sw, dir, s, err))) return st;
    }
    return kl_seterr(err, KL_EIO, "another writer keeps appending to '%s': klstore allows "
                     "one writer per key", dir);
}

static kl_status sw_append(kl_writer *w, const char *keyspace, const char *key,
                           const kl_insertion *ins, size_t n, kl_error *err) {
    store_writer *sw = SW(w);
    kl_status st;
    if ((st = kl_validate_name("keyspace", keyspace, err)) ||
        (st = kl_validate_name("key", key, err)) ||
        (st = check_insertions(ins, n, err)))
        return st;
    if (n == 0) return KL_OK;
    char *dir = kl_layout_key_dir(sw->prefix, keyspace, key);
    if (!dir) return kl_seterr(err, KL_ENOMEM, "out of memory");
    pthread_mutex_t *mu = &sw->stripes[kl_hash(dir, strlen(dir), KL_HASH_SEED) % STRIPES];
    pthread_mutex_lock(mu);
    kl_keystate *s = kl_keycache_take(sw->cache, dir);
    if (!s) st = load_state(sw, dir, &s, err);
    if (st == KL_OK) st = ensure_fresh(sw, dir, &s, err);
    if (st != KL_OK) {
        kl_keystate_free(s);
    } else {
        st = append_locked(sw, dir, s, ins, n, err);
        /* On failure nothing was written and s is unchanged: keep it.  An
         * I/O error may hide a write that did land, so forget the state
         * and reload next time rather than risk a stale next offset. */
        if (st == KL_EIO) {
            kl_keystate_free(s);
        } else {
            kl_keycache_put(sw->cache, dir, s);
        }
    }
    pthread_mutex_unlock(mu);
    free(dir);
    return st;
}

/* The store writer persists before append returns: nothing to flush. */
static kl_status sw_flush_key(kl_writer *w, const char *keyspace, const char *key,
                              kl_error *err) {
    kl_status st = kl_validate_name("keyspace", keyspace, err);
    return st ? st : kl_validate_name("key", key, err);
}

static kl_status sw_noop(kl_writer *w, kl_error *err) { return KL_OK; }

static void sw_destroy(kl_writer *w) {
    store_writer *sw = SW(w);
    kl_keycache_free(sw->cache);
    for (int i = 0; i < STRIPES; i++) pthread_mutex_destroy(&sw->stripes[i]);
    free(sw->prefix);
    free(sw);
}

static const kl_writer_ops store_writer_ops = {
    .create_keyspace = sw_create_keyspace,
    .append = sw_append,
    .flush_key = sw_flush_key,
    .flush_all = sw_noop,
    .duty_cycle = sw_noop,
    .destroy = sw_destroy,
};

kl_status kl_store_writer_new(kl_objstore *os, const kl_store_config *cfg,
                              kl_writer **out, kl_error *err) {
    kl_store_config def;
    if (!cfg) {
        kl_store_config_init(&def);
        cfg = &def;
    }
    if (!os) return kl_seterr(err, KL_EINVAL, "no object store given");
    if (cfg->compact_records_threshold == 0 || cfg->compact_size_threshold == 0 ||
        cfg->compact_objects_threshold == 0)
        return kl_seterr(err, KL_EINVAL, "compaction thresholds must be at least 1");
    if (cfg->max_cached_keys == 0)
        return kl_seterr(err, KL_EINVAL, "max_cached_keys must be at least 1");
    store_writer *sw = calloc(1, sizeof *sw);
    if (!sw) return kl_seterr(err, KL_ENOMEM, "out of memory");
    sw->base.ops = &store_writer_ops;
    sw->os = os;
    sw->cfg = *cfg;
    sw->prefix = strdup(cfg->object_prefix ? cfg->object_prefix : "");
    sw->cfg.object_prefix = sw->prefix;
    sw->cache = kl_keycache_new(cfg->max_cached_keys);
    if (!sw->prefix || !sw->cache) {
        free(sw->prefix);
        kl_keycache_free(sw->cache);
        free(sw);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&sw->stripes[i], NULL);
    *out = &sw->base;
    return KL_OK;
}

/* ---- the generic kl_writer entry points ------------------------------ */

kl_status kl_create_keyspace(kl_writer *w, const char *keyspace, int64_t *created,
                             kl_error *err) {
    return w->ops->create_keyspace(w, keyspace, created, err);
}

kl_status kl_append(kl_writer *w, const char *keyspace, const char *key,
                    const kl_insertion *ins, size_t n, kl_error *err) {
    return w->ops->append(w, keyspace, key, ins, n, err);
}

kl_status kl_flush_key(kl_writer *w, const char *keyspace, const char *key,
                       kl_error *err) {
    return w->ops->flush_key(w, keyspace, key, err);
}

kl_status kl_flush_all(kl_writer *w, kl_error *err) { return w->ops->flush_all(w, err); }

kl_status kl_duty_cycle(kl_writer *w, kl_error *err) { return w->ops->duty_cycle(w, err); }

void kl_writer_destroy(kl_writer *w) {
    if (w) w->ops->destroy(w);
}
