/* textpending.c -- a text view's pending tail: the bytes of lines appended
 * through the view that no listing or report has placed yet (textview.h).
 *
 * Published lines leave from the front, added ones join at the end, so the
 * tail is a window [pend_head, pend_head + pend_len) of one buffer: a retire
 * only moves the head (a memmove per published object moved up to
 * pending_mb every time), and an add slides the bytes down only when the
 * buffer's end is reached.  Positions are also counted from the tail's
 * creation (pend_retired + offset), which stay meaningful while lines
 * leave the front: a failed append takes back exactly what is left of its
 * own lines.  Everything here runs under the view's mu. */
#include <stdlib.h>
#include <string.h>

#include "textview.h"

void Kl_tv_pend_retire(kl_textview *tv, uint64_t bytes)
{
    /* Credit: bytes that left early, for an object a listing mistook for
     * ours (textindex.c); the object that really holds them takes it. */
    uint64_t c = tv->credit < bytes ? tv->credit : bytes;
    tv->credit -= c;
    bytes -= c;
    size_t drop = bytes < tv->pend_len ? (size_t)bytes : tv->pend_len;
    tv->pend_len -= drop;
    tv->pend_retired += drop;
    tv->pend_head = tv->pend_len ? tv->pend_head + drop : 0;
}

size_t Kl_tv_read_pending(kl_textview *tv, uint64_t pos, uint8_t *buf, size_t len)
{
    size_t c = 0;
    pthread_mutex_lock(&tv->mu);
    if (pos >= tv->committed && pos < tv->committed + tv->pend_len) {
        size_t at = (size_t)(pos - tv->committed);
        c = tv->pend_len - at < len ? tv->pend_len - at : len;
        memcpy(buf, tv->pend + tv->pend_head + at, c);
    }
    pthread_mutex_unlock(&tv->mu);
    return c;
}

/* Room for `add` more bytes at the end: slide down when that leaves half
 * the buffer free (each byte is then moved about once), else grow. */
static int make_room(kl_textview *tv, size_t add)
{
    size_t need = tv->pend_len + add;
    if (tv->pend_head + need <= tv->pend_cap) return 0;
    if (need <= tv->pend_cap / 2) {
        memmove(tv->pend, tv->pend + tv->pend_head, tv->pend_len);
    } else {
        size_t cap = tv->pend_cap ? tv->pend_cap : 4096;
        while (cap < need + need / 2) cap *= 2;
        uint8_t *p = malloc(cap);
        if (!p) return -1;
        if (tv->pend_len) memcpy(p, tv->pend + tv->pend_head, tv->pend_len);
        free(tv->pend);
        tv->pend = p;
        tv->pend_cap = cap;
    }
    tv->pend_head = 0;
    return 0;
}

kl_status Kl_tv_pend_add(kl_textview *tv, const kl_insertion *ins, size_t n, uint64_t *start)
{
    size_t add = 0;
    for (size_t i = 0; i < n; i++) add += ins[i].len + 1;
    if (make_room(tv, add) != 0) return KL_ENOMEM;
    *start = tv->pend_retired + tv->pend_len;
    uint8_t *at = tv->pend + tv->pend_head + tv->pend_len;
    for (size_t i = 0; i < n; i++) {
        if (ins[i].len) memcpy(at, ins[i].data, ins[i].len);
        at += ins[i].len;
        *at++ = '\n';
    }
    tv->pend_len += add;
    tv->pend_mtime = kl_now_ms();
    return KL_OK;
}

void Kl_tv_pend_cut(kl_textview *tv, uint64_t at, uint64_t bytes)
{
    if (at < tv->pend_retired) at = tv->pend_retired;
    uint64_t end = tv->pend_retired + tv->pend_len;
    if (at >= end) return;
    size_t from = (size_t)(at - tv->pend_retired);
    size_t n = bytes < end - at ? (size_t)bytes : (size_t)(end - at);
    uint8_t *p = tv->pend + tv->pend_head;
    memmove(p + from, p + from + n, tv->pend_len - from - n);
    tv->pend_len -= n;
    if (tv->pend_len == 0) tv->pend_head = 0;
}

void kl_textview_pending_release(kl_textview *tv)
{
    pthread_mutex_lock(&tv->mu);
    if (tv->pend_len == 0) {
        free(tv->pend);
        tv->pend = NULL;
        tv->pend_head = tv->pend_cap = 0;
    }
    pthread_mutex_unlock(&tv->mu);
}
