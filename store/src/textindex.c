/* textindex.c -- a text view's byte map: which data object holds text byte
 * N of a key, and the pending tail of this process's own unlisted lines.
 *
 * The index is built once from a listing and then refreshed
 * incrementally: a refresh lists from the newest known object on (that
 * object included, so that we notice when a compaction replaced it),
 * never the whole key again.
 *
 * Compaction replaces several objects by one covering the same offsets
 * with the same text bytes, so the text position of every offset never
 * changes; only object boundaries do.  When an indexed object vanishes
 * (KL_ENOTFOUND on read, or a refresh no longer sees it) we re-list from an
 * earlier entry, stepping back exponentially until the listing starts at an
 * object boundary we know, and splice the new objects in at that entry's
 * text position.
 *
 * The pending tail holds lines appended through kl_textview_append that no
 * listing shows yet (they sit in a batching writer).  The store writer
 * reports each object it publishes (kl_textview_published): one that
 * directly follows the listed objects is indexed at once (no LIST), and
 * any other leaves the tail exactly when a listing covers it.  Other
 * writers' objects in between therefore never retire our lines, and our
 * lines take their true position in the log as soon as they are
 * published. */
#include <stdlib.h>
#include <string.h>

#include "keyindex.h"
#include "textview.h"

uint64_t Kl_tv_text_len(const kl_object_meta *m)
{
    uint64_t records = m->last_offset - m->first_offset + 1;
    uint64_t shrink = records * KL_TEXT_SHRINK;
    return m->size > shrink ? m->size - shrink : 0;
}

/* Room for `need` entries: exactly that many when a listing brings more
 * than doubling would (the first listing of a big key costs 96 bytes per
 * object, not up to twice that), doubling when a key grows by a few. */
static int grow(kl_textview *tv, size_t need)
{
    if (need <= tv->cap) return 0;
    size_t cap = tv->cap * 2 > need ? tv->cap * 2 : need;
    kl_tentry *v = realloc(tv->v, cap * sizeof *v);
    if (!v) return -1;
    tv->v = v;
    tv->cap = cap;
    return 0;
}

/* Retires listed bytes from the front of the pending tail.  The buffer
 * stays while the key is being written (freeing and regrowing it every
 * flush costs a page fault per 4 KiB); kl_textview_pending_release drops
 * it when a writer is done. */
static void pending_retire(kl_textview *tv, uint64_t bytes)
{
    size_t drop = bytes < tv->pend_len ? (size_t)bytes : tv->pend_len;
    if (drop == 0) return;
    memmove(tv->pend, tv->pend + drop, tv->pend_len - drop);
    tv->pend_len -= drop;
}

/* Replaces entries [keep, n) by the listing `res` (which starts at entry
 * keep's first offset, or at offset 1 when keep == 0).
 *
 * Entries beyond the listing's end are kept when they continue it: the
 * log never loses objects at its end, so a listing that ends earlier is
 * only older than what we know -- it was made while the writer reported
 * its newest object (kl_textview_published), whose lines left the pending
 * tail then and would otherwise vanish until the next listing. */
static kl_status splice_listing(kl_textview *tv, size_t keep, const kl_object_meta *res,
                                size_t nres)
{
    pthread_mutex_lock(&tv->mu);
    uint64_t start = keep < tv->n ? tv->v[keep].start : 0;
    uint64_t end = nres ? res[nres - 1].last_offset : keep ? tv->v[keep - 1].m.last_offset : 0;
    size_t s0 = keep;
    while (s0 < tv->n && tv->v[s0].m.first_offset <= end) s0++;
    size_t nsave = tv->n - s0;
    kl_tentry *save = nsave ? malloc(nsave * sizeof *save) : NULL;
    if (save) memcpy(save, tv->v + s0, nsave * sizeof *save);
    if (!save) nsave = 0;
    if (grow(tv, keep + nres + nsave) != 0) {
        free(save);
        pthread_mutex_unlock(&tv->mu);
        return KL_ENOMEM;
    }
    tv->n = keep;
    for (size_t j = 0; j < nres; j++) {
        kl_tentry *e = &tv->v[tv->n++];
        e->m = res[j];
        e->start = start;
        start += Kl_tv_text_len(&res[j]);
    }
    for (size_t j = 0; j < nsave; j++) {
        uint64_t next = tv->n ? tv->v[tv->n - 1].m.last_offset + 1 : 1;
        if (save[j].m.first_offset != next) break; /* not contiguous: the next listing */
        save[j].start = start;
        tv->v[tv->n++] = save[j];
        start += Kl_tv_text_len(&save[j].m);
    }
    free(save);
    /* Our published objects that this listing covers leave the tail. */
    uint64_t listed = tv->n ? tv->v[tv->n - 1].m.last_offset : 0;
    size_t done = 0;
    while (done < tv->n_mine && tv->mine[done].last <= listed)
        pending_retire(tv, tv->mine[done++].text);
    if (done) { /* (never memmove a NULL buffer, even by 0 bytes: UB) */
        memmove(tv->mine, tv->mine + done, (tv->n_mine - done) * sizeof *tv->mine);
        tv->n_mine -= done;
    }
    tv->committed = start;
    tv->loaded = 1;
    tv->refreshed_ms = kl_mono_ms();
    pthread_mutex_unlock(&tv->mu);
    return KL_OK;
}

/* The re-listing step, list_mu held.  See the file comment. */
static kl_status resync_locked(kl_textview *tv, size_t i, kl_error *err)
{
    size_t step = 1;
    for (;;) {
        pthread_mutex_lock(&tv->mu);
        size_t n = tv->n;
        if (n && i >= n) i = n - 1; /* another resync shrank the index */
        uint64_t first = i < n ? tv->v[i].m.first_offset : 0;
        pthread_mutex_unlock(&tv->mu);
        if (n == 0) i = 0;
        kl_object_meta *res = NULL;
        size_t nres = 0;
        kl_status st =
            Kl_index_list(tv->sr->os, tv->dir, first ? first : 1, 0, &res, &nres, NULL, err);
        if (st) return st;
        /* The listing is usable when it starts where entry i started (an
         * object boundary whose text position we know), or at the start. */
        if (n == 0 || i == 0 || (nres > 0 && res[0].first_offset == first)) {
            st = splice_listing(tv, n == 0 ? 0 : i, res, nres);
            free(res);
            if (st) kl_seterr(err, st, "out of memory");
            return st;
        }
        free(res);
        i = i > step ? i - step : 0;
        step *= 2;
    }
}

kl_status Kl_tv_resync(kl_textview *tv, size_t i, kl_error *err)
{
    pthread_mutex_lock(&tv->list_mu);
    kl_status st = resync_locked(tv, i, err);
    pthread_mutex_unlock(&tv->list_mu);
    return st;
}

kl_status kl_textview_refresh(kl_textview *tv, int64_t max_age_ms, kl_error *err)
{
    pthread_mutex_lock(&tv->list_mu);
    pthread_mutex_lock(&tv->mu);
    int fresh = tv->loaded && max_age_ms > 0 && kl_mono_ms() - tv->refreshed_ms < max_age_ms;
    size_t last = tv->n ? tv->n - 1 : 0;
    pthread_mutex_unlock(&tv->mu);
    kl_status st = fresh ? KL_OK : resync_locked(tv, last, err);
    pthread_mutex_unlock(&tv->list_mu);
    return st;
}

/* Index of the last entry starting at or before pos (mu held, n > 0). */
static size_t search_pos(const kl_textview *tv, uint64_t pos)
{
    size_t lo = 0, hi = tv->n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tv->v[mid].start <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

kl_tloc Kl_tv_locate(kl_textview *tv, uint64_t pos)
{
    kl_tloc l = {.kind = KL_LOC_EOF};
    pthread_mutex_lock(&tv->mu);
    if (pos < tv->committed && tv->n) {
        l.kind = KL_LOC_OBJECT;
        l.i = search_pos(tv, pos);
        l.e = tv->v[l.i];
    } else if (pos < tv->committed + tv->pend_len) {
        l.kind = KL_LOC_PENDING;
    }
    pthread_mutex_unlock(&tv->mu);
    return l;
}

int Kl_tv_find_offset(kl_textview *tv, uint64_t offset, kl_tloc *out)
{
    int found = 0;
    pthread_mutex_lock(&tv->mu);
    size_t lo = 0, hi = tv->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const kl_object_meta *m = &tv->v[mid].m;
        if (offset < m->first_offset) {
            hi = mid;
        } else if (offset > m->last_offset) {
            lo = mid + 1;
        } else {
            *out = (kl_tloc){.kind = KL_LOC_OBJECT, .i = mid, .e = tv->v[mid]};
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&tv->mu);
    return found;
}

size_t Kl_tv_next(kl_textview *tv, size_t i, kl_tentry *out, size_t max)
{
    size_t c = 0;
    pthread_mutex_lock(&tv->mu);
    for (size_t j = i + 1; j < tv->n && c < max; j++) out[c++] = tv->v[j];
    pthread_mutex_unlock(&tv->mu);
    return c;
}

size_t Kl_tv_read_pending(kl_textview *tv, uint64_t pos, uint8_t *buf, size_t len)
{
    size_t c = 0;
    pthread_mutex_lock(&tv->mu);
    if (pos >= tv->committed && pos < tv->committed + tv->pend_len) {
        size_t at = (size_t)(pos - tv->committed);
        c = tv->pend_len - at < len ? tv->pend_len - at : len;
        memcpy(buf, tv->pend + at, c);
    }
    pthread_mutex_unlock(&tv->mu);
    return c;
}

kl_status Kl_tv_pending_add(kl_textview *tv, const kl_insertion *ins, size_t n)
{
    size_t add = 0;
    for (size_t i = 0; i < n; i++) add += ins[i].len + 1;
    pthread_mutex_lock(&tv->mu);
    size_t need = tv->pend_len + add;
    if (need > tv->pend_cap) {
        size_t cap = tv->pend_cap ? tv->pend_cap : 4096;
        while (cap < need) cap *= 2;
        uint8_t *p = realloc(tv->pend, cap);
        if (!p) {
            pthread_mutex_unlock(&tv->mu);
            return KL_ENOMEM;
        }
        tv->pend = p;
        tv->pend_cap = cap;
    }
    uint8_t *at = tv->pend + tv->pend_len;
    for (size_t i = 0; i < n; i++) {
        if (ins[i].len) memcpy(at, ins[i].data, ins[i].len);
        at += ins[i].len;
        *at++ = '\n';
    }
    tv->pend_len = need;
    tv->pend_mtime = kl_now_ms();
    pthread_mutex_unlock(&tv->mu);
    return KL_OK;
}

void Kl_tv_pending_undo(kl_textview *tv, size_t bytes)
{
    pthread_mutex_lock(&tv->mu);
    tv->pend_len -= bytes < tv->pend_len ? bytes : tv->pend_len;
    pthread_mutex_unlock(&tv->mu);
}

void kl_textview_published(kl_textview *tv, const kl_object_meta *m)
{
    pthread_mutex_lock(&tv->mu);
    uint64_t listed = tv->n ? tv->v[tv->n - 1].m.last_offset : 0;
    uint64_t text = Kl_tv_text_len(m);
    if (m->last_offset <= listed) {
        pending_retire(tv, text); /* a listing got there first */
    } else if (tv->loaded && tv->n_mine == 0 && m->first_offset == listed + 1 &&
               grow(tv, tv->n + 1) == 0) {
        tv->v[tv->n++] = (kl_tentry){.m = *m, .start = tv->committed};
        tv->committed += text;
        pending_retire(tv, text);
    } else {
        if (tv->n_mine == tv->cap_mine) {
            size_t cap = tv->cap_mine ? tv->cap_mine * 2 : 8;
            struct kl_tmine *v = realloc(tv->mine, cap * sizeof *v);
            if (!v) { /* out of memory: better unseen until listed than twice */
                pending_retire(tv, text);
                pthread_mutex_unlock(&tv->mu);
                return;
            }
            tv->mine = v;
            tv->cap_mine = cap;
        }
        tv->mine[tv->n_mine++] = (struct kl_tmine){m->last_offset, text};
    }
    pthread_mutex_unlock(&tv->mu);
}

void kl_textview_pending_release(kl_textview *tv)
{
    pthread_mutex_lock(&tv->mu);
    if (tv->pend_len == 0) {
        free(tv->pend);
        tv->pend = NULL;
        tv->pend_cap = 0;
    }
    pthread_mutex_unlock(&tv->mu);
}

void kl_textview_stat(kl_textview *tv, kl_textview_info *out)
{
    kl_textview_info s = {.next_offset = 1};
    pthread_mutex_lock(&tv->mu);
    s.size = tv->committed + tv->pend_len;
    s.pending = tv->pend_len;
    s.objects = tv->n;
    s.loaded = tv->loaded;
    s.listed_ms = tv->refreshed_ms;
    if (tv->n) {
        const kl_object_meta *last = &tv->v[tv->n - 1].m;
        s.next_offset = last->last_offset + 1;
        s.next_nonce = last->next_nonce;
        s.first_timestamp = tv->v[0].m.min_ts;
        s.last_timestamp = last->max_ts;
        s.mtime = s.last_timestamp;
    }
    if (tv->pend_len && tv->pend_mtime > s.mtime) s.mtime = tv->pend_mtime;
    pthread_mutex_unlock(&tv->mu);
    *out = s;
}
