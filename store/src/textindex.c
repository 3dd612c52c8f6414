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
 * reports each object it encodes and publishes (kl_textview_report): one
 * published right after the listed objects is indexed at once (no LIST),
 * any other leaves the tail exactly when a listing covers it, and one a
 * listing shows before its report is known by its name.  Other writers'
 * objects in between therefore never retire our lines, our lines take
 * their true position in the log as soon as they are published, and they
 * are never shown twice. */
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

/* ---- our own objects (the `mine` list, textview.h) ---------------------- */

enum { MINE_ENCODED, MINE_PUBLISHED, MINE_LISTED };

static int meta_eq(const kl_object_meta *a, const kl_object_meta *b)
{
    return a->first_offset == b->first_offset && a->last_offset == b->last_offset &&
           a->min_ts == b->min_ts && a->max_ts == b->max_ts && a->first_nonce == b->first_nonce &&
           a->next_nonce == b->next_nonce && a->size == b->size && a->prior == b->prior;
}

/* Index of the entry holding offset, or n (mu held). */
static size_t find_offset(const kl_textview *tv, uint64_t offset)
{
    size_t lo = 0, hi = tv->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (offset < tv->v[mid].m.first_offset)
            hi = mid;
        else if (offset > tv->v[mid].m.last_offset)
            lo = mid + 1;
        else
            return mid;
    }
    return tv->n;
}

static size_t mine_find(const kl_textview *tv, const kl_object_meta *m)
{
    size_t k = 0;
    while (k < tv->n_mine && !meta_eq(&tv->mine[k].m, m)) k++;
    return k;
}

static void mine_remove(kl_textview *tv, size_t k)
{
    memmove(tv->mine + k, tv->mine + k + 1, (tv->n_mine - k - 1) * sizeof *tv->mine);
    tv->n_mine--;
}

/* The kl_textview_append call running in this thread, if any: a store
 * writer reports from the appending thread, inside the call. */
static _Thread_local struct {
    const kl_textview *tv;
    uint64_t no, start; /* its number, where its lines begin (kl_tcall) */
} current;

/* Adds m in offset order; -1 out of memory. */
static int mine_add(kl_textview *tv, const kl_object_meta *m, int state)
{
    if (tv->n_mine == tv->cap_mine) {
        size_t cap = tv->cap_mine ? tv->cap_mine * 2 : 8;
        struct kl_tmine *v = realloc(tv->mine, cap * sizeof *v);
        if (!v) return -1;
        tv->mine = v;
        tv->cap_mine = cap;
    }
    size_t k = tv->n_mine;
    while (k > 0 && tv->mine[k - 1].m.first_offset > m->first_offset) k--;
    memmove(tv->mine + k + 1, tv->mine + k, (tv->n_mine - k) * sizeof *tv->mine);
    uint64_t call = current.tv == tv ? current.no : 0;
    tv->mine[k] = (struct kl_tmine){*m, Kl_tv_text_len(m), call, state};
    tv->n_mine++;
    return 0;
}

/* Whether the index holds m itself (mu held). */
static int indexed(const kl_textview *tv, const kl_object_meta *m)
{
    size_t i = find_offset(tv, m->first_offset);
    return i < tv->n && meta_eq(&tv->v[i].m, m);
}

/* Takes the next `text` bytes of this thread's call out of the tail, or
 * retires them from its front outside a call (mu held). */
static void take_out(kl_textview *tv, uint64_t text)
{
    if (current.tv == tv)
        Kl_tv_pend_cut(tv, current.start, text);
    else
        Kl_tv_pend_retire(tv, text);
}

/* After a listing (mu held): our objects it covers settle, oldest first. */
static void mine_settle(kl_textview *tv)
{
    uint64_t listed = tv->n ? tv->v[tv->n - 1].m.last_offset : 0;
    size_t k = 0;
    for (size_t j = 0; j < tv->n_mine; j++) {
        struct kl_tmine e = tv->mine[j];
        if (e.m.last_offset <= listed && e.state == MINE_PUBLISHED) {
            Kl_tv_pend_retire(tv, e.text);
            continue;
        }
        if (e.m.last_offset <= listed && e.state == MINE_ENCODED) {
            if (!indexed(tv, &e.m)) continue; /* not in: its slot lost */
            Kl_tv_pend_retire(tv, e.text);
            e.state = MINE_LISTED;
        }
        tv->mine[k++] = e;
    }
    tv->n_mine = k;
}

/* Replaces entries [keep, n) by the listing `res` (which starts at entry
 * keep's first offset, or at offset 1 when keep == 0).
 *
 * Entries beyond the listing's end are kept when they continue it: the
 * log never loses objects at its end, so a listing that ends earlier is
 * only older than what we know -- it was made while the writer reported
 * its newest object (kl_textview_report), whose lines left the pending
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
    mine_settle(tv);
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
    pthread_mutex_lock(&tv->mu);
    size_t i = find_offset(tv, offset);
    int found = i < tv->n;
    if (found) *out = (kl_tloc){.kind = KL_LOC_OBJECT, .i = i, .e = tv->v[i]};
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

/* The PUBLISHED report of m (k: its entry, or n_mine), mu held. */
static void published(kl_textview *tv, const kl_object_meta *m, size_t k)
{
    int retired = k < tv->n_mine && tv->mine[k].state == MINE_LISTED;
    if (k < tv->n_mine) mine_remove(tv, k);
    /* Reports come in offset order: an earlier object of ours still
     * ENCODED lost its slot, and one LISTED will not be reported. */
    size_t j = 0;
    for (size_t i = 0; i < tv->n_mine; i++)
        if (tv->mine[i].state == MINE_PUBLISHED || tv->mine[i].m.first_offset > m->first_offset)
            tv->mine[j++] = tv->mine[i];
    tv->n_mine = j;
    uint64_t listed = tv->n ? tv->v[tv->n - 1].m.last_offset : 0;
    uint64_t text = Kl_tv_text_len(m);
    int earlier = tv->n_mine && tv->mine[0].m.first_offset < m->first_offset;
    if (retired) {
        /* a listing showed it: its lines left the tail then */
    } else if (m->last_offset <= listed) {
        Kl_tv_pend_retire(tv, text); /* a listing got there first */
    } else if (tv->loaded && !earlier && m->first_offset == listed + 1 &&
               grow(tv, tv->n + 1) == 0) {
        tv->v[tv->n++] = (kl_tentry){.m = *m, .start = tv->committed};
        tv->committed += text;
        Kl_tv_pend_retire(tv, text);
    } else if (mine_add(tv, m, MINE_PUBLISHED) != 0) {
        Kl_tv_pend_retire(tv, text); /* out of memory: better unseen until listed than twice */
    }
}

void kl_textview_report(kl_textview *tv, kl_publish_event ev, const kl_object_meta *m)
{
    pthread_mutex_lock(&tv->mu);
    size_t k = mine_find(tv, m);
    if (ev == KL_OBJECT_ENCODED && k == tv->n_mine && indexed(tv, m)) {
        /* A retry encoding again an object a listing already showed (its
         * failed call took its lines back, this call added them again):
         * they leave the tail now, its report is absorbed. */
        take_out(tv, Kl_tv_text_len(m));
        (void)mine_add(tv, m, MINE_LISTED);
    } else if (ev == KL_OBJECT_ENCODED && k == tv->n_mine) {
        /* Out of memory: a listing ahead of the report may show its lines
         * twice until the report comes. */
        (void)mine_add(tv, m, MINE_ENCODED);
    } else if (ev == KL_OBJECT_DROPPED) {
        /* Another writer's object took m's slot.  If a listing took that
         * object (same name: same offsets, sizes and times) for ours, our
         * lines left the tail too early: the object that really holds them
         * takes the credit instead of retiring them again (a view's
         * records hold no nonces, so none is a duplicate of that object's
         * and all are written again). */
        if (k < tv->n_mine && tv->mine[k].state == MINE_LISTED) {
            tv->credit += tv->mine[k].text;
            tv->credit_call = tv->mine[k].call;
        }
        if (k < tv->n_mine) mine_remove(tv, k);
    } else if (ev == KL_OBJECT_IN_AGAIN) {
        /* Only a call that added the lines again gets this: a batching
         * writer retries records it kept, not the view's. */
        if (current.tv == tv) take_out(tv, Kl_tv_text_len(m));
    } else if (ev == KL_OBJECT_PUBLISHED) {
        published(tv, m, k);
    }
    pthread_mutex_unlock(&tv->mu);
}

kl_status Kl_tv_append_begin(kl_textview *tv, const kl_insertion *ins, size_t n, kl_tcall *call)
{
    pthread_mutex_lock(&tv->mu);
    call->no = ++tv->calls;
    kl_status st = Kl_tv_pend_add(tv, ins, n, &call->start);
    pthread_mutex_unlock(&tv->mu);
    if (st == KL_OK) current.tv = tv, current.no = call->no, current.start = call->start;
    return st;
}

void Kl_tv_append_end(kl_textview *tv, const kl_tcall *call, int failed)
{
    current.tv = NULL;
    if (!failed) return;
    pthread_mutex_lock(&tv->mu);
    size_t k = 0;
    for (size_t j = 0; j < tv->n_mine; j++)
        if (tv->mine[j].call != call->no) tv->mine[k++] = tv->mine[j];
    tv->n_mine = k;
    if (tv->credit_call == call->no) tv->credit = 0;
    Kl_tv_pend_cut(tv, call->start, UINT64_MAX); /* what is left of its lines */
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
