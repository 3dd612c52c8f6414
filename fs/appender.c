/* appender.c -- turning write(2)s into records, and making them durable.
 *
 * Every complete line of a write becomes one record (its '\n' is not
 * stored: the text view adds it back).  An unterminated last line is held
 * in the open file handle, because the next write may complete it, and
 * becomes a record when the process that wrote it closes the file, at
 * fsync, or at the last close -- so text written without a final newline
 * reads back with one.
 *
 * Records go to the batching writer, which turns many small appends into
 * few objects; flush/fsync/release then wait for kl_flush_key, so close(2)
 * and fsync(2) return only once this file's lines are durable, and report
 * EIO when they are not (the writer keeps failed records and retries them
 * at the next flush: nothing is dropped silently).
 *
 * Only appending is allowed: a handle opened with O_APPEND always appends
 * whatever offset the kernel passes (the kernel's idea of the size may be
 * older than ours); any other handle must write exactly at the end, which
 * is what `cat > new`, `dd` and `tee` do. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

fhandle *fh_new(klfs *fs, node *n, int writable, int append)
{
    fhandle *fh = calloc(1, sizeof *fh);
    if (!fh) return NULL;
    fh->n = n;
    fh->writable = writable;
    fh->append = append;
    pthread_mutex_init(&fh->mu, NULL);
    /* Every handle is listed: writers for the final flush, all of them so
     * that handles still open at unmount can be freed. */
    pthread_mutex_lock(&fs->fh_mu);
    fh->next = fs->open_files;
    if (fh->next) fh->next->prev = fh;
    fs->open_files = fh;
    pthread_mutex_unlock(&fs->fh_mu);
    return fh;
}

void fh_free(klfs *fs, fhandle *fh)
{
    pthread_mutex_lock(&fs->fh_mu);
    if (fh->prev)
        fh->prev->next = fh->next;
    else
        fs->open_files = fh->next;
    if (fh->next) fh->next->prev = fh->prev;
    pthread_mutex_unlock(&fs->fh_mu);
    pthread_mutex_destroy(&fh->mu);
    free(fh->partial);
    free(fh->snap);
    free(fh);
}

/* A line longer than KL_RECORD_MAX is refused whole: what is held of it
 * is dropped, and so is the rest of it as it comes (each write of it
 * failing with EFBIG), so that nothing of it is ever stored; the lines
 * after it are taken as usual. */
static int refuse_line(fhandle *fh, int line_goes_on)
{
    fh->plen = 0;
    fh->refusing = line_goes_on;
    return -EFBIG;
}

static int hold(fhandle *fh, const uint8_t *p, size_t n)
{
    if (n == 0) return 0;
    if (fh->plen + n > KL_RECORD_MAX) return refuse_line(fh, 1);
    if (fh->plen + n > fh->pcap) {
        size_t cap = fh->pcap ? fh->pcap : 256;
        while (cap < fh->plen + n) cap *= 2;
        uint8_t *b = realloc(fh->partial, cap);
        if (!b) return -ENOMEM;
        fh->partial = b;
        fh->pcap = cap;
    }
    memcpy(fh->partial + fh->plen, p, n);
    fh->plen += n;
    return 0;
}

static uint64_t pending_len(node *k)
{
    kl_textview_info info;
    kl_textview_stat(k->tv, &info);
    return info.pending;
}

/* Waits until the key's records are durable; lists the key if some of
 * them are still shown from the pending tail. */
static int flush_key(klfs *fs, node *k)
{
    kl_error err = {0};
    int64_t t0 = kl_mono_ms();
    kl_status st = kl_flush_key(fs->writer, k->parent->name, k->name, &err);
    km_hist_observe(&fs->stats.flush_seconds, (kl_mono_ms() - t0) / 1000.0);
    atomic_store(&fs->stats.flush_failing, st != KL_OK);
    if (st != KL_OK) {
        KLFS_COUNT(fs, write_errors, 1);
        kl_log(KL_LOG_ERROR, "flush %s/%s: %s", k->parent->name, k->name, err.msg);
        return st == KL_ENOSPC ? -ENOSPC : -EIO;
    }
    /* The writer reported each object it published (kl_textview_report):
     * when that placed every pending line, a listing would only repeat it. */
    if (pending_len(k) != 0 && kl_textview_refresh(k->tv, 0, &err) != KL_OK)
        kl_log(KL_LOG_WARNING, "refresh %s/%s: %s", k->parent->name, k->name, err.msg);
    return 0;
}

/* Appends records through the key's text view, which shows them at once. */
static int append_records(klfs *fs, node *k, const kl_insertion *ins, size_t n)
{
    kl_error err = {0};
    kl_status st = kl_textview_append(k->tv, fs->writer, ins, n, &err);
    if (st) {
        KLFS_COUNT(fs, write_errors, 1);
        kl_log(KL_LOG_ERROR, "append %s/%s: %s", k->parent->name, k->name, err.msg);
        return st == KL_EINVAL || st == KL_ENOSPC ? -klfs_errno(st) : -EIO;
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += ins[i].len;
    KLFS_COUNT(fs, appended_records, n);
    KLFS_COUNT(fs, appended_bytes, bytes);
    /* Backpressure and a memory bound: once the pending tail is large, a
     * listing first retires what the batching writer has already written
     * on its own (full batches go out as they fill), and only a writer
     * that outruns the store waits for a flush. */
    if (pending_len(k) <= fs->pending_max) return 0;
    if (kl_textview_refresh(k->tv, 0, &err) == KL_OK && pending_len(k) <= fs->pending_max / 2)
        return 0;
    return flush_key(fs, k);
}

/* The records of data[0 .. last_nl], the first prefixed by the held
 * partial line. */
static int append_lines(klfs *fs, fhandle *fh, const uint8_t *data, size_t upto)
{
    size_t lines = 0;
    for (const uint8_t *p = data; (p = memchr(p, '\n', (size_t)(data + upto - p))); p++) lines++;
    kl_insertion *ins = calloc(lines, sizeof *ins);
    uint8_t *first = NULL;
    if (!ins) return -ENOMEM;
    const uint8_t *p = data;
    for (size_t i = 0; i < lines; i++) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(data + upto - p));
        ins[i].data = p;
        ins[i].len = (size_t)(nl - p);
        p = nl + 1;
    }
    int rc = 0;
    if (fh->plen) {
        /* The first record joins the held partial line. */
        if (fh->plen + ins[0].len > KL_RECORD_MAX) {
            rc = refuse_line(fh, 0);
        } else if (!(first = malloc(fh->plen + ins[0].len + 1))) {
            rc = -ENOMEM;
        } else {
            memcpy(first, fh->partial, fh->plen);
            memcpy(first + fh->plen, ins[0].data, ins[0].len);
            ins[0].data = first;
            ins[0].len += fh->plen;
        }
    }
    for (size_t i = 0; rc == 0 && i < lines; i++)
        if (ins[i].len > KL_RECORD_MAX) rc = -EFBIG;
    if (rc == 0) rc = append_records(fs, fh->n, ins, lines);
    if (rc == 0) fh->plen = 0;
    free(first);
    free(ins);
    return rc;
}

ssize_t appender_write(klfs *fs, fhandle *fh, const uint8_t *data, size_t len, uint64_t off,
                       uint64_t owner)
{
    pthread_mutex_lock(&fh->mu);
    int rc = 0;
    kl_textview_info info;
    kl_textview_stat(fh->n->tv, &info);
    if (!fh->append && off != info.size + fh->plen) {
        rc = -EPERM; /* not at the end: that would rewrite the log */
    } else {
        const uint8_t *p = data;
        size_t n = len;
        if (fh->refusing) { /* the rest of a refused line, up to its '\n' */
            const uint8_t *end = n ? memchr(p, '\n', n) : NULL;
            if (!end)
                rc = -EFBIG;
            else {
                fh->refusing = 0;
                n -= (size_t)(end + 1 - p);
                p = end + 1;
            }
        }
        const uint8_t *nl = rc == 0 && n ? memrchr(p, '\n', n) : NULL;
        size_t upto = nl ? (size_t)(nl - p) + 1 : 0;
        if (upto) rc = append_lines(fs, fh, p, upto);
        if (rc == 0) rc = hold(fh, p + upto, n - upto);
        fh->owner = owner;
        fh->dirty = 1;
    }
    pthread_mutex_unlock(&fh->mu);
    return rc ? rc : (ssize_t)len;
}

/* Makes the held partial line a record (fh->mu held). */
static int emit_partial(klfs *fs, fhandle *fh)
{
    if (!fh->plen) return 0;
    kl_insertion ins = {.data = fh->partial, .len = fh->plen};
    int rc = append_records(fs, fh->n, &ins, 1);
    if (rc == 0) fh->plen = 0;
    return rc;
}

int appender_flush(klfs *fs, fhandle *fh, uint64_t owner)
{
    pthread_mutex_lock(&fh->mu);
    int rc = 0;
    if (fh->dirty) {
        /* A child that inherited the descriptor and exits (`{ printf a;
         * sleep 1; echo b; } >> f`) closes it too; that must not end the
         * line its parent is still writing. */
        if (owner == 0 || owner == fh->owner) rc = emit_partial(fs, fh);
        if (rc == 0) rc = flush_key(fs, fh->n);
        /* Still dirty: a failed flush (retried by the next one) or a
         * partial line that the next close, fsync or release must emit. */
        fh->dirty = rc != 0 || fh->plen != 0;
    }
    pthread_mutex_unlock(&fh->mu);
    return rc;
}

int appender_flush_all(klfs *fs)
{
    int rc = 0;
    pthread_mutex_lock(&fs->fh_mu);
    for (fhandle *fh = fs->open_files; fh; fh = fh->next) {
        pthread_mutex_lock(&fh->mu);
        if (fh->writable && emit_partial(fs, fh) != 0) rc = -EIO;
        pthread_mutex_unlock(&fh->mu);
    }
    pthread_mutex_unlock(&fs->fh_mu);
    kl_error err = {0};
    if (fs->writer && kl_flush_all(fs->writer, &err) != KL_OK) {
        kl_log(KL_LOG_ERROR, "final flush: %s", err.msg);
        rc = -EIO;
    }
    return rc;
}
