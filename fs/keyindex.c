/* keyindex.c -- a key's byte-offset index: which data object holds text
 * byte N of the key's text view.
 *
 * A key reads as its records, each followed by '\n', so an object of n
 * records and `size` body bytes shows size - 39 * n text bytes; summing
 * that over the objects of a listing gives every object's start without
 * downloading anything.  The index is built once from kl_list_objects and
 * then refreshed incrementally: a refresh lists from the newest known
 * object on (that object included, so that we notice when a compaction
 * replaced it), never the whole key again.
 *
 * Compaction replaces several objects by one covering the same offsets
 * with the same text bytes, so the text position of every offset never
 * changes; only object boundaries do.  When an indexed object vanishes
 * (KL_ENOTFOUND on read, or a refresh no longer sees it) we re-list from an
 * earlier entry, stepping back exponentially until the listing starts at an
 * object boundary we know, and splice the new objects in at that entry's
 * text position.
 *
 * The pending tail holds lines this mount appended that no listing shows
 * yet (they sit in the batching writer).  The store writer reports each
 * object it publishes for this mount (ki_published): an object that
 * directly follows the listed ones is indexed at once, and any other
 * leaves the tail exactly when a listing covers it.  Other writers'
 * objects in between therefore never retire our lines, and our lines take
 * their true position in the log as soon as they are published. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "fs.h"

void ki_init(keyindex *ki)
{
    memset(ki, 0, sizeof *ki);
    pthread_mutex_init(&ki->mu, NULL);
    pthread_mutex_init(&ki->list_mu, NULL);
    pthread_mutex_init(&ki->append_mu, NULL);
}

static uint64_t text_len(const kl_object_meta *m)
{
    uint64_t records = m->last_offset - m->first_offset + 1;
    uint64_t shrink = records * KLFS_TEXT_SHRINK;
    return m->size > shrink ? m->size - shrink : 0;
}

static int grow(keyindex *ki, size_t need)
{
    if (need <= ki->cap) return 0;
    size_t cap = ki->cap ? ki->cap : 16;
    while (cap < need) cap *= 2;
    kentry *v = realloc(ki->v, cap * sizeof *v);
    if (!v) return -1;
    ki->v = v;
    ki->cap = cap;
    return 0;
}

/* Retires listed bytes from the front of the pending tail. */
static void pending_retire(keyindex *ki, uint64_t bytes)
{
    size_t drop = bytes < ki->pend_len ? (size_t)bytes : ki->pend_len;
    if (drop == 0) return;
    memmove(ki->pend, ki->pend + drop, ki->pend_len - drop);
    ki->pend_len -= drop;
    /* The buffer stays while the key is being written: freeing and
     * regrowing it every flush costs a page fault per 4 KiB appended.
     * ki_pending_release drops it when a writer closes. */
}

/* Replaces entries [keep, n) by the listing `res` (which starts at entry
 * keep's first offset, or at offset 1 when keep == 0 and n == 0). */
static kl_status splice_listing(keyindex *ki, size_t keep, const kl_object_meta *res, size_t nres)
{
    pthread_mutex_lock(&ki->mu);
    uint64_t start = keep < ki->n ? ki->v[keep].start : 0;
    if (grow(ki, keep + nres) != 0) {
        pthread_mutex_unlock(&ki->mu);
        return KL_ENOMEM;
    }
    ki->n = keep;
    for (size_t j = 0; j < nres; j++) {
        kentry *e = &ki->v[ki->n++];
        e->m = res[j];
        e->start = start;
        e->len = text_len(&res[j]);
        start += e->len;
    }
    /* Our published objects that this listing covers leave the tail. */
    uint64_t listed = ki->n ? ki->v[ki->n - 1].m.last_offset : 0;
    size_t done = 0;
    while (done < ki->n_mine && ki->mine[done].last <= listed)
        pending_retire(ki, ki->mine[done++].text);
    if (done) { /* (never memmove a NULL buffer, even by 0 bytes: UB) */
        memmove(ki->mine, ki->mine + done, (ki->n_mine - done) * sizeof *ki->mine);
        ki->n_mine -= done;
    }
    ki->committed = start;
    ki->loaded = 1;
    ki->refreshed_ms = kl_mono_ms();
    pthread_mutex_unlock(&ki->mu);
    return KL_OK;
}

/* Lists objects with first offset > after. */
static kl_status list_after(klfs *fs, node *k, uint64_t after, kl_object_meta **res, size_t *n,
                            kl_error *err)
{
    KLFS_COUNT(fs, listings, 1);
    return kl_list_objects(fs->os, &fs->cfg.store, k->parent->name, k->name, after, 0, res, n, err);
}

/* The re-listing step, list_mu held.  See the file comment. */
static kl_status resync_locked(klfs *fs, node *k, size_t i, kl_error *err)
{
    keyindex *ki = &k->ki;
    size_t step = 1;
    for (;;) {
        pthread_mutex_lock(&ki->mu);
        size_t n = ki->n;
        uint64_t first = i < n ? ki->v[i].m.first_offset : 0;
        pthread_mutex_unlock(&ki->mu);
        if (n == 0) i = 0;
        kl_object_meta *res = NULL;
        size_t nres = 0;
        kl_status st = list_after(fs, k, first ? first - 1 : 0, &res, &nres, err);
        if (st) return st;
        /* The listing is usable when it starts where entry i started (an
         * object boundary whose text position we know), or at the start. */
        if (n == 0 || i == 0 || (nres > 0 && res[0].first_offset == first)) {
            st = splice_listing(ki, n == 0 ? 0 : i, res, nres);
            free(res);
            if (st) kl_seterr(err, st, "out of memory");
            return st;
        }
        free(res);
        i = i > step ? i - step : 0;
        step *= 2;
    }
}

kl_status ki_set_listing(keyindex *ki, const kl_object_meta *v, size_t n)
{
    pthread_mutex_lock(&ki->list_mu);
    kl_status st = splice_listing(ki, 0, v, n);
    pthread_mutex_unlock(&ki->list_mu);
    return st;
}

kl_status ki_resync(klfs *fs, node *k, size_t i, kl_error *err)
{
    pthread_mutex_lock(&k->ki.list_mu);
    kl_status st = resync_locked(fs, k, i, err);
    pthread_mutex_unlock(&k->ki.list_mu);
    return st;
}

kl_status ki_refresh(klfs *fs, node *k, int64_t max_age_ms, kl_error *err)
{
    keyindex *ki = &k->ki;
    pthread_mutex_lock(&ki->list_mu);
    pthread_mutex_lock(&ki->mu);
    int fresh = ki->loaded && max_age_ms > 0 && kl_mono_ms() - ki->refreshed_ms < max_age_ms;
    size_t last = ki->n ? ki->n - 1 : 0;
    pthread_mutex_unlock(&ki->mu);
    kl_status st = fresh ? KL_OK : resync_locked(fs, k, last, err);
    pthread_mutex_unlock(&ki->list_mu);
    return st;
}

uint64_t ki_size(keyindex *ki)
{
    pthread_mutex_lock(&ki->mu);
    uint64_t s = ki->committed + ki->pend_len;
    pthread_mutex_unlock(&ki->mu);
    return s;
}

/* Index of the last entry starting at or before pos (mu held, n > 0). */
static size_t search_pos(const keyindex *ki, uint64_t pos)
{
    size_t lo = 0, hi = ki->n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ki->v[mid].start <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

kloc ki_locate(keyindex *ki, uint64_t pos)
{
    kloc l = {.kind = LOC_EOF};
    pthread_mutex_lock(&ki->mu);
    if (pos < ki->committed && ki->n) {
        l.kind = LOC_OBJECT;
        l.i = search_pos(ki, pos);
        l.e = ki->v[l.i];
    } else if (pos < ki->committed + ki->pend_len) {
        l.kind = LOC_PENDING;
    }
    pthread_mutex_unlock(&ki->mu);
    return l;
}

int ki_find_offset(keyindex *ki, uint64_t offset, kloc *out)
{
    int found = 0;
    pthread_mutex_lock(&ki->mu);
    size_t lo = 0, hi = ki->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const kl_object_meta *m = &ki->v[mid].m;
        if (offset < m->first_offset) {
            hi = mid;
        } else if (offset > m->last_offset) {
            lo = mid + 1;
        } else {
            out->kind = LOC_OBJECT;
            out->i = mid;
            out->e = ki->v[mid];
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&ki->mu);
    return found;
}

size_t ki_next_entries(keyindex *ki, size_t i, kentry *out, size_t max)
{
    size_t c = 0;
    pthread_mutex_lock(&ki->mu);
    for (size_t j = i + 1; j < ki->n && c < max; j++) out[c++] = ki->v[j];
    pthread_mutex_unlock(&ki->mu);
    return c;
}

size_t ki_read_pending(keyindex *ki, uint64_t pos, uint8_t *buf, size_t len)
{
    size_t c = 0;
    pthread_mutex_lock(&ki->mu);
    if (pos >= ki->committed && pos < ki->committed + ki->pend_len) {
        size_t at = (size_t)(pos - ki->committed);
        c = ki->pend_len - at < len ? ki->pend_len - at : len;
        memcpy(buf, ki->pend + at, c);
    }
    pthread_mutex_unlock(&ki->mu);
    return c;
}

int ki_pending_add(keyindex *ki, const void *p1, size_t n1, const void *p2, size_t n2)
{
    pthread_mutex_lock(&ki->mu);
    size_t need = ki->pend_len + n1 + n2;
    if (need > ki->pend_cap) {
        size_t cap = ki->pend_cap ? ki->pend_cap : 4096;
        while (cap < need) cap *= 2;
        uint8_t *p = realloc(ki->pend, cap);
        if (!p) {
            pthread_mutex_unlock(&ki->mu);
            return -1;
        }
        ki->pend = p;
        ki->pend_cap = cap;
    }
    if (n1) memcpy(ki->pend + ki->pend_len, p1, n1);
    if (n2) memcpy(ki->pend + ki->pend_len + n1, p2, n2);
    ki->pend_len = need;
    ki->pend_mtime = kl_now_ms();
    pthread_mutex_unlock(&ki->mu);
    return 0;
}

void ki_published(keyindex *ki, const kl_object_meta *m)
{
    pthread_mutex_lock(&ki->mu);
    uint64_t listed = ki->n ? ki->v[ki->n - 1].m.last_offset : 0;
    if (m->last_offset <= listed) {
        pending_retire(ki, text_len(m)); /* a listing got there first */
    } else if (ki->loaded && ki->n_mine == 0 && m->first_offset == listed + 1 &&
               grow(ki, ki->n + 1) == 0) {
        kentry *e = &ki->v[ki->n++];
        e->m = *m;
        e->start = ki->committed;
        e->len = text_len(m);
        ki->committed += e->len;
        pending_retire(ki, e->len);
    } else {
        if (ki->n_mine == ki->cap_mine) {
            size_t cap = ki->cap_mine ? ki->cap_mine * 2 : 8;
            struct kmine *v = realloc(ki->mine, cap * sizeof *v);
            if (!v) { /* out of memory: better unseen until listed than twice */
                pending_retire(ki, text_len(m));
                pthread_mutex_unlock(&ki->mu);
                return;
            }
            ki->mine = v;
            ki->cap_mine = cap;
        }
        ki->mine[ki->n_mine++] = (struct kmine){m->last_offset, text_len(m)};
    }
    pthread_mutex_unlock(&ki->mu);
}

void ki_pending_release(keyindex *ki)
{
    pthread_mutex_lock(&ki->mu);
    if (ki->pend_len == 0) {
        free(ki->pend);
        ki->pend = NULL;
        ki->pend_cap = 0;
    }
    pthread_mutex_unlock(&ki->mu);
}

void ki_pending_undo(keyindex *ki, size_t n)
{
    pthread_mutex_lock(&ki->mu);
    ki->pend_len -= n < ki->pend_len ? n : ki->pend_len;
    pthread_mutex_unlock(&ki->mu);
}

kstat ki_stat(keyindex *ki)
{
    kstat s = {0};
    pthread_mutex_lock(&ki->mu);
    s.size = ki->committed + ki->pend_len;
    s.objects = ki->n;
    s.empty = ki->n == 0;
    s.next_offset = 1;
    if (ki->n) {
        const kl_object_meta *last = &ki->v[ki->n - 1].m;
        s.next_offset = last->last_offset + 1;
        s.next_nonce = last->next_nonce;
        s.first_ts = ki->v[0].m.min_ts;
        s.last_ts = last->max_ts;
        s.mtime = s.last_ts;
    }
    if (ki->pend_len && ki->pend_mtime > s.mtime) s.mtime = ki->pend_mtime;
    pthread_mutex_unlock(&ki->mu);
    return s;
}
