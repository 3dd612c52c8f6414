/* compact.c -- merging a key's small objects into batches (compact.h).
 *
 * Why: a log fed one record at a time would otherwise be millions of tiny
 * objects, slow to list and read.  Order of steps is what keeps readers
 * and crashes safe: PUT merged, DELETE originals, then PUT watermark.  A
 * crash in between leaves either redundant originals (readers dedupe
 * overlaps) or a stale watermark (the next compaction just moves it). */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "compact.h"
#include "keyindex.h"
#include "layout.h"
#include "tail.h"

char *kl_compact_watermark(const char *dir, uint64_t first, uint8_t v[8]) {
    kl_put_le64(v, first);
    return kl_layout_join(dir, "watermark");
}

/* A fenced writer stores the watermark after this many complete batches
 * or this long since it last did, whichever comes first (and at shutdown).
 * A lagging watermark costs nothing in correctness: a loader takes the
 * newest object after it that is complete by itself as the effective one
 * (tail.c), and claims are only deleted below complete batches that exist.
 * It saves a PUT per object where every append is a complete batch. */
#define WM_EVERY 64
#define WM_MS 10000

static int is_complete(const kl_store_config *cfg, uint64_t records, uint64_t bytes) {
    return records >= cfg->compact_records_threshold || bytes >= cfg->compact_size_threshold;
}

int kl_compact_complete_alone(const kl_store_config *cfg, const kl_object_meta *m) {
    return is_complete(cfg, m->last_offset - m->first_offset + 1, m->size);
}

static kl_status put_watermark(kl_objstore *os, const char *dir, uint64_t first,
                               kl_error *err) {
    uint8_t v[8];
    char *wm = kl_compact_watermark(dir, first, v);
    if (!wm) return kl_seterr(err, KL_ENOMEM, "out of memory");
    kl_status st = kl_os_put(os, wm, v, sizeof v, 0, err);
    free(wm);
    return st;
}

/* GETs and verifies each pending object, concatenating the bodies.  A body
 * that does not match its name is never merged into a batch. */
static kl_status read_bodies(kl_objstore *os, const char *dir, const kl_keystate *s,
                             kl_buf *out, kl_error *err) {
    for (size_t i = 0; i < s->n_pending; i++) {
        char *name = kl_index_name(dir, &s->pending[i]);
        if (!name) return kl_seterr(err, KL_ENOMEM, "out of memory");
        uint8_t *body = NULL;
        size_t len = 0;
        kl_status st = kl_os_get(os, name, 0, UINT64_MAX, &body, &len, err);
        if (st == KL_OK) {
            kl_record *recs = NULL;
            size_t n;
            st = kl_codec_decode(body, len, &s->pending[i], name, &recs, &n, err);
            free(recs);
            if (st == KL_OK && kl_buf_append(out, body, len) != 0)
                st = kl_seterr(err, KL_ENOMEM, "out of memory");
        } else if (st == KL_ENOTFOUND) {
            st = kl_seterr(err, KL_ENOTFOUND, "compaction: object '%s' vanished "
                           "(another writer compacted it)", name);
        }
        free(body);
        free(name);
        if (st) return st;
    }
    return KL_OK;
}

static kl_status delete_objects(kl_objstore *os, const char *dir,
                                const kl_object_meta *v, size_t n, kl_error *err) {
    kl_status st = KL_OK;
    for (size_t base = 0; base < n && st == KL_OK; base += 1000) {
        size_t k = n - base < 1000 ? n - base : 1000;
        char **names = calloc(k, sizeof *names);
        if (!names) return kl_seterr(err, KL_ENOMEM, "out of memory");
        for (size_t i = 0; i < k && st == KL_OK; i++)
            if (!(names[i] = kl_index_name(dir, &v[base + i])))
                st = kl_seterr(err, KL_ENOMEM, "out of memory");
        if (st == KL_OK) st = kl_os_del(os, (const char *const *)names, k, err);
        kl_strv_free(names, k);
    }
    return st;
}

static kl_object_meta merged_meta(const kl_keystate *s, uint64_t size) {
    const kl_object_meta *a = &s->pending[0], *z = &s->pending[s->n_pending - 1];
    kl_object_meta m = {
        .first_offset = a->first_offset, .last_offset = z->last_offset,
        .min_ts = a->min_ts, .max_ts = a->max_ts,
        .first_nonce = a->first_nonce, .next_nonce = z->next_nonce,
        .size = size, .prior = a->prior,
    };
    for (size_t i = 1; i < s->n_pending; i++) {
        if (s->pending[i].min_ts < m.min_ts) m.min_ts = s->pending[i].min_ts;
        if (s->pending[i].max_ts > m.max_ts) m.max_ts = s->pending[i].max_ts;
    }
    return m;
}

kl_status kl_compact_maybe(kl_objstore *os, const kl_store_config *cfg,
                           const char *dir, kl_keystate *s, int fenced, kl_error *err) {
    if (s->n_pending == 0) return KL_OK;
    uint64_t records = 0, bytes = 0;
    for (size_t i = 0; i < s->n_pending; i++) {
        records += s->pending[i].last_offset - s->pending[i].first_offset + 1;
        bytes += s->pending[i].size;
    }
    int complete = is_complete(cfg, records, bytes);
    int partial = s->n_pending >= cfg->compact_objects_threshold;
    if (!complete && !partial) return KL_OK;

    kl_object_meta merged = s->pending[0];
    if (s->n_pending > 1) {
        kl_buf body = {0};
        kl_status st = read_bodies(os, dir, s, &body, err);
        merged = merged_meta(s, body.len);
        char *name = st ? NULL : kl_index_name(dir, &merged);
        if (!st && !name) st = kl_seterr(err, KL_ENOMEM, "out of memory");
        if (!st) st = kl_os_put(os, name, body.data, body.len, 0, err);
        free(name);
        kl_buf_free(&body);
        if (st) return st;
        /* The merged object is durable: from here on the store has it, so
         * the state must say so whatever fails next. */
        kl_object_meta *old = s->pending;
        size_t n_old = s->n_pending;
        s->pending = NULL;
        s->n_pending = s->cap_pending = 0;
        if (kl_keystate_add_pending(s, &merged) != 0) {
            free(old);
            return kl_seterr(err, KL_ENOMEM, "out of memory");
        }
        uint64_t *slots = fenced ? malloc(n_old * sizeof *slots) : NULL;
        if (fenced && !slots) st = kl_seterr(err, KL_ENOMEM, "out of memory");
        for (size_t i = 0; slots && i < n_old; i++) slots[i] = old[i].first_offset;
        if (slots) st = kl_tail_unclaim(os, dir, s, slots, n_old, 1, err);
        /* Emptied, they still hold their slots until the watermark passes
         * them: then kl_tail_gc deletes them. */
        for (size_t i = 0; slots && !st && i < n_old; i++) {
            int known = 0;
            for (size_t j = 0; j < s->n_claims && !known; j++) known = s->claims[j] == slots[i];
            if (!known && kl_keystate_add_claim(s, slots[i]) != 0)
                st = kl_seterr(err, KL_ENOMEM, "out of memory");
        }
        free(slots);
        if (!st) st = delete_objects(os, dir, old, n_old, err);
        free(old);
        if (st) return st;
    }
    if (!complete) return KL_OK;
    s->watermark = merged.first_offset;
    s->n_pending = 0;
    if (!fenced) return kl_compact_store_watermark(os, dir, s, err);
    int64_t now = kl_now_ms();
    kl_status st = KL_OK;
    if (++s->wm_lag >= WM_EVERY || now - s->wm_written_ms >= WM_MS)
        st = kl_compact_store_watermark(os, dir, s, err);
    return st ? st : kl_tail_gc(os, dir, s, 32, err);
}

kl_status kl_compact_store_watermark(kl_objstore *os, const char *dir, kl_keystate *s,
                                     kl_error *err) {
    if (s->watermark <= s->stored_wm) return KL_OK;
    kl_status st = put_watermark(os, dir, s->watermark, err);
    if (st) return st;
    s->stored_wm = s->watermark;
    s->wm_lag = 0;
    s->wm_written_ms = kl_now_ms();
    return KL_OK;
}
