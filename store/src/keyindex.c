/* keyindex.c -- O(log n) searches over a key's data objects (keyindex.h).
 *
 * Every probe is one LIST "start-after {dir}data_o{X:020}", max 1000: the
 * objects whose first offset is >= X.  A probe answers more than a yes/no:
 * when the wanted object is inside the returned page the search ends at
 * once, and when the page is entirely before it the lower bound jumps past
 * the whole page.  So small keys resolve in one LIST and large ones in a
 * binary search over offsets. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "hash.h"
#include "keyindex.h"
#include "layout.h"

#define PROBE_PAGE 1000
/* Pages of nothing but foreign names read in one go before giving up. */
#define FOREIGN_PAGES 64

static __thread unsigned long list_count;

unsigned long Kl_index_list_count(void) { return list_count; }

char *Kl_index_name(const char *dir, const kl_object_meta *m)
{
    char base[256];
    if (kl_object_name_format(m, base, sizeof base) < 0) return NULL;
    return Kl_layout_join(dir, base);
}

static int by_offset(const void *a, const void *b)
{
    const kl_object_meta *x = a, *y = b;
    if (x->first_offset != y->first_offset) return x->first_offset < y->first_offset ? -1 : 1;
    /* Equal first offsets: a merged object next to its originals; the one
     * covering more sorts first so deduplication keeps it. */
    return x->last_offset > y->last_offset ? -1 : x->last_offset < y->last_offset;
}

/* Sorts into offset order and drops objects covered by an earlier one
 * (into drop[0..*nd) when drop is given: it has room for n). */
static size_t dedupe(kl_object_meta *v, size_t n, kl_object_meta *drop, size_t *nd)
{
    qsort(v, n, sizeof *v, by_offset);
    size_t k = 0;
    uint64_t covered = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && v[i].last_offset <= covered) {
            if (drop) drop[(*nd)++] = v[i];
            continue;
        }
        v[k++] = v[i];
        covered = v[i].last_offset;
    }
    return k;
}

/* Names under a key's data_ prefix that are not data objects (left by
 * another tool, a sync, a person) are skipped, not fatal: the key's own
 * objects stay readable and writable.  One warning per key per process
 * (a small table of the keys warned about, enough to keep a log quiet). */
static void warn_foreign(const char *dir, const char *name, const kl_error *why)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t warned[256];
    static unsigned next;
    uint64_t h = Kl_hash(dir, strlen(dir), KL_HASH_SEED) | 1;
    int seen = 0;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < sizeof warned / sizeof *warned && !seen; i++) seen = warned[i] == h;
    if (!seen) warned[next++ % (sizeof warned / sizeof *warned)] = h;
    pthread_mutex_unlock(&mu);
    if (!seen)
        kl_log(KL_LOG_WARNING,
               "'%s' holds names that are not data objects, ignored (the "
               "first: %s)",
               dir, why->msg[0] ? why->msg : name);
}

void Kl_index_pages_free(kl_index_pages *pc)
{
    for (int i = 0; i < KL_INDEX_PAGES; i++) free(pc->p[i].v);
    memset(pc, 0, sizeof *pc);
}

/* The answer to "first offsets >= from" that a seen page holds: its
 * objects from `from` on when there are some (a prefix of what a LIST
 * would return; *more as the page's), or nothing when the page ended the
 * key before `from`.  0 when no page knows. */
static int pages_answer(const kl_index_pages *pc, uint64_t from, kl_object_meta **out, size_t *n,
                        int *more)
{
    for (int i = 0; pc && i < KL_INDEX_PAGES; i++) {
        const struct kl_index_page *g = &pc->p[i];
        if (!g->v || g->from > from) continue;
        size_t k = 0;
        while (k < g->n && g->v[k].first_offset < from) k++;
        if (k == g->n && g->more) continue; /* from lies beyond what it saw */
        if (!(*out = malloc((g->n - k ? g->n - k : 1) * sizeof **out))) return 0;
        memcpy(*out, g->v + k, (g->n - k) * sizeof **out);
        *n = g->n - k;
        *more = k < g->n && g->more;
        return 1;
    }
    return 0;
}

static void pages_keep(kl_index_pages *pc, uint64_t from, const kl_object_meta *v, size_t n,
                       int more)
{
    kl_object_meta *c = malloc((n ? n : 1) * sizeof *c);
    if (!c) return; /* best effort */
    memcpy(c, v, n * sizeof *c);
    struct kl_index_page *g = &pc->p[pc->next++ % KL_INDEX_PAGES];
    free(g->v);
    *g = (struct kl_index_page){.from = from, .v = c, .n = n, .more = more};
}

/* One LIST of up to `max` objects with first offset >= from, continuing a
 * previous page when `cont` is given.  Raw (not deduplicated).  Foreign
 * names are dropped; a page of nothing but those is followed by the next,
 * so that an empty result always means no more objects.  With pages (and
 * no `cont`), a page seen before may answer instead; *next then only says
 * whether more follow (it is not a token to continue with). */
static kl_status list_page(kl_objstore *os, kl_index_pages *pc, const char *dir, uint64_t from,
                           size_t max, const char *cont, kl_object_meta **out, size_t *n,
                           char **next, kl_error *err)
{
    int more;
    if (pc && !cont && pages_answer(pc, from, out, n, &more)) {
        if (next && more && !(*next = strdup(""))) { /* a mark, freed as tokens are */
            free(*out);
            return kl_seterr(err, KL_ENOMEM, "out of memory");
        }
        if (next && !more) *next = NULL;
        return KL_OK;
    }
    char *prefix = Kl_layout_join(dir, "data_o");
    char *after = Kl_layout_seek(dir, from);
    char *token = cont ? strdup(cont) : NULL;
    if (!prefix || !after || (cont && !token)) {
        free(prefix);
        free(after);
        free(token);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    kl_object_meta *v = NULL;
    size_t k = 0;
    kl_status st = KL_OK;
    for (int pages = 0;; pages++) {
        kl_list_req req = {.prefix = prefix,
                           .start_after = after,
                           .max_keys = max,
                           .continuation = token,
                           .names_only = 1};
        kl_listing l;
        list_count++;
        if ((st = kl_os_list(os, &req, &l, err))) break;
        free(token);
        token = l.next;
        l.next = NULL;
        if (!(v = malloc((l.n_objects ? l.n_objects : 1) * sizeof *v))) {
            kl_listing_free(&l);
            st = kl_seterr(err, KL_ENOMEM, "out of memory");
            break;
        }
        for (size_t i = 0; i < l.n_objects; i++) {
            kl_error why = {0};
            if (kl_object_name_parse(l.objects[i].name, &v[k], &why) == KL_OK)
                k++;
            else
                warn_foreign(dir, l.objects[i].name, &why);
        }
        kl_listing_free(&l);
        if (k || !token) break;
        free(v);
        v = NULL;
        if (pages + 1 == FOREIGN_PAGES) {
            st = kl_seterr(err, KL_EBADDATA,
                           "'%s': %d pages of listing hold no data object, "
                           "only foreign names",
                           dir, FOREIGN_PAGES);
            break;
        }
    }
    free(prefix);
    free(after);
    if (st) {
        free(v);
        free(token);
        return st;
    }
    /* Empty pages are not kept: the page that ends the key says as much,
     * and they would push out pages a later probe can use. */
    if (pc && !cont && k) pages_keep(pc, from, v, k, token != NULL);
    *out = v;
    *n = k;
    if (next)
        *next = token;
    else
        free(token);
    return KL_OK;
}

static kl_status list_dedupe(kl_objstore *os, const char *dir, uint64_t from, size_t max,
                             kl_object_meta **out, size_t *n, int *more, kl_object_meta **dropped,
                             size_t *n_dropped, kl_error *err);

kl_status Kl_index_list(kl_objstore *os, const char *dir, uint64_t from, size_t max,
                        kl_object_meta **out, size_t *n, int *more, kl_error *err)
{
    return list_dedupe(os, dir, from, max, out, n, more, NULL, NULL, err);
}

kl_status Kl_index_list_covered(kl_objstore *os, const char *dir, uint64_t from,
                                kl_object_meta **out, size_t *n, kl_object_meta **covered,
                                size_t *n_covered, kl_error *err)
{
    return list_dedupe(os, dir, from, 0, out, n, NULL, covered, n_covered, err);
}

static kl_status list_dedupe(kl_objstore *os, const char *dir, uint64_t from, size_t max,
                             kl_object_meta **out, size_t *n, int *more, kl_object_meta **dropped,
                             size_t *n_dropped, kl_error *err)
{
    kl_object_meta *all = NULL;
    size_t total = 0;
    char *cont = NULL;
    kl_status st = KL_OK;
    do {
        size_t want = max ? max - total : PROBE_PAGE;
        if (want > PROBE_PAGE) want = PROBE_PAGE;
        kl_object_meta *page;
        size_t np;
        char *next = NULL;
        st = list_page(os, NULL, dir, from, want, cont, &page, &np, &next, err);
        free(cont);
        cont = next;
        if (st) break;
        kl_object_meta *grown = realloc(all, (total + np + 1) * sizeof *all);
        if (!grown) {
            free(page);
            st = kl_seterr(err, KL_ENOMEM, "out of memory");
            break;
        }
        all = grown;
        memcpy(all + total, page, np * sizeof *page);
        total += np;
        free(page);
    } while (cont && (!max || total < max));
    if (st) {
        free(all);
        free(cont);
        return st;
    }
    if (more) *more = cont != NULL;
    free(cont);
    kl_object_meta *drop = NULL;
    if (dropped) {
        *n_dropped = 0;
        if (!(drop = malloc((total ? total : 1) * sizeof *drop))) {
            free(all);
            return kl_seterr(err, KL_ENOMEM, "out of memory");
        }
        *dropped = drop;
    }
    *n = dedupe(all, total, drop, n_dropped);
    *out = all;
    return KL_OK;
}

kl_status Kl_index_watermark(kl_objstore *os, const char *dir, uint64_t *wm, int *valid,
                             kl_error *err)
{
    char *name = Kl_layout_join(dir, "watermark");
    if (!name) return kl_seterr(err, KL_ENOMEM, "out of memory");
    uint8_t *data = NULL;
    size_t len = 0;
    /* 9 bytes asked: a longer body shows as invalid without reading it. */
    kl_status st = kl_os_get(os, name, 0, 9, &data, &len, err);
    free(name);
    *wm = 0;
    *valid = 1;
    if (st == KL_ENOTFOUND) return KL_OK;
    if (st) return st;
    if (len == 8)
        *wm = Kl_le64(data);
    else
        *valid = 0;
    free(data);
    return KL_OK;
}

/* What one probe at X says about a monotone predicate. */
typedef enum { P_EMPTY, P_FIRST_TRUE, P_DEFINITE, P_NONE_MORE, P_NONE_END } probe_result;

static kl_status probe(kl_objstore *os, kl_index_pages *pc, const char *dir, uint64_t x,
                       kl_obj_pred pred, void *ctx, probe_result *r, kl_object_meta *hit,
                       uint64_t *skip_to, kl_error *err)
{
    kl_object_meta *page;
    size_t n;
    char *next = NULL;
    kl_status st = list_page(os, pc, dir, x, PROBE_PAGE, NULL, &page, &n, &next, err);
    if (st) return st;
    n = dedupe(page, n, NULL, NULL);
    if (n == 0) {
        *r = P_EMPTY;
    } else {
        size_t i = 0;
        while (i < n && !pred(&page[i], ctx)) i++;
        if (i < n) {
            *r = i == 0 ? P_FIRST_TRUE : P_DEFINITE;
            *hit = page[i];
        } else {
            *r = next ? P_NONE_MORE : P_NONE_END;
            *skip_to = page[n - 1].first_offset + 1;
        }
    }
    free(next);
    free(page);
    return KL_OK;
}

kl_status Kl_index_find(kl_objstore *os, kl_index_pages *pc, const char *dir, kl_obj_pred pred,
                        kl_obj_pred exact, void *ctx, uint64_t hi, uint64_t guess, int *found,
                        kl_object_meta *out, kl_error *err)
{
    kl_object_meta cand = {0};
    int have = 0;
    *found = 0;
    if (hi == 0) {
        kl_status st = Kl_index_last(os, pc, dir, &have, &cand, err);
        if (st || !have) return st;
        if (!pred(&cand, ctx)) return KL_OK;
        if (exact && exact(&cand, ctx)) goto done;
        hi = cand.first_offset;
    }
    uint64_t lo = 1;
    uint64_t next_probe = guess ? guess : lo;
    int hinted = 0;
    while (lo <= hi) {
        uint64_t x = (next_probe >= lo && next_probe <= hi) ? next_probe : lo + (hi - lo) / 2;
        next_probe = 0;
        probe_result r;
        kl_object_meta hit;
        uint64_t skip = 0;
        kl_status st = probe(os, pc, dir, x, pred, ctx, &r, &hit, &skip, err);
        if (st) return st;
        switch (r) {
        case P_EMPTY: hi = x - 1; break;
        case P_FIRST_TRUE:
            cand = hit;
            have = 1;
            if (exact && exact(&cand, ctx)) goto done;
            hi = x - 1;
            /* For exact searches the object before it is the likeliest
             * answer: try its prior pointer once before bisecting (a stale
             * pointer after a compaction costs one probe, nothing more). */
            if (exact && !hinted) {
                next_probe = cand.prior;
                hinted = 1;
            }
            break;
        case P_DEFINITE:
            cand = hit;
            have = 1;
            goto done;
        case P_NONE_MORE: lo = skip; break;
        case P_NONE_END: lo = hi + 1; break;
        }
        if (hi == 0) break;
    }
    if (!have) return KL_OK;
done:
    *found = 1;
    *out = cand;
    return KL_OK;
}

static int last_ge(const kl_object_meta *m, void *ctx)
{
    return m->last_offset >= *(uint64_t *)ctx;
}

static int contains(const kl_object_meta *m, void *ctx)
{
    uint64_t off = *(uint64_t *)ctx;
    return m->first_offset <= off && m->last_offset >= off;
}

kl_status Kl_index_seek_offset(kl_objstore *os, kl_index_pages *pc, const char *dir,
                               uint64_t offset, uint64_t guess, int *found, kl_object_meta *out,
                               kl_error *err)
{
    *found = 0;
    if (offset == 0) return KL_OK;
    kl_object_meta m;
    int f;
    kl_status st = Kl_index_find(os, pc, dir, last_ge, contains, &offset, offset,
                                 guess ? guess : offset, &f, &m, err);
    if (st) return st;
    if (!f) {
        /* No object starts at or before `offset` and reaches it, or the
         * offset lies in the last object (which starts before it). */
        st = Kl_index_last(os, pc, dir, &f, &m, err);
        if (st) return st;
    }
    if (f && contains(&m, &offset)) {
        *found = 1;
        *out = m;
    }
    return KL_OK;
}

static kl_object_meta max_last(const kl_object_meta *v, size_t n)
{
    kl_object_meta best = v[0];
    for (size_t i = 1; i < n; i++)
        if (v[i].last_offset > best.last_offset) best = v[i];
    return best;
}

kl_status Kl_index_last(kl_objstore *os, kl_index_pages *pc, const char *dir, int *found,
                        kl_object_meta *out, kl_error *err)
{
    uint64_t wm;
    int valid;
    *found = 0;
    /* The watermark is a hint: everything after it is a short tail. */
    kl_status st = Kl_index_watermark(os, dir, &wm, &valid, err);
    if (st) return st;
    uint64_t from = valid && wm ? wm : 1;
    /* Rounds after the first list afresh: a seen page cut off right after
     * `known` (by foreign names sorting after the data, or a compaction
     * since) would say "more follow" for ever, where a LIST from `known`
     * itself sees the end. */
    for (int round = 0;; round++) {
        kl_object_meta *page;
        size_t n;
        char *next = NULL;
        st = list_page(os, round ? NULL : pc, dir, from, PROBE_PAGE, NULL, &page, &n, &next, err);
        if (st) return st;
        if (n == 0) {
            free(page);
            free(next);
            if (from == 1) return KL_OK;
            from = 1; /* watermark ahead of the data: not ours to trust */
            continue;
        }
        if (!next) {
            *out = max_last(page, n);
            *found = 1;
            free(page);
            return KL_OK;
        }
        free(next);
        /* Many objects after the hint: gallop, then bisect, over offsets.
         * Once the gap between the last page seen and the first empty
         * probe is about a page wide, the end is most likely within one
         * page of `known`: listing right after it ends the search. */
        uint64_t known = max_last(page, n).first_offset;
        uint64_t step = known - page[0].first_offset + 1, span = step;
        free(page);
        uint64_t hi = 0;
        for (;;) {
            uint64_t x = !hi                      ? known + step
                         : hi - known <= 2 * span ? known + 1
                                                  : known + (hi - known) / 2 + 1;
            if (hi && x >= hi) break; /* converged: the last object starts at `known` */
            st = list_page(os, pc, dir, x, PROBE_PAGE, NULL, &page, &n, &next, err);
            if (st) return st;
            if (n == 0) {
                hi = x;
            } else if (!next) {
                *out = max_last(page, n);
                *found = 1;
                free(page);
                return KL_OK;
            } else {
                known = max_last(page, n).first_offset;
                span = known - page[0].first_offset + 1;
                if (!hi) step *= 2;
            }
            free(page);
            free(next);
        }
        from = known;
    }
}
