/* compact.c -- merging a key's small objects into batches (compact.h).
 *
 * Why: a log fed one record at a time would otherwise be millions of tiny
 * objects, slow to list and read.  Order of steps is what keeps readers
 * and crashes safe: PUT merged, DELETE originals, then PUT watermark.  A
 * crash in between leaves either redundant originals (readers dedupe
 * overlaps) or a stale watermark (the next compaction just moves it). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "claimgc.h"
#include "clock.h"
#include "codec.h"
#include "compact.h"
#include "complete.h"
#include "keyindex.h"
#include "layout.h"
#include "tail.h"

char *Kl_compact_watermark(const char *dir, uint64_t first, uint8_t v[8])
{
    Kl_put_le64(v, first);
    return Kl_layout_join(dir, "watermark");
}

/* A writer stores the watermark after this many complete batches or this
 * long since it last did, whichever comes first (and at shutdown).
 * A lagging watermark costs nothing in correctness: a loader takes the
 * newest object after it that is complete by itself as the effective one
 * (tail.c), and claims are only deleted below complete batches that exist.
 * It saves a PUT per object where every append is a complete batch. */
#define WM_EVERY 64
#define WM_MS    10000

static kl_status put_watermark(kl_objstore *os, const char *dir, uint64_t first, kl_error *err)
{
    uint8_t v[8];
    char *wm = Kl_compact_watermark(dir, first, v);
    if (!wm) return kl_seterr(err, KL_ENOMEM, "out of memory");
    kl_status st = kl_os_put(os, wm, v, sizeof v, 0, err);
    free(wm);
    return st;
}

/* GETs and verifies each part, concatenating the bodies.  A body that
 * does not match its name is never merged into a batch. */
static kl_status read_bodies(kl_objstore *os, const char *dir, const kl_merge *m, kl_buf *out,
                             kl_error *err)
{
    for (size_t i = 0; i < m->n_parts; i++) {
        char *name = Kl_index_name(dir, &m->parts[i]);
        if (!name) return kl_seterr(err, KL_ENOMEM, "out of memory");
        uint8_t *body = NULL;
        size_t len = 0;
        kl_status st = kl_os_get(os, name, 0, m->parts[i].size + 1, &body, &len, err);
        if (st == KL_OK) {
            kl_record *recs = NULL;
            size_t n;
            st = Kl_codec_decode(body, len, &m->parts[i], name, &recs, &n, err);
            free(recs);
            if (st == KL_OK && Kl_buf_append(out, body, len) != 0)
                st = kl_seterr(err, KL_ENOMEM, "out of memory");
        } else if (st == KL_ENOTFOUND) {
            st = kl_seterr(err, KL_ENOTFOUND,
                           "compaction: object '%s' vanished "
                           "(another writer compacted it)",
                           name);
        }
        free(body);
        free(name);
        if (st) return st;
    }
    return KL_OK;
}

static kl_status delete_objects(kl_objstore *os, const char *dir, const kl_object_meta *v, size_t n,
                                kl_error *err)
{
    kl_status st = KL_OK;
    for (size_t base = 0; base < n && st == KL_OK; base += 1000) {
        size_t k = n - base < 1000 ? n - base : 1000;
        char **names = calloc(k, sizeof *names);
        if (!names) return kl_seterr(err, KL_ENOMEM, "out of memory");
        for (size_t i = 0; i < k && st == KL_OK; i++)
            if (!(names[i] = Kl_index_name(dir, &v[base + i])))
                st = kl_seterr(err, KL_ENOMEM, "out of memory");
        if (st == KL_OK) st = kl_os_del(os, (const char *const *)names, k, err);
        kl_strv_free(names, k);
    }
    return st;
}

static kl_object_meta merged_meta(const kl_object_meta *v, size_t take, uint64_t size)
{
    const kl_object_meta *a = &v[0], *z = &v[take - 1];
    kl_object_meta m = {
        .first_offset = a->first_offset,
        .last_offset = z->last_offset,
        .min_ts = a->min_ts,
        .max_ts = a->max_ts,
        .first_nonce = a->first_nonce,
        .next_nonce = z->next_nonce,
        .size = size,
        .prior = a->prior,
    };
    for (size_t i = 1; i < take; i++) {
        if (v[i].min_ts < m.min_ts) m.min_ts = v[i].min_ts;
        if (v[i].max_ts > m.max_ts) m.max_ts = v[i].max_ts;
    }
    return m;
}

/* The most objects one merge reads: compact_objects_threshold, the count
 * at which a partial batch is merged anyway.  A key that holds far more
 * pending objects than that (written by another tool, imported with
 * `aws s3 sync`, or left uncompacted by failures) is then compacted a
 * bounded step at a time -- each merge starting at the batch start, so
 * concurrent compactors still cover each other or do not overlap. */
static size_t max_parts(const kl_store_config *cfg)
{
    return cfg->compact_objects_threshold < 2 ? 2 : cfg->compact_objects_threshold;
}

/* The first batch of s->pending: how many objects it takes (*take, 0 when
 * there is nothing to do yet) and whether it is complete.  A complete
 * batch ends at the first object where a threshold is reached, not at the
 * newest object this writer happens to know: so every writer that merges
 * a key's objects cuts them at the same places, and their merges cover
 * each other or not at all. */
static void first_batch(const kl_store_config *cfg, const kl_keystate *s, size_t *take,
                        int *complete)
{
    uint64_t records = 0, bytes = 0;
    size_t n = 0, cap = max_parts(cfg);
    *complete = 0;
    while (n < s->n_pending && !*complete && n < cap) {
        records += s->pending[n].last_offset - s->pending[n].first_offset + 1;
        bytes += s->pending[n].size;
        *complete = Kl_complete_batch(cfg, records, bytes);
        n++;
    }
    /* A partial batch is merged once there are enough objects; a single
     * object is only taken when complete (nothing to merge it with). */
    *take = *complete || (s->n_pending >= cfg->compact_objects_threshold && n > 1) ? n : 0;
}

int Kl_compact_due(const kl_store_config *cfg, const kl_keystate *s)
{
    size_t take;
    int complete;
    first_batch(cfg, s, &take, &complete);
    return take > 0;
}

/* s's watermark moves to its first pending object, a complete batch. */
static kl_status take_complete(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                               kl_keystate *s, int fenced, kl_error *err)
{
    s->watermark = s->pending[0].first_offset;
    memmove(s->pending, s->pending + 1, (s->n_pending - 1) * sizeof *s->pending);
    s->n_pending--;
    kl_status st = KL_OK;
    if (++s->wm_lag >= WM_EVERY || kl_now_ms() - s->wm_written_ms >= WM_MS)
        st = Kl_compact_store_watermark(os, dir, s, err);
    /* A round of deletes costs a DELETE and a few LISTs: at most six per
     * hold, so that they stay a small part of the requests per object. */
    if (!st && fenced && Kl_boot_ns() - s->gc_ns >= Kl_claimgc_hold_ns(cfg) / 6)
        st = Kl_claimgc_run(os, cfg, dir, s, 32, err);
    return st;
}

kl_status Kl_compact_plan(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                          kl_keystate *s, int fenced, kl_merge *m, kl_error *err)
{
    *m = (kl_merge){0};
    for (;;) {
        /* Merging a view that is not one contiguous run would write an
         * object whose body does not match its name: that view is stale
         * (another writer compacted differently), so reload instead. */
        for (size_t i = 1; i < s->n_pending; i++)
            if (s->pending[i].first_offset != s->pending[i - 1].last_offset + 1)
                return kl_seterr(err, KL_ENOTFOUND,
                                 "compaction: the objects of '%s' changed "
                                 "under this writer's view",
                                 dir);
        size_t take;
        int complete;
        first_batch(cfg, s, &take, &complete);
        if (take == 0) return KL_OK;
        if (take == 1) { /* complete by itself: no merge */
            kl_status st = take_complete(os, cfg, dir, s, fenced, err);
            if (st) return st;
            continue;
        }
        if (!(m->parts = malloc(take * sizeof *m->parts)))
            return kl_seterr(err, KL_ENOMEM, "out of memory");
        memcpy(m->parts, s->pending, take * sizeof *m->parts);
        m->n_parts = take;
        m->complete = complete;
        m->epoch = s->epoch;
        return KL_OK;
    }
}

kl_status Kl_compact_merge(kl_objstore *os, const char *dir, kl_merge *m, kl_error *err)
{
    kl_buf body = {0};
    kl_status st = read_bodies(os, dir, m, &body, err);
    m->merged = merged_meta(m->parts, m->n_parts, body.len);
    char *name = st ? NULL : Kl_index_name(dir, &m->merged);
    if (!st && !name) st = kl_seterr(err, KL_ENOMEM, "out of memory");
    if (!st) st = kl_os_put(os, name, body.data, body.len, 0, err);
    free(name);
    Kl_buf_free(&body);
    return st;
}

kl_status Kl_compact_apply(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                           kl_keystate *s, int fenced, const kl_merge *m, kl_error *err)
{
    int same = s->epoch == m->epoch && s->n_pending >= m->n_parts;
    for (size_t i = 0; same && i < m->n_parts; i++)
        same = s->pending[i].first_offset == m->parts[i].first_offset &&
               s->pending[i].last_offset == m->parts[i].last_offset;
    if (!same) return KL_OK; /* reloaded meanwhile: the load saw what it saw */
    s->pending[0] = m->merged;
    memmove(s->pending + 1, s->pending + m->n_parts,
            (s->n_pending - m->n_parts) * sizeof *s->pending);
    s->n_pending -= m->n_parts - 1;
    /* The parts' claims stay until the watermark passes them and the hold
     * is over (Kl_claimgc_run): a late publish from one can only bring back a
     * part, the same bytes as the merged object, which the writer that
     * deletes the claim then deletes as covered (Kl_claimgc_delete). */
    uint64_t now = Kl_boot_ns();
    for (size_t i = 0; fenced && i < m->n_parts; i++)
        if (Kl_keystate_add_claim(s, m->parts[i].first_offset, now) != 0)
            return kl_seterr(err, KL_ENOMEM, "out of memory");
    return m->complete ? take_complete(os, cfg, dir, s, fenced, err) : KL_OK;
}

/* Concurrent compactions can each merge a different run starting at the
 * same offset (their views of the tail differ); after a merge, whatever
 * another object covers from its start on is deleted (the same bytes), so
 * whichever compactor lists last leaves no overlap behind. */
kl_status Kl_compact_cleanup(kl_objstore *os, const char *dir, const kl_merge *m, int fenced,
                             kl_error *err)
{
    kl_status st = delete_objects(os, dir, m->parts, m->n_parts, err);
    if (!st && fenced) st = Kl_claimgc_drop_covered_from(os, dir, m->merged.first_offset, err);
    return st;
}

void Kl_merge_free(kl_merge *m)
{
    free(m->parts);
    *m = (kl_merge){0};
}

kl_status Kl_compact_store_watermark(kl_objstore *os, const char *dir, kl_keystate *s,
                                     kl_error *err)
{
    if (s->watermark <= s->stored_wm) return KL_OK;
    kl_status st = put_watermark(os, dir, s->watermark, err);
    if (st) return st;
    s->stored_wm = s->watermark;
    s->wm_lag = 0;
    s->wm_written_ms = kl_now_ms();
    return KL_OK;
}
