/* textview.c -- a key's records as a byte stream (klstore.h "Text views"):
 * reads at any byte position, views from an offset, timestamp or nonce, a
 * growing end, and read-your-writes for lines appended through the view.
 *
 * Bytes come straight out of object bodies in the reader's object cache:
 * each record's payload and a '\n', copied once into the caller's buffer
 * (no rendered copy of the object is kept).  Framing and offsets are
 * checked as the bytes are copied, so a corrupt object is KL_EBADDATA, not
 * wrong text.  A sequential reader continues where the last read stopped
 * (the view's hint), so a scan walks every record header once.
 *
 * An object compacted away under a read (KL_ENOTFOUND) makes the view
 * re-list that region and retry; the text position of every byte is
 * unchanged by compaction, so the retry reads the same bytes from the
 * merged object.  Reading at the end refreshes the index (no more often
 * than the caller's max_age_ms): that is what makes `tail -f` see lines
 * other writers appended. */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "keyindex.h"
#include "layout.h"
#include "textview.h"
#include "workpool.h"

/* Re-listings one read may make after finding objects compacted away
 * before giving up (each follows a fresh listing, so more than a few
 * means the store changes faster than we can follow). */
#define MAX_RESYNC 8

kl_status kl_textview_open(kl_reader *r, const char *keyspace, const char *key, kl_textview **out,
                           kl_error *err)
{
    store_reader *sr = Kl_store_reader(r);
    if (!sr) return kl_seterr(err, KL_EINVAL, "a text view needs a store reader");
    kl_status st = kl_validate_name("keyspace", keyspace, err);
    if (st == KL_OK) st = kl_validate_name("key", key, err);
    if (st) return st;
    kl_textview *tv = calloc(1, sizeof *tv);
    if (!tv) return kl_seterr(err, KL_ENOMEM, "out of memory");
    tv->sr = sr;
    tv->keyspace = strdup(keyspace);
    tv->key = strdup(key);
    tv->dir = Kl_layout_key_dir(sr->prefix, keyspace, key);
    if (!tv->keyspace || !tv->key || !tv->dir) {
        kl_textview_close(tv);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&tv->mu, NULL);
    pthread_mutex_init(&tv->list_mu, NULL);
    pthread_mutex_init(&tv->append_mu, NULL);
    *out = tv;
    return KL_OK;
}

void kl_textview_close(kl_textview *tv)
{
    if (!tv) return;
    if (tv->dir) { /* fully opened: the locks exist */
        pthread_mutex_destroy(&tv->mu);
        pthread_mutex_destroy(&tv->list_mu);
        pthread_mutex_destroy(&tv->append_mu);
    }
    free(tv->v);
    free(tv->pend);
    free(tv->mine);
    free(tv->keyspace);
    free(tv->key);
    free(tv->dir);
    free(tv);
}

/* ---- refreshing many views at once ------------------------------------ */

typedef struct many {
    kl_textview *const *tvs;
    int64_t max_age_ms;
} many;

static void refresh_one(void *ctx, size_t i)
{
    many *m = ctx;
    kl_error err = {0};
    /* Best effort: a view whose listing failed stays as it was, and its
     * own next read or refresh lists (and reports) it. */
    (void)kl_textview_refresh(m->tvs[i], m->max_age_ms, &err);
}

kl_status kl_textview_refresh_many(kl_textview *const *tvs, size_t n, int64_t max_age_ms,
                                   unsigned parallel, kl_error *err)
{
    if (n == 0) return KL_OK;
    if (!tvs) return kl_seterr(err, KL_EINVAL, "no text views given");
    size_t helpers = (parallel ? parallel : 8) - 1;
    if (helpers > n - 1) helpers = n - 1;
    /* A pool per call: a few thread starts beside as many round trips. */
    kl_workpool *pool = helpers ? Kl_workpool_new(helpers) : NULL;
    many m = {tvs, max_age_ms};
    Kl_workpool_run(pool, refresh_one, &m, n);
    Kl_workpool_free(pool);
    return KL_OK;
}

/* ---- reading ---------------------------------------------------------- */

/* Hints the objects after entry i to the readahead threads (remote stores
 * only), within half the cache's budget. */
static void prefetch_after(kl_textview *tv, size_t i)
{
    store_reader *sr = tv->sr;
    if (!sr->ra) return;
    kl_tentry next[8];
    size_t want = sr->cfg.reader_readahead < 8 ? (size_t)sr->cfg.reader_readahead : 8;
    size_t n = Kl_tv_next(tv, i, next, want);
    if (n == 0) return;
    uint64_t budget = sr->cfg.reader_cache_bytes / 2, at = next[0].m.first_offset;
    pthread_mutex_lock(&tv->mu);
    if (at < tv->ra_from) tv->ra_upto = 0; /* a reader went back */
    uint64_t upto = tv->ra_upto, pushed = 0;
    tv->ra_from = at;
    pthread_mutex_unlock(&tv->mu);
    for (size_t j = 0; j < n && next[j].m.size <= budget; j++) {
        budget -= next[j].m.size;
        pushed = next[j].m.first_offset;
        if (next[j].m.first_offset <= upto) continue; /* hinted already */
        char *name = Kl_index_name(tv->dir, &next[j].m);
        if (name) Kl_readahead_push(sr->ra, name, &next[j].m);
        free(name);
    }
    /* Only what was handed over counts as hinted: objects beyond the
     * cache's budget are hinted when the reader gets closer. */
    pthread_mutex_lock(&tv->mu);
    if (pushed > tv->ra_upto) tv->ra_upto = pushed;
    pthread_mutex_unlock(&tv->mu);
}

static kl_status corrupt(kl_textview *tv, const kl_cobj *o, const char *why, kl_error *err)
{
    return kl_seterr(err, KL_EBADDATA, "%s/%s: object %s %s", tv->keyspace, tv->key, o->name, why);
}

/* Copies text bytes [at, at + len) of object o (entry e) into buf, walking
 * its records from the view's hint when that lies at or before `at`. */
static kl_status copy_text(kl_textview *tv, kl_cobj *o, const kl_tentry *e, uint64_t at,
                           uint8_t *buf, size_t len, size_t *copied, kl_error *err)
{
    const uint8_t *body = o->body.data;
    size_t blen = o->body.len;
    uint64_t text = 0, bpos = 0, off = e->m.first_offset;
    unsigned slot = KL_TV_HINTS;
    pthread_mutex_lock(&tv->mu);
    for (unsigned i = 0; i < KL_TV_HINTS; i++) {
        const struct kl_thint *h = &tv->hints[i];
        if (h->first == e->m.first_offset + 1 && h->text <= at && h->text >= text) {
            text = h->text;
            bpos = h->body;
            off = h->offset;
            slot = i;
        }
    }
    pthread_mutex_unlock(&tv->mu);
    size_t n = 0;
    while (n < len && bpos < blen) {
        uint32_t plen;
        if (!Kl_codec_framed(body, blen, bpos, &plen))
            return Kl_codec_frame_error(body, blen, bpos, o->name, err);
        if (Kl_le64(body + bpos) != off || off > e->m.last_offset)
            return corrupt(tv, o, "holds records its name does not say", err);
        uint64_t rlen = (uint64_t)plen + 1;
        if (text + rlen > at) {
            size_t skip = (size_t)(at + n - text);
            size_t take = (size_t)(rlen - skip) < len - n ? (size_t)(rlen - skip) : len - n;
            size_t from_payload = skip < plen ? (plen - skip < take ? plen - skip : take) : 0;
            if (from_payload) memcpy(buf + n, body + bpos + KL_RECORD_HEADER + skip, from_payload);
            if (take > from_payload) buf[n + from_payload] = '\n';
            n += take;
            if (skip + take < rlen) break; /* the buffer ends inside this record */
        }
        text += rlen;
        bpos += (size_t)plen + KL_RECORD_OVERHEAD;
        off++;
    }
    if (bpos >= blen && (off != e->m.last_offset + 1 || text != Kl_tv_text_len(&e->m)))
        return corrupt(tv, o, "does not hold the records its name says", err);
    if (n == 0 && len) return corrupt(tv, o, "ends before its text does", err);
    /* The stream that used a hint moves it on; a new one takes a slot. */
    pthread_mutex_lock(&tv->mu);
    if (slot == KL_TV_HINTS) slot = tv->next_hint++ % KL_TV_HINTS;
    tv->hints[slot] = (struct kl_thint){e->m.first_offset + 1, text, bpos, off};
    pthread_mutex_unlock(&tv->mu);
    *copied = n;
    return KL_OK;
}

/* Reads from the object of l; KL_EAGAIN-like retry is signalled by
 * *resynced when it was compacted away and the region re-listed. */
static kl_status read_object(kl_textview *tv, const kl_tloc *l, uint64_t pos, uint8_t *buf,
                             size_t len, size_t *n, int *resynced, kl_error *err)
{
    store_reader *sr = tv->sr;
    char *name = Kl_index_name(tv->dir, &l->e.m);
    if (!name) return kl_seterr(err, KL_ENOMEM, "out of memory");
    kl_cobj *o = NULL;
    kl_status st = Kl_objcache_get(sr->cache, sr->os, name, &l->e.m, &o, err);
    free(name);
    if (st == KL_ENOTFOUND) {
        st = Kl_tv_resync(tv, l->i, err);
        *resynced = st == KL_OK;
        return st;
    }
    if (st) return st;
    uint64_t at = pos - l->e.start, tlen = Kl_tv_text_len(&l->e.m);
    st = copy_text(tv, o, &l->e, at, buf, len, n, err);
    if (st == KL_OK && at + *n >= tlen / 2) prefetch_after(tv, l->i);
    /* A local object read to its end: the kernel's page cache holds it, so
     * keeping it mapped in ours would only churn fresh memory. */
    if (st == KL_OK && sr->os->ops->map && at + *n >= tlen) Kl_objcache_drop(sr->cache, o);
    Kl_cobj_release(o);
    return st;
}

kl_status kl_textview_read(kl_textview *tv, uint64_t pos, void *buf, size_t len, int64_t max_age_ms,
                           size_t *got, kl_error *err)
{
    uint8_t *b = buf;
    size_t done = 0;
    int refreshed = 0, resyncs = 0, from_pending = 0;
    kl_status st = KL_OK;
    while (done < len && st == KL_OK) {
        kl_tloc l = Kl_tv_locate(tv, pos + done);
        size_t n = 0;
        if (l.kind == KL_LOC_OBJECT) {
            int resynced = 0;
            st = read_object(tv, &l, pos + done, b + done, len - done, &n, &resynced, err);
            if (resynced) {
                if (++resyncs > MAX_RESYNC)
                    st = kl_seterr(err, KL_EIO, "%s/%s: objects keep vanishing under the read",
                                   tv->keyspace, tv->key);
                continue;
            }
        } else if (l.kind == KL_LOC_PENDING) {
            n = Kl_tv_read_pending(tv, pos + done, b + done, len - done);
            from_pending |= n > 0;
        } else if (!refreshed && !from_pending) {
            /* At the end: look for lines appended since the last listing.
             * Not after pending bytes were copied: a listing may place
             * other writers' records before them, and one read must not
             * return bytes from two layouts. */
            refreshed = 1;
            st = kl_textview_refresh(tv, max_age_ms, err);
            continue;
        } else {
            break;
        }
        done += n;
    }
    *got = done;
    /* Bytes already copied are the caller's: an error after them waits for
     * the next read, which starts where this one stopped. */
    return done ? KL_OK : st;
}

/* ---- positions of views ------------------------------------------------ */

/* The first record offset at or after start (UINT64_MAX: past the end). */
static kl_status start_offset(kl_textview *tv, const kl_start *start, uint64_t *off, kl_error *err)
{
    if (start->kind == KL_START_FIRST) {
        *off = 1;
        return KL_OK;
    }
    if (start->kind == KL_START_OFFSET) {
        *off = start->offset ? start->offset : 1;
        return KL_OK;
    }
    /* The reader's O(log n) search: one record from the start position. */
    kl_page pg;
    kl_status st =
        kl_read_first_page(&tv->sr->base, tv->keyspace, tv->key, KL_FORWARDS, start, 1, &pg, err);
    if (st) return st;
    *off = pg.count ? pg.records[0].offset : UINT64_MAX;
    kl_page_free(&pg);
    return KL_OK;
}

/* Text position of record `off` inside object o (entry e). */
static kl_status record_pos(kl_textview *tv, kl_cobj *o, const kl_tentry *e, uint64_t off,
                            uint64_t *pos, kl_error *err)
{
    const uint8_t *body = o->body.data;
    size_t blen = o->body.len, bpos = 0;
    uint64_t text = e->start;
    for (uint64_t at = e->m.first_offset; at < off; at++) {
        uint32_t plen;
        if (!Kl_codec_framed(body, blen, bpos, &plen))
            return Kl_codec_frame_error(body, blen, bpos, o->name, err);
        text += (uint64_t)plen + 1;
        bpos += (size_t)plen + KL_RECORD_OVERHEAD;
    }
    *pos = text;
    return KL_OK;
}

kl_status kl_textview_seek(kl_textview *tv, const kl_start *start, uint64_t *pos, kl_error *err)
{
    if (start->kind == KL_START_LAST)
        return kl_seterr(err, KL_EINVAL, "a text view starts at a record, not at the newest");
    uint64_t off;
    kl_status st = start_offset(tv, start, &off, err);
    if (st) return st;
    for (int tries = 0; tries <= MAX_RESYNC; tries++) {
        kl_tloc l;
        if (off == UINT64_MAX || !Kl_tv_find_offset(tv, off, &l)) {
            /* Not listed yet (or past the end): refresh once, else the view
             * starts at the end of what is listed. */
            if (tries == 0 && off != UINT64_MAX && kl_textview_refresh(tv, 0, err) == KL_OK)
                continue;
            pthread_mutex_lock(&tv->mu);
            *pos = tv->committed;
            pthread_mutex_unlock(&tv->mu);
            return KL_OK;
        }
        char *name = Kl_index_name(tv->dir, &l.e.m);
        if (!name) return kl_seterr(err, KL_ENOMEM, "out of memory");
        kl_cobj *o = NULL;
        st = Kl_objcache_get(tv->sr->cache, tv->sr->os, name, &l.e.m, &o, err);
        free(name);
        if (st == KL_ENOTFOUND && Kl_tv_resync(tv, l.i, err) == KL_OK) continue;
        if (st) return st;
        st = record_pos(tv, o, &l.e, off, pos, err);
        Kl_cobj_release(o);
        return st;
    }
    return kl_seterr(err, KL_EIO, "%s/%s: objects keep vanishing under the seek", tv->keyspace,
                     tv->key);
}

/* ---- appending ---------------------------------------------------------- */

kl_status kl_textview_append(kl_textview *tv, kl_writer *w, const kl_insertion *ins, size_t n,
                             kl_error *err)
{
    /* The tail is extended first, under the append lock, so that it is in
     * the writer's order and no listing can show these records before the
     * tail holds them. */
    /* The view counts its lines out by the text of the objects holding
     * them: a record the writer drops as a duplicate (its nonce) would
     * leave its line in the tail and misplace every later one. */
    for (size_t i = 0; i < n; i++)
        if (ins[i].has_nonce)
            return kl_seterr(err, KL_EINVAL,
                             "%s/%s: record %zu has a nonce; lines appended through a text "
                             "view carry none",
                             tv->keyspace, tv->key, i);
    pthread_mutex_lock(&tv->append_mu);
    kl_tcall call;
    kl_status st = Kl_tv_append_begin(tv, ins, n, &call);
    if (st) {
        pthread_mutex_unlock(&tv->append_mu);
        return kl_seterr(err, st, "out of memory");
    }
    st = kl_append(w, tv->keyspace, tv->key, ins, n, err);
    Kl_tv_append_end(tv, &call, st != KL_OK);
    pthread_mutex_unlock(&tv->append_mu);
    return st;
}
