/* tail.c -- the store writer's view of a key's tail, and publishing at it
 * under fencing (tail.h; the protocol and why it is safe: FORMAT.md
 * "Concurrent writers").
 *
 * Why a claim holds the body: a writer may stop (crash, SIGSTOP) between
 * any two requests.  If the claim only reserved the slot, others could
 * neither publish the stopped writer's records nor safely write over its
 * slot (it could wake and publish after them).  With the body in the
 * claim, anyone can finish the publication, byte for byte the same, so no
 * writer ever waits for another and nothing needs a timeout. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "codec.h"
#include "complete.h"
#include "keyindex.h"
#include "layout.h"
#include "tail.h"

static kl_status oom(kl_error *err) { return kl_seterr(err, KL_ENOMEM, "out of memory"); }

static kl_status drop_covered(kl_objstore *os, const char *dir, const kl_object_meta *v, size_t n,
                              kl_error *err)
{
    kl_status st = KL_OK;
    for (size_t i = 0; i < n && st == KL_OK; i++) {
        char *name = Kl_index_name(dir, &v[i]);
        const char *names[1] = {name};
        st = name ? kl_os_del(os, names, 1, err) : oom(err);
        free(name);
    }
    return st;
}

kl_status Kl_tail_drop_covered_from(kl_objstore *os, const char *dir, uint64_t first, kl_error *err)
{
    kl_object_meta *v = NULL, *covered = NULL;
    size_t n = 0, nc = 0;
    kl_status st = Kl_index_list_covered(os, dir, first, &v, &n, &covered, &nc, err);
    if (st == KL_OK) st = drop_covered(os, dir, covered, nc, err);
    free(v);
    free(covered);
    return st;
}

kl_status Kl_tail_unclaim(kl_objstore *os, const char *dir, kl_keystate *s, const uint64_t *v,
                          size_t n, kl_error *err)
{
    if (n == 0) return KL_OK;
    kl_status st = KL_OK;
    char **names = calloc(n, sizeof *names);
    if (!names) return oom(err);
    for (size_t i = 0; i < n && !st; i++)
        if (!(names[i] = Kl_layout_claim(dir, v[i]))) st = oom(err);
    for (size_t base = 0; base < n && !st; base += 1000)
        st = kl_os_unclaim(os, (const char *const *)names + base, n - base < 1000 ? n - base : 1000,
                           err);
    kl_strv_free(names, n);
    if (st) return st;
    { /* drop the deleted slots from s->claims */
        size_t k = 0;
        for (size_t i = 0; i < s->n_claims; i++) {
            int gone = 0;
            for (size_t j = 0; j < n && !gone; j++) gone = s->claims[i].slot == v[j];
            if (!gone) s->claims[k++] = s->claims[i];
        }
        s->n_claims = k;
    }
    /* A writer stopped between its check and its publish may have brought
     * back an object since merged away (its claim was still there); with
     * the claims gone no publish can, so one look now finds them all. */
    uint64_t lo = v[0];
    for (size_t i = 1; i < n; i++)
        if (v[i] < lo) lo = v[i];
    return Kl_tail_drop_covered_from(os, dir, lo, err);
}

static uint64_t hold_ns(const kl_store_config *cfg) { return cfg->claim_hold_ms * 1000000u; }

/* Finds the claims of slots below the watermark (a complete batch lies
 * after them, so no check can find their slots free again), left by
 * writers that stopped before deleting them.  A claim may only go once
 * its slot was published claim_hold_ms ago (FORMAT.md says why); the
 * claims' own change times tell, by the store's clock: a claim of a later
 * slot was made after this slot was published, so when one of those is
 * older by the hold than the newest claim (no later than the store's
 * now), this one may go.  The rest are kept in s->claims for
 * Kl_tail_gc, timed from now. */
static kl_status sweep_claims(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                              kl_keystate *s, kl_error *err)
{
    char *prefix = Kl_layout_join(dir, "claim_o");
    if (!prefix) return oom(err);
    kl_list_req req = {.prefix = prefix};
    kl_listing l;
    kl_status st = kl_os_list(os, &req, &l, err);
    size_t plen = strlen(prefix);
    free(prefix);
    if (st) return st;
    uint64_t now = Kl_boot_ns();
    size_t n = 0, k = 0;
    uint64_t *slots = malloc((l.n_objects ? l.n_objects : 1) * sizeof *slots);
    uint64_t *old = malloc((l.n_objects ? l.n_objects : 1) * sizeof *old);
    int64_t *ms = malloc((l.n_objects ? l.n_objects : 1) * sizeof *ms);
    int64_t newest = 0;
    for (size_t i = 0; slots && old && ms && i < l.n_objects; i++) {
        const char *p = l.objects[i].name + plen;
        char *end;
        uint64_t slot = strtoull(p, &end, 10);
        if (end != p + 20 || (*end != 0 && *end != '/')) continue;
        int64_t t = l.objects[i].mtime_ms;
        if (t > newest) newest = t;
        if (n && slots[n - 1] == slot) { /* a directory claim's file: the latest time */
            if (t > ms[n - 1]) ms[n - 1] = t;
            continue;
        }
        slots[n] = slot;
        ms[n++] = t;
    }
    kl_listing_free(&l);
    /* From the newest slot down, the oldest time among later slots. */
    int64_t later = INT64_MAX, hold = (int64_t)cfg->claim_hold_ms;
    for (size_t i = n; slots && old && ms && i-- > 0;) {
        if (slots[i] < s->watermark) {
            if (later != INT64_MAX && later <= newest - hold)
                old[k++] = slots[i];
            else if (Kl_keystate_add_claim(s, slots[i], now) != 0)
                st = oom(err);
        }
        if (ms[i] > 0 && ms[i] < later) later = ms[i]; /* 0: unknown */
    }
    if (!st && (!slots || !old || !ms)) st = oom(err);
    if (!st) st = Kl_tail_unclaim(os, dir, s, old, k, err);
    free(slots);
    free(old);
    free(ms);
    return st;
}

kl_status Kl_tail_gc(kl_objstore *os, const kl_store_config *cfg, const char *dir, kl_keystate *s,
                     size_t min, kl_error *err)
{
    uint64_t *v = malloc((s->n_claims ? s->n_claims : 1) * sizeof *v);
    if (!v) return oom(err);
    size_t n = 0;
    uint64_t now = Kl_boot_ns(), hold = hold_ns(cfg);
    for (size_t i = 0; i < s->n_claims; i++)
        if (s->claims[i].slot < s->watermark && now - s->claims[i].seen_ns >= hold)
            v[n++] = s->claims[i].slot;
    kl_status st = n >= min ? Kl_tail_unclaim(os, dir, s, v, n, err) : KL_OK;
    free(v);
    return st;
}

kl_status Kl_tail_load(kl_objstore *os, const kl_store_config *cfg, const char *dir, int fenced,
                       kl_keystate **out, kl_error *err)
{
    uint64_t wm, began = Kl_boot_ns();
    int valid;
    kl_status st = Kl_index_watermark(os, dir, &wm, &valid, err);
    if (st) return st;
    if (!valid)
        return kl_seterr(err, KL_EBADDATA, "watermark of '%s' is not an 8-byte offset", dir);
    kl_object_meta *v = NULL;
    size_t n = 0;
    st = Kl_index_list(os, dir, wm ? wm : 1, 0, &v, &n, NULL, err);
    if (st) return st;
    kl_keystate *s = calloc(1, sizeof *s);
    if (!s) {
        free(v);
        return oom(err);
    }
    s->watermark = s->stored_wm = wm;
    s->next_offset = 1;
    s->view_ns = began;
    if (n == 0 && wm) {
        /* A watermark ahead of every object: trust the objects instead. */
        kl_object_meta last;
        int found;
        st = Kl_index_last(os, NULL, dir, &found, &last, err);
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
        /* The effective watermark: the newest complete batch listed. */
        for (size_t i = 0; i < n; i++)
            if (v[i].first_offset > s->watermark && Kl_complete_object(cfg, &v[i]))
                s->watermark = v[i].first_offset;
        for (size_t i = 0; i < n && st == KL_OK; i++)
            if (v[i].first_offset > s->watermark && Kl_keystate_add_pending(s, &v[i]) != 0)
                st = oom(err);
    }
    free(v);
    if (st == KL_OK && fenced) st = sweep_claims(os, cfg, dir, s, err);
    if (st) {
        Kl_keystate_free(s);
        return st;
    }
    *out = s;
    return KL_OK;
}

/* Replaces *s with a fresh load, keeping the claims still to delete. */
static kl_status reload(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                        kl_keystate *s, kl_error *err)
{
    kl_keystate *f;
    kl_status st = Kl_tail_load(os, cfg, dir, 0, &f, err);
    if (st) return st;
    for (size_t i = 0; i < s->n_claims && st == KL_OK; i++)
        if (Kl_keystate_add_claim(f, s->claims[i].slot, s->claims[i].seen_ns) != 0) st = oom(err);
    kl_keystate tmp = *s;
    *s = *f;
    *f = tmp;
    Kl_keystate_free(f);
    return st;
}

/* Is `slot` (== s->next_offset) still the key's tail, i.e. does no
 * published object cover it?  One LIST from the watermark this writer
 * knows: every object that can cover the slot starts there or later
 * (merges never cross a complete batch's start), and normally there is
 * little after it.  The slot is free when the newest listed object ends
 * just before it; anything odd is settled by a full load.  Objects listed
 * after the slot go to *ahead (malloc'd, or NULL), so that a writer that
 * lost the slot moves past them without loading the key again.  Objects
 * that another covers (leftovers of concurrent merges, or of a publish
 * that came late) are deleted on the way: they hold the same bytes. */
static kl_status slot_free(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                           const kl_keystate *s, int *free_, kl_object_meta **ahead,
                           size_t *n_ahead, kl_error *err)
{
    uint64_t slot = s->next_offset;
    kl_object_meta *v = NULL, *covered = NULL;
    size_t n = 0, nc = 0;
    *ahead = NULL;
    *n_ahead = 0;
    kl_status st =
        Kl_index_list_covered(os, dir, s->watermark ? s->watermark : 1, &v, &n, &covered, &nc, err);
    if (st) return st;
    kl_error derr;
    if (nc && drop_covered(os, dir, covered, nc, &derr) != KL_OK)
        kl_log(KL_LOG_WARNING, "could not delete covered objects of '%s': %s", dir, derr.msg);
    free(covered);
    size_t after = 0; /* first listed object ending at or past the slot */
    while (after < n && v[after].last_offset < slot) after++;
    int known = 1;
    if (after == n) { /* nothing reaches the slot: free if the log ends just before it */
        if (n ? v[n - 1].last_offset + 1 == slot : slot == 1)
            *free_ = 1;
        else
            known = 0;
    } else if (v[after].first_offset == slot) { /* published from the slot on */
        *free_ = 0;
        if ((*ahead = malloc((n - after) * sizeof **ahead))) {
            memcpy(*ahead, v + after, (n - after) * sizeof **ahead);
            *n_ahead = n - after;
        }
    } else if (v[after].first_offset < slot) { /* a merge covers the slot */
        *free_ = 0;
    } else {
        known = 0; /* a gap before the slot: not a view to act on */
    }
    free(v);
    if (known) return KL_OK;
    kl_keystate *f;
    if ((st = Kl_tail_load(os, cfg, dir, 0, &f, err))) return st;
    *free_ = f->next_offset == slot;
    Kl_keystate_free(f);
    return KL_OK;
}

/* Whether the log holds exactly `body` (the records of m) at m's offsets:
 * for a writer that finds its own claimed slot taken, because a helper may
 * have published (and compaction merged) its claim while it was stopped. */
static kl_status holds_body(kl_objstore *os, const char *dir, const kl_object_meta *m,
                            const uint8_t *body, size_t len, int *yes, kl_error *err)
{
    *yes = 0;
    uint8_t *have = NULL;
    size_t hlen = 0;
    kl_status st = KL_ENOTFOUND;
    /* A found object may be merged away before we GET it: seek again. */
    for (int tries = 0; st == KL_ENOTFOUND && tries < 8; tries++) {
        int found;
        kl_object_meta c;
        st = Kl_index_seek_offset(os, NULL, dir, m->first_offset, 0, &found, &c, err);
        if (st || !found || c.last_offset < m->last_offset) return st;
        char *name = Kl_index_name(dir, &c);
        if (!name) return oom(err);
        st = kl_os_get(os, name, 0, c.size + 1, &have, &hlen, err);
        free(name);
    }
    if (st == KL_ENOTFOUND) /* merged away again and again: undecided, retryable */
        return kl_seterr(err, KL_EIO,
                         "could not tell whether '%s' holds records %" PRIu64 "-%" PRIu64
                         ": its objects keep being compacted",
                         dir, m->first_offset, m->last_offset);
    if (st) return st;
    /* Walk to the record at m->first_offset. */
    size_t pos = 0;
    uint32_t plen;
    while (pos < hlen && Kl_codec_framed(have, hlen, pos, &plen) &&
           Kl_le64(have + pos) < m->first_offset)
        pos += KL_RECORD_OVERHEAD + plen;
    *yes = pos < hlen && hlen - pos >= len && Kl_le64(have + pos) == m->first_offset &&
           memcmp(have + pos, body, len) == 0;
    free(have);
    return KL_OK;
}

/* s moves past object m, now published: it is the newest object. */
static kl_status advance(kl_keystate *s, const kl_object_meta *m, kl_error *err)
{
    s->next_offset = m->last_offset + 1;
    s->next_nonce = m->next_nonce;
    s->last_first = m->first_offset;
    if (Kl_keystate_add_pending(s, m) != 0 ||
        Kl_keystate_add_claim(s, m->first_offset, Kl_boot_ns()) != 0)
        return oom(err);
    return KL_OK;
}

/* Moves s past objects listed after its tail when they continue it
 * exactly; else reloads.  (They are published objects, so this is the
 * state a load would give, without the requests.) */
static kl_status catch_up(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                          kl_keystate *s, const kl_object_meta *v, size_t n, kl_error *err)
{
    size_t i = 0;
    for (uint64_t next = s->next_offset; i < n && v[i].first_offset == next; i++)
        next = v[i].last_offset + 1;
    if (n == 0 || i < n) return reload(os, cfg, dir, s, err);
    kl_status st = KL_OK;
    for (i = 0; i < n && st == KL_OK; i++) st = advance(s, &v[i], err);
    return st;
}

static int same_object(const kl_object_meta *a, const kl_object_meta *b)
{
    return a->first_offset == b->first_offset && a->last_offset == b->last_offset &&
           a->min_ts == b->min_ts && a->max_ts == b->max_ts && a->size == b->size &&
           a->first_nonce == b->first_nonce && a->next_nonce == b->next_nonce &&
           a->prior == b->prior;
}

kl_status Kl_tail_publish(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                          kl_keystate *s, const kl_object_meta *m, const void *body, size_t len,
                          int *won, kl_error *err)
{
    *won = 0;
    uint64_t began = Kl_boot_ns();
    char *claim = Kl_layout_claim(dir, m->first_offset);
    char *name = Kl_index_name(dir, m);
    char *other = NULL, *tag = NULL;
    kl_object_meta om, *ahead = NULL;
    size_t n_ahead = 0;
    int free_ = 0;
    kl_status st = claim && name ? KL_OK : oom(err);
    if (!st) st = kl_os_claim(os, claim, name, body, len, &tag, err);
    int mine = st == KL_OK;
    if (st == KL_EEXIST) {
        st = kl_os_claim_target(os, claim, &other, &tag, err);
        if (st == KL_OK) {
            const char *base = strrchr(other, '/');
            st = kl_object_name_parse(base ? base + 1 : other, &om, err);
            if (st == KL_OK && om.first_offset != m->first_offset)
                st = kl_seterr(err, KL_EBADDATA, "claim '%s' names object '%s' of another slot",
                               claim, other);
        }
        if (st == KL_ENOTFOUND) { /* published and deleted meanwhile */
            st = reload(os, cfg, dir, s, err);
            goto out;
        }
    }
    int broken = st == KL_EBADDATA && !mine; /* a claim nobody can publish */
    if (st && !broken) goto out;
    if (mine && s->view_ns && Kl_boot_ns() - s->view_ns < hold_ns(cfg) / 6)
        free_ = 1; /* the check can be skipped: see fresh_view */
    else if ((st = slot_free(os, cfg, dir, s, &free_, &ahead, &n_ahead, err)))
        goto out;
    if (broken) {
        /* It blocks the tail forever unless removed; elsewhere it is junk. */
        const char *v[1] = {claim};
        st = free_ ? kl_os_unclaim(os, v, 1, err) : reload(os, cfg, dir, s, err);
    } else if (mine && free_) {
        st = kl_os_publish(os, claim, name, tag, body, len, err);
        if (st == KL_ENOTFOUND) st = KL_OK; /* a helper published it, then it was unclaimed */
        if (st == KL_OK && (st = advance(s, m, err)) == KL_OK) *won = 1;
    } else if (mine && n_ahead && same_object(&ahead[0], m)) {
        /* A helper published our claim while we were away. */
        *won = 1;
        st = catch_up(os, cfg, dir, s, ahead, n_ahead, err);
    } else if (mine) {
        /* Our slot was taken before we claimed it (we were stopped with a
         * stale view), or a helper published our claim and it was merged. */
        int yes;
        if ((st = holds_body(os, dir, m, body, len, &yes, err))) goto out;
        const char *v[1] = {claim};
        if (!yes && (st = kl_os_unclaim(os, v, 1, err))) goto out;
        *won = yes;
        st = reload(os, cfg, dir, s, err);
    } else if (free_) {
        st = kl_os_publish(os, claim, other, tag, NULL, 0, err);
        if (st == KL_ENOTFOUND) st = KL_OK;
        if (st == KL_OK) st = advance(s, &om, err);
    } else {
        st = catch_up(os, cfg, dir, s, ahead, n_ahead, err);
    }
out:
    /* Whatever this call learnt of the tail, it learnt after it began. */
    if (st == KL_OK) s->view_ns = began;
    free(ahead);
    free(claim);
    free(name);
    free(other);
    free(tag);
    return st;
}
