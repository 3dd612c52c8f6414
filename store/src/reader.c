/* reader.c -- the store reader: metadata, and pages forwards or backwards
 * from an offset, timestamp or nonce: where a page starts is resolved here,
 * the walk through the key's objects is readwalk.c's.
 *
 * Stateless by design: a continuation token is just (direction, next
 * offset), so any reader anywhere can continue any page. */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "objwalk.h"
#include "readwalk.h"
#include "token.h"

static store_reader *SR(kl_reader *r) { return (store_reader *)r; }

static kl_status check_names(const char *keyspace, const char *key, kl_error *err)
{
    kl_status st = kl_validate_name("keyspace", keyspace, err);
    return st ? st : kl_validate_name("key", key, err);
}

/* A keyspace marker is "[keyspace]\ncreated=<millis>\n"; anything much
 * longer is not one (and is not read further). */
#define MARKER_MAX 4096

static kl_status sr_keyspace_meta(kl_reader *r, const char *keyspace, kl_keyspace_meta *out,
                                  kl_error *err)
{
    kl_status st = kl_validate_name("keyspace", keyspace, err);
    if (st) return st;
    char *name = Kl_layout_marker(SR(r)->prefix, keyspace);
    if (!name) return kl_seterr(err, KL_ENOMEM, "out of memory");
    uint8_t *body = NULL;
    size_t len = 0;
    st = kl_os_get(SR(r)->os, name, 0, MARKER_MAX + 1, &body, &len, err);
    if (st == KL_ENOTFOUND)
        st = kl_seterr(err, KL_ENOKEYSPACE, "keyspace '%s' not found", keyspace);
    if (st == KL_OK && len > MARKER_MAX)
        st = kl_seterr(err, KL_EBADDATA,
                       "keyspace marker '%s' is over %d bytes: not a "
                       "klstore marker",
                       name, MARKER_MAX);
    if (st == KL_OK) {
        /* INI text "[keyspace]\ncreated=<millis>": find the one value. */
        char *text = strndup((char *)body, len);
        const char *p = text ? strstr(text, "created=") : NULL;
        char *end = NULL;
        long long v = p ? strtoll(p + 8, &end, 10) : 0;
        if (!p || end == p + 8 || !text || !strstr(text, "[keyspace]"))
            st = kl_seterr(err, KL_EBADDATA,
                           "keyspace marker '%s' is not "
                           "'[keyspace] created=<millis>'",
                           name);
        else
            out->created = v;
        free(text);
    }
    free(body);
    free(name);
    return st;
}

static kl_status sr_key_meta(kl_reader *r, const char *keyspace, const char *key, int *exists,
                             kl_key_meta *out, kl_error *err)
{
    kl_status st = check_names(keyspace, key, err);
    if (st) return st;
    char *dir = Kl_layout_key_dir(SR(r)->prefix, keyspace, key);
    if (!dir) return kl_seterr(err, KL_ENOMEM, "out of memory");
    kl_object_meta last;
    st = Kl_index_last(SR(r)->os, NULL, dir, exists, &last, err);
    if (st == KL_OK && *exists) {
        out->next_offset = last.last_offset + 1;
        out->next_nonce = last.next_nonce;
        out->last_timestamp = last.max_ts;
    }
    free(dir);
    return st;
}

/* ---- resolving a start position -------------------------------------- */

typedef struct ts_ctx {
    int64_t t;
    int strictly_after;
} ts_ctx;
typedef struct nonce_ctx {
    kl_u128 n;
    int strictly_after;
} nonce_ctx;

static int obj_ts(const kl_object_meta *m, void *c)
{
    ts_ctx *x = c;
    return x->strictly_after ? m->max_ts > x->t : m->max_ts >= x->t;
}
static int rec_ts(const kl_record *r, void *c)
{
    ts_ctx *x = c;
    return x->strictly_after ? r->timestamp > x->t : r->timestamp >= x->t;
}
static int obj_nonce(const kl_object_meta *m, void *c)
{
    nonce_ctx *x = c;
    /* next_nonce - 1 is the largest nonce in or before the object. */
    return m->next_nonce > 0 &&
           (x->strictly_after ? m->next_nonce - 1 > x->n : m->next_nonce - 1 >= x->n);
}
static int rec_nonce(const kl_record *r, void *c)
{
    nonce_ctx *x = c;
    return r->has_nonce && (x->strictly_after ? r->nonce > x->n : r->nonce >= x->n);
}

/* The offset of the first record satisfying rec_pred, found through the
 * first object satisfying obj_pred; one past the log when there is none.
 * `last` is the key's newest object, which the caller found already: the
 * search covers first offsets up to its own, instead of finding the end
 * of the key a second time. */
static kl_status first_matching(walk *w, const kl_object_meta *last, kl_obj_pred obj_pred,
                                int (*rec_pred)(const kl_record *, void *), void *ctx,
                                uint64_t *out, kl_error *err)
{
    *out = last->last_offset + 1;
    if (!obj_pred(last, ctx)) return KL_OK; /* monotone: no object satisfies it */
    for (;;) {
        int found;
        kl_object_meta m;
        kl_status st = Kl_index_find(w->sr->os, &w->pages, w->dir, obj_pred, NULL, ctx,
                                     last->first_offset, 0, &found, &m, err);
        if (st || !found) return st;
        kl_cobj *o;
        st = Kl_walk_fetch(w, &m, &o, err);
        if (st == KL_ENOTFOUND && ++w->reseeks <= MAX_RESEEKS) {
            Kl_index_pages_free(&w->pages); /* they listed the object that went */
            continue;
        }
        if (st) return st;
        int hit;
        uint64_t at;
        st = Kl_objwalk_find(o, rec_pred, ctx, &hit, &at, err);
        Kl_cobj_release(o);
        if (st == KL_OK) *out = hit ? at : m.last_offset + 1;
        return st;
    }
}

/* The offset a first page starts at ("want"); 0 means nothing to read
 * backwards. */
static kl_status resolve_start(walk *w, kl_direction dir, const kl_start *start, uint64_t *want,
                               kl_error *err)
{
    /* Forwards from an offset needs no end: the walk finds where it is. */
    if (dir == KL_FORWARDS && (start->kind == KL_START_FIRST || start->kind == KL_START_OFFSET)) {
        *want = start->kind == KL_START_OFFSET && start->offset ? start->offset : 1;
        return KL_OK;
    }
    int exists;
    kl_object_meta last;
    kl_status st = Kl_index_last(w->sr->os, &w->pages, w->dir, &exists, &last, err);
    if (st) return st;
    /* Backwards from the end: the walk starts in the object just found. */
    if (exists && start->kind == KL_START_LAST) {
        w->seed = last;
        w->has_seed = 1;
    }
    uint64_t end = exists ? last.last_offset + 1 : 1; /* one past the log */
    int back = dir == KL_BACKWARDS;
    switch (start->kind) {
    case KL_START_FIRST: *want = 1; break;
    case KL_START_LAST: *want = end > 1 ? end - 1 : 1; break;
    case KL_START_OFFSET: *want = start->offset ? start->offset : 1; break;
    case KL_START_TIMESTAMP: {
        ts_ctx c = {start->timestamp, back};
        st = exists ? first_matching(w, &last, obj_ts, rec_ts, &c, want, err) : KL_OK;
        if (!exists) *want = 1;
        if (back) (*want)--; /* the last record at or before t */
        break;
    }
    case KL_START_NONCE: {
        nonce_ctx c = {start->nonce, back};
        st = exists ? first_matching(w, &last, obj_nonce, rec_nonce, &c, want, err) : KL_OK;
        if (!exists) *want = 1;
        if (back) (*want)--;
        break;
    }
    default: return kl_seterr(err, KL_EINVAL, "unknown start position kind %d", (int)start->kind);
    }
    if (back && *want >= end) *want = end - 1;
    if (back && !exists) *want = 0;
    return st;
}

/* ---- pages ------------------------------------------------------------ */

static kl_status read_page(store_reader *sr, const char *keyspace, const char *key,
                           kl_direction dir, const kl_start *start, uint64_t from, uint64_t hint,
                           uint64_t page_size, kl_page *out, kl_error *err)
{
    kl_status st = check_names(keyspace, key, err);
    if (st) return st;
    char *kdir = Kl_layout_key_dir(sr->prefix, keyspace, key);
    if (!kdir) return kl_seterr(err, KL_ENOMEM, "out of memory");
    walk w = {.sr = sr,
              .dir = kdir,
              .hint_in = hint,
              .limit = page_size ? page_size : sr->cfg.default_page_size};
    uint64_t want = from;
    if (start) st = resolve_start(&w, dir, start, &want, err);
    if (st == KL_OK && Kl_pagebuf_reserve(&w.pb, w.limit < 65536 ? w.limit : 65536) != 0)
        st = kl_seterr(err, KL_ENOMEM, "out of memory");
    if (st == KL_OK && w.limit > 0) {
        if (dir == KL_BACKWARDS)
            st = want ? Kl_walk_backward(&w, &want, err) : KL_OK;
        else
            st = Kl_walk_forward(&w, &want, err);
    }
    if (st == KL_OK) {
        char tok[KL_TOKEN_MAX];
        int more = dir == KL_FORWARDS || want >= 1;
        if (more) Kl_token_make(keyspace, key, dir, want, w.hint_out, tok);
        st = Kl_pagebuf_finish(&w.pb, keyspace, key, more ? tok : NULL, out, err);
    }
    Kl_pagebuf_free(&w.pb);
    Kl_index_pages_free(&w.pages);
    free(kdir);
    return st;
}

static kl_status sr_first_page(kl_reader *r, const char *keyspace, const char *key,
                               kl_direction dir, const kl_start *start, uint64_t page_size,
                               kl_page *out, kl_error *err)
{
    kl_start first = {.kind = KL_START_FIRST};
    return read_page(SR(r), keyspace, key, dir, start ? start : &first, 0, 0, page_size, out, err);
}

static kl_status sr_next_page(kl_reader *r, const char *keyspace, const char *key,
                              const char *continuation, uint64_t page_size, kl_page *out,
                              kl_error *err)
{
    kl_status st = check_names(keyspace, key, err);
    if (st) return st;
    kl_direction dir;
    uint64_t want, hint;
    st = Kl_token_parse(keyspace, key, continuation, &dir, &want, &hint, err);
    if (st) return st;
    return read_page(SR(r), keyspace, key, dir, NULL, want, hint, page_size, out, err);
}

static void sr_destroy(kl_reader *r)
{
    store_reader *sr = SR(r);
    Kl_readahead_free(sr->ra);
    Kl_objcache_free(sr->cache);
    Kl_walk_memo_free(&sr->memo);
    free(sr->prefix);
    free(sr);
}

static const kl_reader_ops store_reader_ops = {
    .keyspace_meta = sr_keyspace_meta,
    .key_meta = sr_key_meta,
    .first_page = sr_first_page,
    .next_page = sr_next_page,
    .destroy = sr_destroy,
};

kl_status kl_store_reader_new(kl_objstore *os, const kl_store_config *cfg, kl_reader **out,
                              kl_error *err)
{
    kl_store_config def;
    if (!cfg) {
        kl_store_config_init(&def);
        cfg = &def;
    }
    if (!os) return kl_seterr(err, KL_EINVAL, "no object store given");
    if (cfg->default_page_size == 0)
        return kl_seterr(err, KL_EINVAL, "default_page_size must be at least 1");
    store_reader *sr = calloc(1, sizeof *sr);
    if (!sr) return kl_seterr(err, KL_ENOMEM, "out of memory");
    sr->base.ops = &store_reader_ops;
    sr->os = os;
    sr->cfg = *cfg;
    sr->prefix = strdup(cfg->object_prefix ? cfg->object_prefix : "");
    sr->cfg.object_prefix = sr->prefix;
    sr->cache = Kl_objcache_new(cfg->reader_cache_bytes);
    Kl_walk_memo_init(&sr->memo);
    if (!sr->prefix || !sr->cache) {
        free(sr->prefix);
        Kl_objcache_free(sr->cache);
        free(sr);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    /* A local store maps objects for free; readahead pays only where a
     * fetch is a network round trip. */
    if (!os->ops->map && cfg->reader_readahead && cfg->reader_cache_bytes)
        sr->ra = Kl_readahead_new(sr->cache, os,
                                  (int)(cfg->reader_readahead < 8 ? cfg->reader_readahead : 8));
    *out = &sr->base;
    return KL_OK;
}

store_reader *Kl_store_reader(kl_reader *r)
{
    return r && r->ops == &store_reader_ops ? SR(r) : NULL;
}

kl_status kl_reader_cache_stats(kl_reader *r, kl_cache_stats *out, kl_error *err)
{
    store_reader *sr = Kl_store_reader(r);
    if (!sr) return kl_seterr(err, KL_EINVAL, "only a store reader has an object cache");
    Kl_objcache_stats(sr->cache, out);
    return KL_OK;
}

/* ---- the generic kl_reader entry points ------------------------------ */

kl_status kl_read_keyspace_metadata(kl_reader *r, const char *keyspace, kl_keyspace_meta *out,
                                    kl_error *err)
{
    return r->ops->keyspace_meta(r, keyspace, out, err);
}

kl_status kl_read_key_metadata(kl_reader *r, const char *keyspace, const char *key, int *exists,
                               kl_key_meta *out, kl_error *err)
{
    return r->ops->key_meta(r, keyspace, key, exists, out, err);
}

kl_status kl_read_first_page(kl_reader *r, const char *keyspace, const char *key, kl_direction dir,
                             const kl_start *start, uint64_t page_size, kl_page *out, kl_error *err)
{
    return r->ops->first_page(r, keyspace, key, dir, start, page_size, out, err);
}

kl_status kl_read_next_page(kl_reader *r, const char *keyspace, const char *key,
                            const char *continuation, uint64_t page_size, kl_page *out,
                            kl_error *err)
{
    return r->ops->next_page(r, keyspace, key, continuation, page_size, out, err);
}

void kl_reader_destroy(kl_reader *r)
{
    if (r) r->ops->destroy(r);
}
