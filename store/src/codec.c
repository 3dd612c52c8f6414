/* codec.c -- encode and decode data object bodies (see codec.h). */
#include <inttypes.h>
#include <stdlib.h>

#include "codec.h"

int Kl_codec_put(kl_buf *b, uint64_t offset, int64_t ts, int has_nonce, kl_u128 nonce,
                 const void *data, uint32_t len)
{
    if (Kl_buf_reserve(b, (size_t)len + KL_RECORD_OVERHEAD) != 0) return -1;
    uint8_t *p = b->data + b->len;
    kl_u128 n = has_nonce ? nonce : KL_NONCE_NONE;
    Kl_put_le64(p, offset);
    Kl_put_le64(p + 8, (uint64_t)ts);
    Kl_put_le64(p + 16, (uint64_t)n);
    Kl_put_le64(p + 24, (uint64_t)(n >> 64));
    Kl_put_le32(p + 32, len);
    if (len) __builtin_memcpy(p + KL_RECORD_HEADER, data, len);
    Kl_put_le32(p + KL_RECORD_HEADER + len, KL_RECORD_HEADER + len);
    b->len += (size_t)len + KL_RECORD_OVERHEAD;
    return 0;
}

kl_status Kl_codec_frame_error(const uint8_t *body, size_t len, size_t pos, const char *what,
                               kl_error *err)
{
    if (len - pos < KL_RECORD_OVERHEAD)
        return kl_seterr(err, KL_EBADDATA, "%s: truncated record at byte %zu", what, pos);
    uint32_t plen = Kl_le32(body + pos + 32);
    if ((uint64_t)plen + KL_RECORD_OVERHEAD > len - pos)
        return kl_seterr(err, KL_EBADDATA,
                         "%s: record at byte %zu claims %" PRIu32
                         " bytes, past the end of the object",
                         what, pos, plen);
    uint32_t trailer = Kl_le32(body + pos + KL_RECORD_HEADER + plen);
    return kl_seterr(err, KL_EBADDATA,
                     "%s: record at byte %zu has trailer %" PRIu32 ", expected %" PRIu32, what, pos,
                     trailer, KL_RECORD_HEADER + plen);
}

/* Counts records and checks framing before allocating, so a corrupt
 * length can never make us allocate or read wildly. */
static kl_status frame_count(const uint8_t *body, size_t len, const char *what, size_t *count,
                             kl_error *err)
{
    size_t pos = 0, n = 0;
    uint32_t plen;
    while (pos < len) {
        if (!Kl_codec_framed(body, len, pos, &plen))
            return Kl_codec_frame_error(body, len, pos, what, err);
        pos += (size_t)plen + KL_RECORD_OVERHEAD;
        n++;
    }
    *count = n;
    return KL_OK;
}

/* Decodes records into recs[0..cap), validating framing as it goes; the
 * count read is returned in *n.  One pass over the body. */
static kl_status decode_into(const uint8_t *body, size_t len, const char *what, kl_record *recs,
                             size_t cap, size_t *n, kl_error *err)
{
    size_t pos = 0, i = 0;
    uint32_t plen;
    while (pos < len) {
        if (!Kl_codec_framed(body, len, pos, &plen))
            return Kl_codec_frame_error(body, len, pos, what, err);
        if (i == cap)
            return kl_seterr(err, KL_EBADDATA, "%s: holds more records than its name says", what);
        Kl_codec_record(&recs[i++], body + pos, plen);
        pos += (size_t)plen + KL_RECORD_OVERHEAD;
    }
    *n = i;
    return KL_OK;
}

kl_status Kl_codec_decode(const uint8_t *body, size_t len, const kl_object_meta *m,
                          const char *what, kl_record **out, size_t *n, kl_error *err)
{
    size_t count = 0;
    kl_status st;
    if (m) {
        /* The name says how many records: allocate once, decode once. */
        if (m->size != len)
            return kl_seterr(err, KL_EBADDATA, "%s: body has %zu bytes, its name says %" PRIu64,
                             what, len, m->size);
        count = m->last_offset - m->first_offset + 1;
        if (count > len / KL_RECORD_OVERHEAD)
            return kl_seterr(err, KL_EBADDATA,
                             "%s: %zu bytes cannot hold the %zu records its "
                             "name says",
                             what, len, count);
    } else if ((st = frame_count(body, len, what, &count, err))) {
        return st;
    }
    kl_record *recs = count ? malloc(count * sizeof *recs) : NULL;
    if (count && !recs) return kl_seterr(err, KL_ENOMEM, "%s: out of memory", what);
    size_t got = 0;
    st = decode_into(body, len, what, recs, count, &got, err);
    if (st == KL_OK && got != count)
        st = kl_seterr(err, KL_EBADDATA, "%s: body has %zu records, its name says %zu", what, got,
                       count);
    for (size_t i = 0; st == KL_OK && m && i < got; i++)
        if (recs[i].offset != m->first_offset + i)
            st = kl_seterr(err, KL_EBADDATA,
                           "%s: record %zu has offset %" PRIu64 ", expected %" PRIu64, what, i,
                           recs[i].offset, m->first_offset + i);
    if (st) {
        free(recs);
        return st;
    }
    *out = recs;
    *n = count;
    return KL_OK;
}
