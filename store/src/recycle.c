/* recycle.c -- the pool of large buffers (see recycle.h).  Each buffer
 * carries its capacity in a header just before it, so a put needs no size.
 * Small buffers are not worth pooling and go straight to malloc. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#include "recycle.h"

#define HDR        64u         /* keeps the payload well aligned */
#define MIN_POOLED (64u << 10) /* below this malloc is cheap enough */
#define GRAIN      (64u << 10) /* capacities round up to this */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static void *slot[KL_RECYCLE_SLOTS]; /* header pointers */
static size_t nslots, pooled_bytes;

static size_t cap_of(void *h) { return *(size_t *)h; }

void *Kl_recycle_get(size_t size)
{
    if (size > SIZE_MAX - HDR - GRAIN) return NULL;
    size_t cap = size < MIN_POOLED ? size : (size + GRAIN - 1) / GRAIN * GRAIN;
    void *h = NULL;
    if (cap >= MIN_POOLED) {
        pthread_mutex_lock(&mu);
        /* The smallest pooled buffer that fits without wasting half. */
        size_t best = nslots;
        for (size_t i = 0; i < nslots; i++) {
            size_t c = cap_of(slot[i]);
            if (c >= cap && c / 2 <= cap && (best == nslots || c < cap_of(slot[best]))) best = i;
        }
        if (best < nslots) {
            h = slot[best];
            slot[best] = slot[--nslots];
            pooled_bytes -= cap_of(h);
        }
        pthread_mutex_unlock(&mu);
    }
    if (!h) {
        h = malloc(HDR + (cap ? cap : 1));
        if (!h) return NULL;
        *(size_t *)h = cap;
        if (cap >= MIN_POOLED) Kl_populate((char *)h + HDR, cap);
    }
    return (char *)h + HDR;
}

void Kl_populate(void *p, size_t len)
{
    uintptr_t from = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t to = ((uintptr_t)p + len) & ~(uintptr_t)4095;
    if (to > from) (void)madvise((void *)from, to - from, MADV_POPULATE_WRITE);
}

void Kl_recycle_put(void *p)
{
    if (!p) return;
    void *h = (char *)p - HDR;
    size_t cap = cap_of(h);
    if (cap >= MIN_POOLED) {
        pthread_mutex_lock(&mu);
        int kept = nslots < KL_RECYCLE_SLOTS && pooled_bytes + cap <= KL_RECYCLE_BYTES;
        if (kept) {
            slot[nslots++] = h;
            pooled_bytes += cap;
        }
        pthread_mutex_unlock(&mu);
        if (kept) return;
    }
    free(h);
}
