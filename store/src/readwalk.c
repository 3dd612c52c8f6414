/* readwalk.c -- the walks of readwalk.h: forwards through a look-ahead
 * listing (kept in the reader's memo for the next page), backwards through
 * windows of objects sized from the current one, fetching through the
 * reader's cache and hinting readahead with what the page still needs. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "objwalk.h"
#include "readwalk.h"

kl_status Kl_walk_fetch(walk *w, const kl_object_meta *m, kl_cobj **o, kl_error *err)
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
    /* A re-seek follows a listing proved stale (an object gone, or a gap
     * where a merge now starts earlier): the pages this read has seen are
     * as stale, and answering from them would find the same gone object
     * again and again. */
    Kl_index_pages_free(&w->pages);
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

kl_status Kl_walk_forward(walk *w, uint64_t *want, kl_error *err)
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
        st = Kl_walk_fetch(w, &cur, &o, err);
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

kl_status Kl_walk_backward(walk *w, uint64_t *want, kl_error *err)
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
        st = Kl_walk_fetch(w, &cur, &o, err);
        if (st == KL_ENOTFOUND) { /* compacted away: list afresh */
            memo_forget(w);
            Kl_index_pages_free(&w->pages);
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

void Kl_walk_memo_init(list_memo *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void Kl_walk_memo_free(list_memo *m)
{
    pthread_mutex_destroy(&m->mu);
    free(m->dir);
    free(m->v);
}
