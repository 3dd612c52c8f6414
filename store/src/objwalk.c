/* objwalk.c -- filling pages from object bodies (see objwalk.h).
 *
 * A walk needs the byte position of its first record.  Records have
 * varying lengths, so that is a hop from a known record start: forwards by
 * the length field, backwards by the trailer (that is what the trailer is
 * for).  Known starts are the two ends of the body and the place the last
 * walk over this object stopped (kept in the object), so paging through an
 * object never rescans it.  Every hop validates the record it crosses. */
#include <inttypes.h>

#include "codec.h"
#include "objwalk.h"

/* Record `idx` (0-based within the object) starts at byte `pos`; idx ==
 * o->count with pos == len is the end of the body. */
typedef struct cursor {
    uint64_t idx;
    size_t pos;
} cursor;

/* Why the record at pos is not record idx (framing, else its offset). */
static __attribute__((cold, noinline)) kl_status bad_record(const kl_cobj *o, size_t pos,
                                                            uint64_t idx, kl_error *err)
{
    const uint8_t *b = o->body.data;
    uint32_t plen;
    if (!Kl_codec_framed(b, o->body.len, pos, &plen))
        return Kl_codec_frame_error(b, o->body.len, pos, o->name, err);
    return kl_seterr(err, KL_EBADDATA,
                     "%s: record at byte %zu has offset %" PRIu64 ", expected %" PRIu64, o->name,
                     pos, Kl_le64(b + pos), o->first + idx);
}

/* Whether the record at pos is whole, well framed and is record idx; its
 * payload length in *plen.  The hot path of every walk. */
static inline int good_record(const kl_cobj *o, size_t pos, uint64_t idx, uint32_t *plen)
{
    return Kl_codec_framed(o->body.data, o->body.len, pos, plen) &&
           Kl_le64(o->body.data + pos) == o->first + idx;
}

/* The end of record c.idx when it is the object's last: nothing may follow. */
static kl_status check_end(const kl_cobj *o, const cursor *c, kl_error *err)
{
    if (c->idx == o->count && c->pos != o->body.len)
        return kl_seterr(err, KL_EBADDATA,
                         "%s: %zu bytes follow its last record (offset %" PRIu64 ")", o->name,
                         o->body.len - c->pos, o->first + o->count - 1);
    return KL_OK;
}

static kl_status hop_forward(const kl_cobj *o, cursor *c, kl_error *err)
{
    uint32_t l;
    if (c->idx >= o->count) return check_end(o, c, err);
    if (!good_record(o, c->pos, c->idx, &l)) return bad_record(o, c->pos, c->idx, err);
    c->pos += (size_t)l + KL_RECORD_OVERHEAD;
    c->idx++;
    return check_end(o, c, err);
}

static kl_status hop_backward(const kl_cobj *o, cursor *c, kl_error *err)
{
    const uint8_t *b = o->body.data;
    uint32_t t = c->pos >= KL_RECORD_OVERHEAD ? Kl_le32(b + c->pos - 4) : 0;
    if (c->idx == 0 || t < KL_RECORD_HEADER || (size_t)t + 4 > c->pos)
        return kl_seterr(err, KL_EBADDATA,
                         "%s: no record %" PRIu64 " ends at byte %zu "
                         "(trailer %" PRIu32 ")",
                         o->name, o->first + c->idx - 1, c->pos, t);
    size_t start = c->pos - 4 - t;
    uint32_t l;
    if (!good_record(o, start, c->idx - 1, &l)) return bad_record(o, start, c->idx - 1, err);
    if ((size_t)l + KL_RECORD_OVERHEAD != c->pos - start)
        return kl_seterr(err, KL_EBADDATA,
                         "%s: record at byte %zu has length %" PRIu32 ", its trailer says %" PRIu32,
                         o->name, start, l, t - KL_RECORD_HEADER);
    c->pos = start;
    c->idx--;
    if (c->idx == 0 && c->pos != 0)
        return kl_seterr(err, KL_EBADDATA, "%s: %zu bytes precede its first record", o->name,
                         c->pos);
    return KL_OK;
}

/* Packs a cursor into the object's one-word hint (0 = none). */
static void remember(kl_cobj *o, const cursor *c)
{
    if (c->idx > 0 && c->idx <= UINT32_MAX && c->pos <= UINT32_MAX)
        atomic_store_explicit(&o->hint, c->idx << 32 | c->pos, memory_order_relaxed);
}

/* A cursor at record idx, hopping from the nearest known record start. */
static kl_status seek(kl_cobj *o, uint64_t idx, cursor *c, kl_error *err)
{
    uint64_t h = atomic_load_explicit(&o->hint, memory_order_relaxed);
    cursor from = {0, 0};
    uint64_t dist = idx;
    if (o->count - idx < dist) {
        from = (cursor){o->count, o->body.len};
        dist = o->count - idx;
    }
    if (h) {
        cursor hc = {h >> 32, (size_t)(h & UINT32_MAX)};
        uint64_t d = hc.idx > idx ? hc.idx - idx : idx - hc.idx;
        if (d < dist) from = hc;
    }
    *c = from;
    kl_status st = KL_OK;
    while (st == KL_OK && c->idx < idx) st = hop_forward(o, c, err);
    while (st == KL_OK && c->idx > idx) st = hop_backward(o, c, err);
    return st;
}

static uint64_t room_for(const kl_pagebuf *pb, uint64_t limit, uint64_t avail)
{
    uint64_t room = limit > pb->n ? limit - pb->n : 0;
    return room < avail ? room : avail;
}

kl_status Kl_objwalk_forward(kl_cobj *o, kl_pagebuf *pb, uint64_t limit, uint64_t *want,
                             kl_error *err)
{
    uint64_t idx = *want - o->first;
    uint64_t k = room_for(pb, limit, o->count - idx);
    if (k == 0) return KL_OK;
    cursor c;
    kl_status st = seek(o, idx, &c, err);
    if (st) return st;
    kl_record *r = Kl_pagebuf_room(pb, o, k);
    if (!r) return kl_seterr(err, KL_ENOMEM, "out of memory");
    const uint8_t *b = o->body.data;
    for (uint64_t i = 0; i < k; i++) {
        uint32_t l;
        if (!good_record(o, c.pos, c.idx, &l)) return bad_record(o, c.pos, c.idx, err);
        Kl_codec_record(&r[i], b + c.pos, l);
        c.pos += (size_t)l + KL_RECORD_OVERHEAD;
        c.idx++;
    }
    if ((st = check_end(o, &c, err))) return st;
    pb->n += k;
    remember(o, &c);
    *want += k;
    return KL_OK;
}

kl_status Kl_objwalk_backward(kl_cobj *o, kl_pagebuf *pb, uint64_t limit, uint64_t *want,
                              kl_error *err)
{
    uint64_t idx = *want - o->first;
    uint64_t k = room_for(pb, limit, idx + 1);
    if (k == 0) return KL_OK;
    cursor c; /* just past the record wanted */
    kl_status st = seek(o, idx + 1, &c, err);
    if (st) return st;
    kl_record *r = Kl_pagebuf_room(pb, o, k);
    if (!r) return kl_seterr(err, KL_ENOMEM, "out of memory");
    for (uint64_t i = 0; i < k; i++) {
        if ((st = hop_backward(o, &c, err))) return st;
        const uint8_t *p = o->body.data + c.pos;
        Kl_codec_record(&r[i], p, Kl_le32(p + 32));
    }
    pb->n += k;
    remember(o, &c);
    *want -= k;
    return KL_OK;
}

kl_status Kl_objwalk_find(kl_cobj *o, int (*pred)(const kl_record *, void *), void *ctx, int *found,
                          uint64_t *offset, kl_error *err)
{
    cursor c = {0, 0};
    *found = 0;
    while (c.idx < o->count) {
        uint32_t l;
        if (!good_record(o, c.pos, c.idx, &l)) return bad_record(o, c.pos, c.idx, err);
        kl_record r;
        Kl_codec_record(&r, o->body.data + c.pos, l);
        if (pred(&r, ctx)) {
            *found = 1;
            *offset = r.offset;
            return KL_OK;
        }
        c.pos += (size_t)l + KL_RECORD_OVERHEAD;
        c.idx++;
    }
    return check_end(o, &c, err);
}
