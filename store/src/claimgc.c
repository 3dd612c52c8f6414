/* claimgc.c -- deleting what the concurrent-writer protocol leaves
 * behind (claimgc.h): slot claims, once below the watermark and held long
 * enough, and objects that others cover (leftovers of concurrent merges
 * and of late publishes).  The rules and why they are safe: FORMAT.md
 * "Concurrent writers" and "Skipping the check". */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "claimgc.h"
#include "clock.h"
#include "keyindex.h"
#include "layout.h"

static kl_status oom(kl_error *err) { return kl_seterr(err, KL_ENOMEM, "out of memory"); }

uint64_t Kl_claimgc_hold_ns(const kl_store_config *cfg) { return cfg->claim_hold_ms * 1000000u; }

kl_status Kl_claimgc_drop_covered(kl_objstore *os, const char *dir, const kl_object_meta *v,
                                  size_t n, kl_error *err)
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

kl_status Kl_claimgc_drop_covered_from(kl_objstore *os, const char *dir, uint64_t first,
                                       kl_error *err)
{
    kl_object_meta *v = NULL, *covered = NULL;
    size_t n = 0, nc = 0;
    kl_status st = Kl_index_list_covered(os, dir, first, &v, &n, &covered, &nc, err);
    if (st == KL_OK) st = Kl_claimgc_drop_covered(os, dir, covered, nc, err);
    free(v);
    free(covered);
    return st;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

kl_status Kl_claimgc_delete(kl_objstore *os, const char *dir, kl_keystate *s, const uint64_t *v,
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
    if (s->n_claims) { /* drop the deleted slots from s->claims (both can be long) */
        uint64_t *sorted = malloc(n * sizeof *sorted);
        if (!sorted) return oom(err);
        memcpy(sorted, v, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cmp_u64);
        size_t k = 0;
        for (size_t i = 0; i < s->n_claims; i++)
            if (!bsearch(&s->claims[i].slot, sorted, n, sizeof *sorted, cmp_u64))
                s->claims[k++] = s->claims[i];
        s->n_claims = k;
        free(sorted);
    }
    /* A writer stopped between its check and its publish may have brought
     * back an object since merged away (its claim was still there); with
     * the claims gone no publish can, so one look now finds them all --
     * from the start of the object that holds the lowest slot, so that the
     * merged object covering such a part is listed with it. */
    uint64_t lo = v[0];
    for (size_t i = 1; i < n; i++)
        if (v[i] < lo) lo = v[i];
    int found;
    kl_object_meta c;
    kl_status sst = Kl_index_seek_offset(os, NULL, dir, lo, lo, &found, &c, err);
    if (sst == KL_OK && found && c.first_offset < lo) lo = c.first_offset;
    return sst ? sst : Kl_claimgc_drop_covered_from(os, dir, lo, err);
}

/* Oldest and newest change times (ms, store clock) of the key's data
 * objects from `from` on (one LIST page; 0 when unknown). */
static kl_status data_times(kl_objstore *os, const char *dir, uint64_t from, int64_t *oldest,
                            int64_t *newest, kl_error *err)
{
    char *prefix = Kl_layout_join(dir, "data_o");
    char *after = Kl_layout_seek(dir, from);
    kl_status st = prefix && after ? KL_OK : oom(err);
    kl_listing l = {0};
    if (!st) {
        kl_list_req req = {.prefix = prefix, .start_after = after};
        st = kl_os_list(os, &req, &l, err);
    }
    free(prefix);
    free(after);
    *oldest = *newest = 0;
    for (size_t i = 0; !st && i < l.n_objects; i++) {
        int64_t t = l.objects[i].mtime_ms;
        if (t > 0 && (*oldest == 0 || t < *oldest)) *oldest = t;
        if (t > *newest) *newest = t;
    }
    if (!st) kl_listing_free(&l);
    return st;
}

/* Finds the claims of slots below the watermark (a complete batch lies
 * after them, so no check can find their slots free again), left by
 * writers that stopped before deleting them.  A claim may only go once
 * its slot was published claim_hold_ms ago (FORMAT.md says why).  The
 * store's own times tell: every data object from the watermark on was
 * written after those slots were published (objects are published in
 * offset order, merges after their parts), so when the oldest of them is
 * older by the hold than the newest object or claim listed (no later than
 * the store's now), they may all go.  Claims of later slots cannot tell:
 * a writer chasing the tail claims a slot before the one below it is
 * published (tail.c).  The rest are kept in s->claims for
 * Kl_claimgc_run, timed from now. */
kl_status Kl_claimgc_sweep(kl_objstore *os, const kl_store_config *cfg, const char *dir,
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
    size_t n = 0;
    uint64_t *slots = malloc((l.n_objects ? l.n_objects : 1) * sizeof *slots);
    int64_t newest = 0;
    for (size_t i = 0; slots && i < l.n_objects; i++) {
        const char *p = l.objects[i].name + plen;
        char *end;
        uint64_t slot = strtoull(p, &end, 10);
        if (end != p + 20 || (*end != 0 && *end != '/')) continue;
        if (l.objects[i].mtime_ms > newest) newest = l.objects[i].mtime_ms;
        /* below the watermark; a directory claim lists its file too */
        if (slot < s->watermark && (n == 0 || slots[n - 1] != slot)) slots[n++] = slot;
    }
    kl_listing_free(&l);
    if (!slots) return oom(err);
    int64_t oldest = 0, newest_data = 0;
    /* S3 may give whole seconds: a second more keeps the hold whole. */
    int64_t hold = (int64_t)cfg->claim_hold_ms + 1000;
    if (n && (st = data_times(os, dir, s->watermark, &oldest, &newest_data, err)) == KL_OK) {
        if (newest_data > newest) newest = newest_data;
        if (oldest > 0 && oldest <= newest - hold) {
            /* Best effort: what is left is found by the next load. */
            kl_error uerr;
            if (Kl_claimgc_delete(os, dir, s, slots, n, &uerr) != KL_OK)
                kl_log(KL_LOG_WARNING, "could not delete old claims of '%s': %s", dir, uerr.msg);
            n = 0;
        }
    }
    uint64_t now = Kl_boot_ns();
    for (size_t i = 0; !st && i < n; i++) /* ascending, as Kl_keystate_add_claim likes */
        if (Kl_keystate_add_claim(s, slots[i], now) != 0) st = oom(err);
    free(slots);
    return st;
}

kl_status Kl_claimgc_run(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                         kl_keystate *s, size_t min, kl_error *err)
{
    uint64_t *v = malloc((s->n_claims ? s->n_claims : 1) * sizeof *v);
    if (!v) return oom(err);
    size_t n = 0;
    uint64_t now = Kl_boot_ns(), hold = Kl_claimgc_hold_ns(cfg);
    for (size_t i = 0; i < s->n_claims; i++)
        if (s->claims[i].slot < s->watermark && now - s->claims[i].seen_ns >= hold)
            v[n++] = s->claims[i].slot;
    kl_status st = KL_OK;
    if (n >= min) {
        s->gc_ns = now;
        st = Kl_claimgc_delete(os, dir, s, v, n, err);
    }
    free(v);
    return st;
}
