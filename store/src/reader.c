/* reader.c -- the store reader: metadata, and pages forwards or backwards
 * from an offset, timestamp or nonce.
 *
 * Stateless by design: a continuation token is just (direction, next
 * offset), so any reader anywhere can continue any page.  Every walk keeps
 * one invariant, the next offset it wants, which is what makes reads exact
 * while a writer compacts underneath: an object that covers offsets
 * already returned is skipped past, an object that vanished (404) or a gap
 * in the listing means "re-seek the wanted offset", never an error. */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "keyindex.h"
#include "layout.h"
#include "objcache.h"
#include "objwalk.h"
#include "page.h"
#include "readahead.h"
#include "token.h"

/* How often one page may re-seek after objects vanished under it before we
 * call the store inconsistent (each re-seek follows a compaction). */
#define MAX_RESEEKS 16
/* Objects per look-ahead LIST.  Large, because the listing is kept (see
 * list_memo) and serves the following pages too: a LIST costs about the
 * same for 64 names as for 1000 (a local LIST reads the whole directory). */
#define LOOKAHEAD 1000

/* The reader's last look-ahead listing, for the one key read most
 * recently: the next page of a scan finds its objects here instead of
 * listing again.  A listing may be stale, which is harmless: objects are
 * immutable, one that vanished is a 404 that makes the walk re-seek, one
 * replaced by a compaction holds the same records, and reaching the end of
 * the memo always lists afresh (so new objects are never missed). */
typedef struct list_memo {
    pthread_mutex_t mu;
    char *dir;
    kl_object_meta *v;
    size_t n;
} list_memo;

typedef struct store_reader {
    kl_reader base;
    kl_objstore *os;
    kl_store_config cfg;
    char *prefix;
    kl_objcache *cache;
    kl_readahead *ra; /* NULL for stores that map objects locally */
    list_memo memo;
} store_reader;

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

/* ---- walking objects ------------------------------------------------- */

typedef struct walk {
    store_reader *sr;
    const char *dir;
    kl_pagebuf pb;
    uint64_t limit;
    int reseeks;
    uint64_t hint_in;     /* from the token: first offset of the object holding want */
    uint64_t hint_out;    /* the same for the next page's token */
    kl_index_pages pages; /* listing pages this read has seen */
    kl_object_meta seed;  /* resolving the start found the object holding want */
    int has_seed;
} walk;

static kl_status fetch(walk *w, const kl_object_meta *m, kl_cobj **o, kl_error *err)
{
    char *name = Kl_index_name(w->dir, m);
    if (!name) return kl_seterr(err, KL_ENOMEM, "out of memory");
    kl_status st = Kl_objcache_get(w->sr->cache, w->sr->os, name, m, o, err);
    free(name);
    return st;
}

static kl_status reseek(walk *w, uint64_t want, uint64_t guess, int *found, kl_object_meta *m,
                        kl_error *err)
{
    if (++w->reseeks > MAX_RESEEKS)
        return kl_seterr(err, KL_EIO,
                         "%s: objects kept vanishing while reading offset %" PRIu64
                         " (compaction storm?)",
                         w->dir, want);
    return Kl_index_seek_offset(w->sr->os, &w->pages, w->dir, want, guess, found, m, err);
}

/* Appends records [want, ...] from object o; returns the next wanted.  An
 * object that overlaps offsets already returned (a compaction's merged
 * object) is entered at *want, never before. */
static kl_status take_forward(walk *w, kl_cobj *o, uint64_t *want, kl_error *err)
{
    if (*want < o->first || *want - o->first >= o->count) return KL_OK;
    return Kl_objwalk_forward(o, &w->pb, w->limit, want, err);
}

/* A walk read o through to its far end.  With a local store, dropping it
 * from the cache now is what keeps a long scan from churning through
 * reader_cache_bytes of fresh memory (first-touch page faults cost more
 * than re-reading an object from the page cache); remote objects stay,
 * since a fetch is a round trip. */
static void passed(walk *w, kl_cobj *o)
{
    if (w->sr->os->ops->map) Kl_objcache_drop(w->sr->cache, o);
}

/* Hints the objects a forward walk will want next to the readahead pool:
 * at most reader_readahead of them, within the cache's budget, and only
 * as many as hold the rest of this page -- a reader asking for 10 records
 * must not cost GETs of eight objects (a large page, the usual scan, still
 * fetches its objects in parallel). */
static void prefetch(walk *w, const kl_object_meta *v, size_t n, uint64_t coming)
{
    store_reader *sr = w->sr;
    if (!sr->ra) return;
    uint64_t budget = sr->cfg.reader_cache_bytes / 2;
    /* Records still wanted beyond those the page has and `coming` (what
     * the object being read provides before v). */
    uint64_t have = w->pb.n + coming;
    uint64_t records = have < w->limit ? w->limit - have : 0;
    for (size_t i = 0; i < n && i < sr->cfg.reader_readahead && records > 0; i++) {
        if (v[i].size > budget) break;
        budget -= v[i].size;
        uint64_t has = v[i].last_offset - v[i].first_offset + 1;
        records = has < records ? records - has : 0;
        char *name = Kl_index_name(w->dir, &v[i]);
        if (name) Kl_readahead_push(sr->ra, name, &v[i]);
        free(name);
    }
}

/* Finds the object holding `want` among v (offset order), or NULL. */
static const kl_object_meta *holding(const kl_object_meta *v, size_t n, uint64_t want)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].last_offset < want)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo].first_offset <= want ? &v[lo] : NULL;
}

/* A copy of the memo for dir if it holds `want` (1), else 0. */
static int memo_get(walk *w, uint64_t want, kl_object_meta **v, size_t *n)
{
    list_memo *mm = &w->sr->memo;
    int hit = 0;
    pthread_mutex_lock(&mm->mu);
    if (mm->dir && strcmp(mm->dir, w->dir) == 0 && holding(mm->v, mm->n, want) &&
        (*v = malloc(mm->n * sizeof **v))) {
        memcpy(*v, mm->v, mm->n * sizeof **v);
        *n = mm->n;
        hit = 1;
    }
    pthread_mutex_unlock(&mm->mu);
    return hit;
}

/* Keeps a copy of a fresh listing of w->dir (best effort). */
static void memo_put(walk *w, const kl_object_meta *v, size_t n)
{
    list_memo *mm = &w->sr->memo;
    kl_object_meta *c = n ? malloc(n * sizeof *c) : NULL;
    char *d = c ? strdup(w->dir) : NULL;
    if (c) memcpy(c, v, n * sizeof *c);
    pthread_mutex_lock(&mm->mu);
    free(mm->dir);
    free(mm->v);
    mm->dir = d;
    mm->v = d ? c : NULL;
    mm->n = d ? n : 0;
    pthread_mutex_unlock(&mm->mu);
    if (!d) free(c);
}

/* Forgets the memo: it listed an object that has since vanished. */
static void memo_forget(walk *w) { memo_put(w, NULL, 0); }

/* A look-ahead listing from `from`, from the memo when it holds `want`. */
static kl_status list_ahead(walk *w, uint64_t from, uint64_t want, kl_object_meta **v, size_t *n,
                            kl_error *err)
{
    if (memo_get(w, want, v, n)) return KL_OK;
    kl_status st = Kl_index_list(w->sr->os, w->dir, from, LOOKAHEAD, v, n, NULL, err);
    if (st == KL_OK) memo_put(w, *v, *n);
    return st;
}

static kl_status walk_forward(walk *w, uint64_t *want, kl_error *err)
{
    int found = 0;
    kl_object_meta cur;
    kl_object_meta *ahead = NULL;
    size_t na = 0, ia = 0;
    /* *want starts an object, or lies in the object the token's hint
     * names: then one listing both finds it and fills the look-ahead. */
    uint64_t from = w->hint_in && w->hint_in <= *want ? w->hint_in : *want;
    kl_status st = list_ahead(w, from, *want, &ahead, &na, err);
    while (st == KL_OK && ia < na && ahead[ia].last_offset < *want) ia++;
    if (st == KL_OK && ia < na && ahead[ia].first_offset <= *want) {
        prefetch(w, ahead + ia + 1, na - ia - 1, ahead[ia].last_offset - *want + 1);
        cur = ahead[ia++];
        found = 1;
    } else if (st == KL_OK) {
        free(ahead);
        ahead = NULL;
        na = ia = 0;
        st = Kl_index_seek_offset(w->sr->os, &w->pages, w->dir, *want, 0, &found, &cur, err);
    }
    while (st == KL_OK && found) {
        kl_cobj *o;
        st = fetch(w, &cur, &o, err);
        if (st == KL_ENOTFOUND) { /* compacted away since listed */
            memo_forget(w);
            free(ahead);
            ahead = NULL;
            na = ia = 0;
            st = reseek(w, *want, 0, &found, &cur, err);
            continue;
        }
        if (st) break;
        st = take_forward(w, o, want, err);
        if (*want > cur.last_offset) passed(w, o);
        Kl_cobj_release(o);
        /* Ended inside this object: the next page starts in it. */
        w->hint_out = *want <= cur.last_offset ? cur.first_offset : 0;
        if (st || w->pb.n >= w->limit) break;
        /* Next object holding *want, from a small look-ahead listing. */
        found = 0;
        while (st == KL_OK && !found) {
            if (ia == na) {
                free(ahead);
                ahead = NULL;
                ia = 0;
                st = list_ahead(w, *want, *want, &ahead, &na, err);
                if (st || na == 0) break; /* the end of the log */
            }
            if (ia == 0) prefetch(w, ahead, na, 0);
            kl_object_meta *m = &ahead[ia++];
            if (m->last_offset < *want) continue;
            if (m->first_offset > *want) {
                /* A gap: the object holding *want was merged into one that
                 * starts earlier.  Find it. */
                free(ahead);
                ahead = NULL;
                na = ia = 0;
                st = reseek(w, *want, 0, &found, &cur, err);
                break;
            }
            cur = *m;
            found = 1;
        }
    }
    free(ahead);
    return st;
}

/* Walking backwards, one LIST per object would dominate: instead list a
 * window of objects behind the current one (sized from the current
 * object's record count) and walk through it, falling back to an exact
 * seek when the window misses. */
static kl_status locate_backward(walk *w, uint64_t want, uint64_t span, uint64_t guess,
                                 kl_object_meta **win, size_t *nwin, kl_object_meta *out,
                                 int *found, kl_error *err)
{
    const kl_object_meta *m = holding(*win, *nwin, want);
    if (!m) {
        free(*win);
        *win = NULL;
        *nwin = 0;
        if (memo_get(w, want, win, nwin)) {
            m = holding(*win, *nwin, want);
        } else if (span) {
            uint64_t back = span * (LOOKAHEAD - 1);
            uint64_t from = want > back ? want - back : 1;
            kl_status st = Kl_index_list(w->sr->os, w->dir, from, LOOKAHEAD, win, nwin, NULL, err);
            if (st) return st;
            memo_put(w, *win, *nwin);
            m = holding(*win, *nwin, want);
        }
    }
    if (m) {
        *out = *m;
        *found = 1;
        return KL_OK;
    }
    return Kl_index_seek_offset(w->sr->os, &w->pages, w->dir, want, guess, found, out, err);
}

static kl_status walk_backward(walk *w, uint64_t *want, kl_error *err)
{
    uint64_t guess = w->hint_in, span = 0;
    kl_object_meta *win = NULL;
    size_t nwin = 0;
    if (w->has_seed && (win = malloc(sizeof *win))) {
        win[0] = w->seed;
        nwin = 1;
    }
    kl_status st = KL_OK;
    while (*want >= 1 && w->pb.n < w->limit) {
        int found = 0;
        kl_object_meta cur;
        st = locate_backward(w, *want, span, guess, &win, &nwin, &cur, &found, err);
        if (st) break;
        if (!found) {
            st = kl_seterr(err, KL_EBADDATA,
                           "%s: no object holds offset %" PRIu64 " although later offsets exist",
                           w->dir, *want);
            break;
        }
        kl_cobj *o;
        st = fetch(w, &cur, &o, err);
        if (st == KL_ENOTFOUND) { /* compacted away: list afresh */
            memo_forget(w);
            free(win);
            win = NULL;
            nwin = 0;
            guess = span = 0;
            st = KL_OK;
            if (++w->reseeks > MAX_RESEEKS) {
                st = kl_seterr(err, KL_EIO, "%s: objects kept vanishing", w->dir);
                break;
            }
            continue;
        }
        if (st) break;
        if (*want >= o->first && *want - o->first < o->count)
            st = Kl_objwalk_backward(o, &w->pb, w->limit, want, err);
        if (*want < cur.first_offset) passed(w, o);
        Kl_cobj_release(o);
        if (st) break;
        guess = cur.prior;
        span = cur.last_offset - cur.first_offset + 1;
        /* The object holding the next wanted offset: this one if the page
         * ended inside it, else (probably) the one before it. */
        w->hint_out = *want >= cur.first_offset ? cur.first_offset : cur.prior;
    }
    free(win);
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
        st = fetch(w, &m, &o, err);
        if (st == KL_ENOTFOUND && ++w->reseeks <= MAX_RESEEKS) continue;
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
            st = want ? walk_backward(&w, &want, err) : KL_OK;
        else
            st = walk_forward(&w, &want, err);
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
    pthread_mutex_destroy(&sr->memo.mu);
    free(sr->memo.dir);
    free(sr->memo.v);
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
    pthread_mutex_init(&sr->memo.mu, NULL);
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
