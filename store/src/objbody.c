/* objbody.c -- the body of a data object a store-writer append puts
 * (objbody.h): its records encoded into a pooled buffer, or, when the
 * caller lent them already framed (the batching writer's queue), taken
 * where they lie, their offsets written in place and the frames handed
 * to the object store in pieces, so that the bytes are not copied a
 * second time on their way to the store. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "codec.h"
#include "objbody.h"
#include "recycle.h"

void Kl_objbody_free(kl_objbody *o)
{
    Kl_recycle_put(o->buf.data);
    free(o->v);
    *o = (kl_objbody){0};
}

static int pieces_room(kl_objbody *o, size_t n)
{
    if (n <= o->cap) return 0;
    size_t cap = o->cap * 2 > n ? o->cap * 2 : n + 7;
    struct iovec *v = realloc(o->v, cap * sizeof *v);
    if (!v) return -1;
    o->v = v;
    o->cap = cap;
    return 0;
}

/* Framed records lie in place when their pieces are this big on average:
 * smaller ones (many one-record appends) cost more as separate pieces of
 * every write than one copy of their bytes. */
#define MIN_PIECE_AVG 4096

/* Whether framed record i starts right where record i - 1 ends. */
static int adjacent(const kl_insertion *ins, size_t i)
{
    return (const uint8_t *)ins[i].data ==
           (const uint8_t *)ins[i - 1].data + ins[i - 1].len + KL_RECORD_OVERHEAD;
}

/* Adds framed record ins[i], at `offset`, to o's pieces: its offset (and a
 * timestamp it lacked) written where it lies.  Writable: the caller lent
 * the frames for that (append.h).  0, or -1 when out of memory. */
static int add_in_place(kl_objbody *o, const kl_insertion *ins, size_t i, uint64_t offset,
                        int64_t ts)
{
    uint8_t *f = (uint8_t *)(uintptr_t)ins[i].data - KL_RECORD_HEADER;
    Kl_put_le64(f, offset);
    if (!ins[i].has_timestamp) Kl_put_le64(f + 8, (uint64_t)ts);
    size_t flen = ins[i].len + KL_RECORD_OVERHEAD;
    if (o->b.n && adjacent(ins, i)) {
        o->v[o->b.n - 1].iov_len += flen;
    } else {
        if (pieces_room(o, o->b.n + 1) != 0) return -1;
        o->v[o->b.n++] = (struct iovec){f, flen};
    }
    o->b.len += flen;
    return 0;
}

/* The nonce filter: whether r is accepted, *next being the key's next
 * nonce before it (moved past r's). */
static int accepted(const kl_insertion *r, kl_u128 *next)
{
    if (!r->has_nonce) return 1;
    if (r->nonce < *next) return 0; /* a duplicate: dropped by design */
    *next = r->nonce + 1;
    return 1;
}

long Kl_objbody_encode(const kl_encode_pos *p, const kl_insertion *ins, size_t n, int framed,
                       kl_objbody *o, kl_object_meta *m, size_t *copied)
{
    kl_u128 next_nonce = p->nonce;
    size_t acc = 0;
    uint64_t bytes = 0;
    int any_nonce = 0, in_place = framed;
    o->b = (kl_body){0};
    *m = (kl_object_meta){.first_offset = p->offset, .prior = p->prior, .first_nonce = p->nonce};
    for (size_t i = 0; i < n; i++) {
        const kl_insertion *r = &ins[i];
        if (!accepted(r, &next_nonce)) {
            in_place = 0;
            continue;
        }
        if (r->has_nonce && !any_nonce++) m->first_nonce = r->nonce;
        int64_t ts = r->has_timestamp ? r->timestamp : p->now;
        if (acc == 0 || ts < m->min_ts) m->min_ts = ts;
        if (acc == 0 || ts > m->max_ts) m->max_ts = ts;
        /* Out of memory for the pieces: the copy below may still fit. */
        if (in_place && add_in_place(o, ins, i, p->offset + acc, ts) != 0) in_place = 0;
        /* Small pieces so far (one-record appends): a copy after all, so
         * stop building pieces now rather than at the end. */
        if (in_place && o->b.n > 16 && o->b.len < o->b.n * MIN_PIECE_AVG) in_place = 0;
        bytes += r->len + KL_RECORD_OVERHEAD;
        acc++;
    }
    m->last_offset = p->offset + acc - 1;
    m->next_nonce = next_nonce;
    m->size = bytes;
    if (in_place && (o->b.n == 1 || bytes >= o->b.n * MIN_PIECE_AVG)) {
        o->b.v = o->v; /* moved by the pieces' reallocs */
        return (long)acc;
    }
    /* A copy (frames written into above are left as they are: a copy
     * encodes from the payloads).  The buffer is sized for the records:
     * encoding never grows it. */
    if (o->buf.cap < bytes) {
        Kl_recycle_put(o->buf.data);
        o->buf = (kl_buf){.data = Kl_recycle_get(bytes), .cap = bytes};
        if (!o->buf.data) {
            o->buf.cap = 0;
            return -1;
        }
    }
    o->buf.len = 0;
    kl_u128 next = p->nonce;
    for (size_t i = 0, k = 0; i < n; i++) {
        const kl_insertion *r = &ins[i];
        if (!accepted(r, &next)) continue;
        int64_t ts = r->has_timestamp ? r->timestamp : p->now;
        if (Kl_codec_put(&o->buf, p->offset + k++, ts, r->has_nonce, r->nonce, r->data,
                         (uint32_t)r->len) != 0)
            return -1;
    }
    if (pieces_room(o, 1) != 0) return -1;
    o->v[0] = (struct iovec){o->buf.data, o->buf.len};
    o->b = (kl_body){o->v, 1, o->buf.len};
    *copied += acc;
    return (long)acc;
}
