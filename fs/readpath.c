/* readpath.c -- serving bytes of a key's text view at any position.
 *
 * A read locates its position in the key's byte-offset index (keyindex.c),
 * copies from the cached object (objcache.c), and continues into the next
 * object until the request is filled, so a read never returns short except
 * at the end of the log.  Positions past the listed objects come from the
 * pending tail (lines this mount appended that no listing shows yet).
 *
 * An object compacted away under us (KL_ENOTFOUND) makes us re-list that
 * region and retry; the text position of every byte is unchanged by
 * compaction, so the retry reads the same bytes from the merged object.
 *
 * Reading at the end of the log refreshes the index (rate-limited), which
 * is what makes `tail -f` and `cat` see lines another writer appended. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "fs.h"

/* How many times one read re-lists after finding objects compacted away
 * before giving up with EIO (each retry follows a fresh listing, so more
 * than a few means the store keeps changing faster than we can follow). */
#define MAX_RESYNC 8

/* Queues the objects after entry i once a read has reached the second half
 * of it: a sequential reader then finds them fetched. */
static void prefetch_next(klfs *fs, node *k, size_t i)
{
    kentry next[16];
    size_t want = fs->readahead < 16 ? fs->readahead : 16;
    size_t n = ki_next_entries(&k->ki, i, next, want);
    for (size_t j = 0; j < n; j++) objcache_prefetch(fs->cache, k, &next[j].m);
}

/* Lets go of an object a read used up to text position `end`. */
static void release(klfs *fs, cobj *o, uint64_t end)
{
    if (fs->drop_consumed && end >= o->len)
        objcache_done(fs->cache, o);
    else
        objcache_put(fs->cache, o);
}

/* Copies from the object of entry `l`; returns bytes copied or -errno,
 * and -EAGAIN when the object was compacted away and the region re-listed. */
static ssize_t copy_object(klfs *fs, node *k, const kloc *l, uint64_t pos, uint8_t *buf, size_t len)
{
    cobj *o;
    kl_error err = {0};
    kl_status st = objcache_get(fs->cache, k, &l->e.m, &o, &err);
    if (st == KL_ENOTFOUND) {
        st = ki_resync(fs, k, l->i, &err);
        if (st == KL_OK) return -EAGAIN;
    }
    if (st) {
        kl_log(KL_LOG_ERROR, "read %s/%s: %s", k->parent->name, k->name, err.msg);
        return -klfs_errno(st);
    }
    uint64_t at = pos - l->e.start;
    size_t n = 0;
    if (at < o->len) {
        n = o->len - at < len ? (size_t)(o->len - at) : len;
        memcpy(buf, o->text + at, n);
    }
    if (at + n >= o->len / 2) prefetch_next(fs, k, l->i);
    release(fs, o, at + n);
    return n ? (ssize_t)n : -EIO;
}

void readpath_unpeek(klfs *fs, cobj *o, const uint8_t *p, size_t len)
{
    release(fs, o, (uint64_t)(p - o->text) + len);
}

int readpath_peek(klfs *fs, node *k, uint64_t pos, size_t len, cobj **out, const uint8_t **p)
{
    kloc l = ki_locate(&k->ki, pos);
    if (l.kind != LOC_OBJECT) return 0;
    cobj *o;
    kl_error err = {0};
    if (objcache_get(fs->cache, k, &l.e.m, &o, &err) != KL_OK)
        return 0; /* the copying path re-lists or reports it */
    uint64_t at = pos - l.e.start;
    if (at >= o->len || o->len - at < len) {
        objcache_put(fs->cache, o);
        return 0;
    }
    if (at + len >= o->len / 2) prefetch_next(fs, k, l.i);
    *out = o;
    *p = o->text + at;
    return 1;
}

ssize_t readpath_read(klfs *fs, node *k, uint64_t pos, uint8_t *buf, size_t len)
{
    size_t got = 0;
    int refreshed = 0, resyncs = 0;
    while (got < len) {
        kloc l = ki_locate(&k->ki, pos + got);
        ssize_t n = 0;
        if (l.kind == LOC_OBJECT) {
            n = copy_object(fs, k, &l, pos + got, buf + got, len - got);
            if (n == -EAGAIN && ++resyncs <= MAX_RESYNC) continue;
        } else if (l.kind == LOC_PENDING) {
            n = (ssize_t)ki_read_pending(&k->ki, pos + got, buf + got, len - got);
        } else if (!refreshed) {
            /* At the end: look for lines appended since the last listing. */
            kl_error err = {0};
            refreshed = 1;
            if (ki_refresh(fs, k, fs->refresh_ms, &err) == KL_OK) continue;
            kl_log(KL_LOG_WARNING, "refresh %s/%s: %s", k->parent->name, k->name, err.msg);
            break;
        } else {
            break;
        }
        if (n < 0) return got ? (ssize_t)got : (n == -EAGAIN ? -EIO : n);
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* The first record offset a view starts at (UINT64_MAX: past the end). */
static int view_offset(klfs *fs, node *v, uint64_t *off)
{
    kl_start start = {.kind = v->spec.kind};
    kl_error err = {0};
    kl_status st = KL_OK;
    switch (v->spec.kind) {
    case KL_START_OFFSET:
        st = kl_parse_u64(v->spec.arg, off, &err);
        if (st == KL_OK && *off == 0) *off = 1;
        return st ? -EINVAL : 0;
    case KL_START_TIMESTAMP: st = kl_parse_time(v->spec.arg, &start.timestamp, &err); break;
    default: st = kl_parse_u128(v->spec.arg, &start.nonce, &err); break;
    }
    if (st) return -EINVAL;
    /* The reader's O(log n) search: one record from the start position. */
    kl_page pg;
    node *k = v->base;
    st =
        kl_read_first_page(fs->reader, k->parent->name, k->name, KL_FORWARDS, &start, 1, &pg, &err);
    if (st) {
        kl_log(KL_LOG_ERROR, "view %s/%s: %s", k->parent->name, v->name, err.msg);
        return -klfs_errno(st);
    }
    *off = pg.count ? pg.records[0].offset : UINT64_MAX;
    kl_page_free(&pg);
    return 0;
}

int readpath_view_base(klfs *fs, node *v, uint64_t *pos)
{
    node *k = v->base;
    uint64_t off;
    int rc = view_offset(fs, v, &off);
    if (rc) return rc;
    kl_error err = {0};
    for (int tries = 0; tries <= MAX_RESYNC; tries++) {
        kloc l;
        if (!ki_find_offset(&k->ki, off, &l)) {
            /* Not listed yet (or past the end): refresh once, else the view
             * starts at the end of what is listed. */
            if (tries == 0 && ki_refresh(fs, k, 0, &err) == KL_OK) continue;
            pthread_mutex_lock(&k->ki.mu);
            *pos = k->ki.committed;
            pthread_mutex_unlock(&k->ki.mu);
            return 0;
        }
        cobj *o;
        kl_status st = objcache_get(fs->cache, k, &l.e.m, &o, &err);
        if (st == KL_ENOTFOUND && ki_resync(fs, k, l.i, &err) == KL_OK) continue;
        if (st) return -klfs_errno(st);
        *pos = l.e.start + o->recpos[off - l.e.m.first_offset];
        objcache_put(fs->cache, o);
        return 0;
    }
    return -EIO;
}
