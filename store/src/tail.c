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
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "buf.h"
#include "codec.h"
#include "claimgc.h"
#include "complete.h"
#include "keyindex.h"
#include "layout.h"
#include "tail.h"

static kl_status oom(kl_error *err) { return kl_seterr(err, KL_ENOMEM, "out of memory"); }

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
    static _Atomic uint64_t epochs;
    s->epoch = ++epochs;
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
    if (st == KL_OK && fenced) st = Kl_claimgc_sweep(os, cfg, dir, s, err);
    if (st) {
        Kl_keystate_free(s);
        return st;
    }
    *out = s;
    return KL_OK;
}

kl_status Kl_tail_reload(kl_objstore *os, const kl_store_config *cfg, const char *dir, int sweep,
                         kl_keystate *s, kl_error *err)
{
    kl_keystate *f;
    kl_status st = Kl_tail_load(os, cfg, dir, sweep, &f, err);
    if (st) return st;
    for (size_t i = 0; i < s->n_claims && st == KL_OK; i++)
        if (Kl_keystate_add_claim(f, s->claims[i].slot, s->claims[i].seen_ns) != 0) st = oom(err);
    /* What paces this writer's requests carries over (a loser reloads
     * often): watermark stores, claim deletes, the queued compaction. */
    f->wm_written_ms = s->wm_written_ms;
    f->wm_lag = s->wm_lag;
    f->gc_ns = s->gc_ns;
    f->compact_queued = s->compact_queued;
    f->attempt = s->attempt;
    s->attempt = NULL;
    kl_keystate tmp = *s;
    *s = *f;
    *f = tmp;
    Kl_keystate_free(f);
    return st;
}

/* Is `slot` (s's tail, or where its chain starts) still the key's tail, i.e. does no
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
                           const kl_keystate *s, uint64_t slot, int *free_, kl_object_meta **ahead,
                           size_t *n_ahead, kl_error *err)
{
    kl_object_meta *v = NULL, *covered = NULL;
    size_t n = 0, nc = 0;
    *ahead = NULL;
    *n_ahead = 0;
    kl_status st =
        Kl_index_list_covered(os, dir, s->watermark ? s->watermark : 1, &v, &n, &covered, &nc, err);
    if (st) return st;
    kl_error derr;
    if (nc && Kl_claimgc_drop_covered(os, dir, covered, nc, &derr) != KL_OK)
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
kl_status Kl_tail_holds_body(kl_objstore *os, const char *dir, const kl_object_meta *m,
                             const kl_body *body, int *yes, kl_error *err)
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
    *yes = pos < hlen && hlen - pos >= body->len && Kl_le64(have + pos) == m->first_offset &&
           Kl_body_eq(body, have + pos, body->len);
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
    if (n == 0 || i < n) return Kl_tail_reload(os, cfg, dir, 0, s, err);
    kl_status st = KL_OK;
    for (i = 0; i < n && st == KL_OK; i++) st = advance(s, &v[i], err);
    return st;
}

/* Whether `claim` holds exactly body: the sign of a claim of our own whose
 * answer was lost (a claim never changes while it exists, and reads as
 * its body).  Gone is "no". */
static kl_status claim_holds(kl_objstore *os, const char *claim, const kl_body *body, int *yes,
                             kl_error *err)
{
    uint8_t *have = NULL;
    size_t hlen = 0;
    *yes = 0;
    kl_status st = kl_os_get(os, claim, 0, body->len + 1, &have, &hlen, err);
    if (st == KL_OK) *yes = Kl_body_eq(body, have, hlen);
    free(have);
    return st == KL_ENOTFOUND ? KL_OK : st;
}

/* Our own object, claimed by a request whose answer was lost (or by a
 * failed append of these records), is ours to publish.  Another writer's
 * claim could only hold these bytes if it appended the same records,
 * with the same timestamps, at the same offsets. */
kl_status Kl_tail_read_claim(kl_objstore *os, const char *claim, const char *name,
                             const kl_body *body, int *mine, char **other, char **tag,
                             kl_error *err)
{
    *mine = 0;
    kl_status st = kl_os_claim_target(os, claim, other, tag, err);
    if (st == KL_OK && strcmp(*other, name) == 0) st = claim_holds(os, claim, body, mine, err);
    return st;
}

static int same_object(const kl_object_meta *a, const kl_object_meta *b)
{
    return a->first_offset == b->first_offset && a->last_offset == b->last_offset &&
           a->min_ts == b->min_ts && a->max_ts == b->max_ts && a->size == b->size &&
           a->first_nonce == b->first_nonce && a->next_nonce == b->next_nonce &&
           a->prior == b->prior;
}

/* ---- the chain: slots lost to others, taken as links ------------------
 *
 * A writer that loses slot N reads the claim's object name and tries the
 * slot after it at once, before any LIST: the claims from N on form a
 * chain of links, each starting where the one before ends.  When its own
 * claim succeeds (or the chain is long), one fresh look at the key
 * settles them all: the links from where the key now ends are published
 * in order (helping writers that stopped), then its own object.  A loser
 * so pays two requests per slot lost, as a winner pays two per slot won,
 * and keeps up with writers that never lose (with a LIST and a publish per
 * lost slot it would fall behind for good).
 *
 * Why that is safe: the look (a load: watermark and LIST) comes after
 * every link's claim was read and after our own claim.  It shows the key
 * ending at T; a claim at T or later was never published (coverage never
 * goes away), and claims are only deleted or replaced after their slot is
 * published, so the links from T on are their slots' first claims, and
 * ours is its slot's first: publishing them in order is what helpers
 * checking each slot would do.  A link whose publish finds its claim gone
 * or changed was published by someone else meanwhile.  Below T the load's
 * objects, not the links, describe the key.  If T is not where a link
 * starts, the chain was built on a stale view: it is dropped.  Until
 * settled, the links' nonces count as the tail's (a retry's records are
 * filtered against them), so a chain is settled before an append reports
 * its records as duplicates (Kl_tail_settle). */

/* Whether s's view of the tail is young enough to skip the tail check:
 * FORMAT.md "Skipping the check". */
static int fresh_view(const kl_store_config *cfg, const kl_keystate *s)
{
    return s->view_ns && Kl_boot_ns() - s->view_ns < Kl_claimgc_hold_ns(cfg) / 6;
}

static void chain_clear(kl_keystate *s)
{
    Kl_links_free(s->chain, s->n_chain);
    s->chain = NULL;
    s->n_chain = 0;
}

/* s's tail moves past om, claimed as `claim` (strings: ownership moves). */
kl_status Kl_tail_chain_add(kl_keystate *s, const kl_object_meta *om, char **claim, char **object,
                            char **tag, kl_error *err)
{
    kl_link *v = realloc(s->chain, (s->n_chain + 1) * sizeof *v);
    if (!v) return oom(err);
    s->chain = v;
    v[s->n_chain++] = (kl_link){*om, *claim, *object, *tag};
    *claim = *object = *tag = NULL;
    s->next_offset = om->last_offset + 1;
    s->next_nonce = om->next_nonce;
    s->last_first = om->first_offset;
    return KL_OK;
}

/* Reloads s and publishes its chain's links from where the key ends, in
 * order, moving s past them.  When the key does not end where a link
 * starts, nothing is published: s is the key as loaded (the caller
 * compares its own slot with s->next_offset). */
kl_status Kl_tail_chain_settle(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                               kl_keystate *s, kl_error *err)
{
    kl_link *chain = s->chain;
    size_t n = s->n_chain, i = 0;
    s->chain = NULL;
    s->n_chain = 0;
    kl_status st = Kl_tail_reload(os, cfg, dir, 0, s, err);
    while (!st && i < n && chain[i].m.first_offset != s->next_offset) i++;
    for (; !st && i < n; i++) {
        st = kl_os_publish(os, chain[i].claim, chain[i].object, chain[i].tag, NULL, err);
        if (st == KL_ENOTFOUND) st = KL_OK; /* changed or gone: published already */
        if (!st) st = advance(s, &chain[i].m, err);
    }
    Kl_links_free(chain, n);
    return st;
}

kl_status Kl_tail_settle(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                         kl_keystate *s, kl_error *err)
{
    if (!s->n_chain) return KL_OK;
    uint64_t began = Kl_boot_ns();
    kl_status st = Kl_tail_chain_settle(os, cfg, dir, s, err);
    if (!st) s->view_ns = began;
    return st;
}

/* Our claim of m's slot (`claim`, holding body as `name`, its tag) is in
 * place: with `check`, one LIST tells whether the slot is still the tail
 * (else free_ says), then the claim is published, or found published by a
 * helper, or -- its slot covered -- the log is checked for its bytes and
 * the claim removed if they are not there (*won = 0: the records are not
 * in; *sent = 0: nor will they be). */
static kl_status place_mine(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                            kl_keystate *s, const kl_object_meta *m, const char *claim,
                            const char *name, const char *tag, const kl_body *body, int check,
                            int free_, int *won, int *sent, kl_error *err)
{
    kl_object_meta *ahead = NULL;
    size_t n_ahead = 0;
    kl_status st = KL_OK;
    if (check && (st = slot_free(os, cfg, dir, s, s->next_offset, &free_, &ahead, &n_ahead, err)))
        return st;
    if (free_) {
        st = kl_os_publish(os, claim, name, tag, body, err);
        if (st == KL_ENOTFOUND) st = KL_OK; /* a helper published it, then it was unclaimed */
        if (st == KL_OK && (st = advance(s, m, err)) == KL_OK) *won = 1;
    } else if (n_ahead && same_object(&ahead[0], m)) {
        /* A helper published our claim while we were away. */
        *won = 1;
        st = catch_up(os, cfg, dir, s, ahead, n_ahead, err);
    } else {
        /* Our slot is covered: it was taken before we claimed it (we were
         * stopped with a stale view), or a helper published our claim and
         * it was merged.  Only a covered claim may be removed (a claim
         * changes only after its slot is published). */
        int yes;
        const char *v[1] = {claim};
        if ((st = Kl_tail_holds_body(os, dir, m, body, &yes, err)) == KL_OK &&
            (yes || (st = kl_os_unclaim(os, v, 1, err)) == KL_OK)) {
            *won = yes;
            *sent = yes;
            st = Kl_tail_reload(os, cfg, dir, 0, s, err);
        }
    }
    free(ahead);
    return st;
}

kl_status Kl_tail_publish(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                          kl_keystate *s, const kl_object_meta *m, const kl_body *body, int *won,
                          int *sent, kl_error *err)
{
    *won = 0;
    uint64_t began = Kl_boot_ns();
    char *claim = Kl_layout_claim(dir, m->first_offset);
    char *name = Kl_index_name(dir, m);
    char *other = NULL, *tag = NULL;
    kl_object_meta om, *ahead = NULL;
    size_t n_ahead = 0;
    int free_ = 0, check = 0;
    *sent = 0;
    kl_status st = claim && name ? KL_OK : oom(err);
    if (st) goto out;
    st = kl_os_claim(os, claim, name, body, &tag, err);
    *sent = st != KL_EEXIST; /* our claim may exist: it succeeded, or its outcome is unknown */
    int mine = st == KL_OK;
    if (st == KL_EEXIST) {
        /* Until shown another's, it may be ours, its answer lost. */
        st = Kl_tail_read_claim(os, claim, name, body, &mine, &other, &tag, err);
        if (st == KL_OK && !mine) {
            const char *base = strrchr(other, '/');
            st = kl_object_name_parse(base ? base + 1 : other, &om, err);
            if (st == KL_OK && om.first_offset != m->first_offset)
                st = kl_seterr(err, KL_EBADDATA, "claim '%s' names object '%s' of another slot",
                               claim, other);
        }
        *sent = st == KL_OK ? mine : st != KL_EBADDATA; /* EBADDATA: bodiless, or not ours */
        if (st == KL_ENOTFOUND) {                       /* published and deleted meanwhile */
            chain_clear(s);
            st = Kl_tail_reload(os, cfg, dir, 0, s, err);
            goto out;
        }
    }
    int broken = st == KL_EBADDATA && !mine; /* a claim nobody can publish */
    if (st && !broken) goto out;
    if (!mine && !broken) {
        /* Lost: the other's object is the next link; try the slot after
         * it at once (settled when a claim of ours succeeds).  A view that
         * is not fresh may be far behind (claims stay for the hold, so the
         * chain could be long): settle at once, which jumps to the end. */
        if (!(st = Kl_tail_chain_add(s, &om, &claim, &other, &tag, err)) &&
            (s->n_chain >= KL_CHAIN_MAX || !fresh_view(cfg, s)))
            st = Kl_tail_settle(os, cfg, dir, s, err);
        goto out;
    }
    if (broken && s->n_chain) { /* settle first; the next round meets it afresh */
        st = Kl_tail_settle(os, cfg, dir, s, err);
        goto out;
    }
    if (s->n_chain) {
        if ((st = Kl_tail_chain_settle(os, cfg, dir, s, err))) goto out;
        if (s->next_offset < m->first_offset) {
            /* The key ends before our slot, and not where the chain said:
             * our view was stale.  Our claim stays (it may be published as
             * another's link; removing it could make that writer skip its
             * slot); this append fails, its outcome unknown. */
            kl_error e;
            st = kl_seterr(&e, KL_EIO,
                           "'%s' changed under this writer while it claimed slot %" PRIu64
                           "; the append may or may not be in",
                           dir, m->first_offset);
            kl_log(KL_LOG_WARNING, "%s (a stale view; its claim stays)", e.msg);
            if (err) *err = e;
            goto out;
        }
        free_ = s->next_offset == m->first_offset;
    } else if (broken || !cfg->skip_tail_check || !fresh_view(cfg, s)) {
        check = 1;
    } else {
        free_ = 1; /* the check can be skipped: FORMAT.md "Skipping the check" */
    }
    if (broken) {
        /* It blocks the tail forever unless removed; elsewhere it is junk. */
        if (check &&
            (st = slot_free(os, cfg, dir, s, s->next_offset, &free_, &ahead, &n_ahead, err)))
            goto out;
        const char *v[1] = {claim};
        st = free_ ? kl_os_unclaim(os, v, 1, err) : Kl_tail_reload(os, cfg, dir, 0, s, err);
    } else {
        st = place_mine(os, cfg, dir, s, m, claim, name, tag, body, check, free_, won, sent, err);
    }
out:
    /* Whatever this call learnt of the tail, it learnt after it began. */
    if (st == KL_OK && !s->n_chain) s->view_ns = began;
    free(ahead);
    free(claim);
    free(name);
    free(other);
    free(tag);
    return st;
}

/* ---- pipelining: claiming ahead ----------------------------------------- */

int Kl_tail_fresh(const kl_store_config *cfg, const kl_keystate *s)
{
    return cfg->skip_tail_check && !s->n_chain && fresh_view(cfg, s);
}

kl_status Kl_tail_advance(kl_keystate *s, const kl_object_meta *m, kl_error *err)
{
    return advance(s, m, err);
}

kl_status Kl_tail_claim_ahead(kl_objstore *os, const char *dir, const kl_object_meta *m,
                              const kl_body *body, int *won, int *sent, char **tag, kl_error *err)
{
    char *claim = Kl_layout_claim(dir, m->first_offset), *name = Kl_index_name(dir, m);
    char *other = NULL;
    *won = *sent = 0;
    *tag = NULL;
    kl_status st = claim && name ? KL_OK : oom(err);
    if (!st) st = kl_os_claim(os, claim, name, body, tag, err);
    *sent = st != KL_EEXIST;
    *won = st == KL_OK;
    if (st == KL_EEXIST) {
        /* Ours (an answer lost), or another writer's: then the full
         * protocol takes the slot as a link. */
        *sent = 1;
        st = Kl_tail_read_claim(os, claim, name, body, won, &other, tag, err);
        if (st == KL_ENOTFOUND || st == KL_EBADDATA || (st == KL_OK && !*won)) {
            st = KL_OK;
            *sent = 0;
        }
        if (!*won) {
            free(*tag);
            *tag = NULL;
        }
    }
    free(claim);
    free(name);
    free(other);
    return st;
}

kl_status Kl_tail_place_claimed(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                                kl_keystate *s, const kl_object_meta *m, const kl_body *body,
                                const char *tag, int *won, int *sent, kl_error *err)
{
    char *claim = Kl_layout_claim(dir, m->first_offset), *name = Kl_index_name(dir, m);
    kl_status st = claim && name ? KL_OK : oom(err);
    *won = 0;
    *sent = 1;
    if (!st) st = place_mine(os, cfg, dir, s, m, claim, name, tag, body, 1, 0, won, sent, err);
    free(claim);
    free(name);
    return st;
}
