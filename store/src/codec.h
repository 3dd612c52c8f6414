/* codec.h -- the record encoding of a data object body (FORMAT.md):
 * offset u64 | timestamp i64 | nonce u128 | length u32 | payload | trailer u32
 * all little-endian; trailer = 36 + length so objects can be walked
 * backwards.  Decoding validates everything: a corrupt object is
 * KL_EBADDATA, never a crash or a silently short read. */
#ifndef KL_CODEC_H
#define KL_CODEC_H
#include "buf.h"
#include "klstore.h"

#define KL_RECORD_HEADER 36u

/* Appends one encoded record to b.  Returns 0 or -1 (ENOMEM). */
int Kl_codec_put(kl_buf *b, uint64_t offset, int64_t ts, int has_nonce, kl_u128 nonce,
                 const void *data, uint32_t len);

/* Decodes a whole body into a malloc'd record array whose data pointers
 * point into `body` (which must outlive it).  When `m` is given, checks
 * that offsets run contiguously from m->first_offset to m->last_offset.
 * `what` names the object in error messages. */
kl_status Kl_codec_decode(const uint8_t *body, size_t len, const kl_object_meta *m,
                          const char *what, kl_record **out, size_t *n, kl_error *err);

static inline uint32_t Kl_le32(const uint8_t *p);
static inline uint64_t Kl_le64(const uint8_t *p);

/* Whether the record starting at body[pos] is whole and well framed (its
 * length lies within the body, its trailer matches); its payload length in
 * *plen.  The hot path of every decode and walk. */
static inline int Kl_codec_framed(const uint8_t *body, size_t len, size_t pos, uint32_t *plen)
{
    if (len - pos < KL_RECORD_OVERHEAD) return 0;
    uint32_t l = Kl_le32(body + pos + 32);
    if ((uint64_t)l + KL_RECORD_OVERHEAD > len - pos) return 0;
    if (Kl_le32(body + pos + KL_RECORD_HEADER + l) != KL_RECORD_HEADER + l) return 0;
    *plen = l;
    return 1;
}

/* The KL_EBADDATA error saying how the record at body[pos] is badly framed
 * (call only when Kl_codec_framed said so). */
kl_status Kl_codec_frame_error(const uint8_t *body, size_t len, size_t pos, const char *what,
                               kl_error *err);

/* Fills r from the well-framed record at p with payload length plen. */
static inline void Kl_codec_record(kl_record *r, const uint8_t *p, uint32_t plen)
{
    kl_u128 nonce = (kl_u128)Kl_le64(p + 16) | (kl_u128)Kl_le64(p + 24) << 64;
    r->offset = Kl_le64(p);
    r->timestamp = (int64_t)Kl_le64(p + 8);
    r->has_nonce = nonce != KL_NONCE_NONE;
    r->nonce = r->has_nonce ? nonce : 0;
    r->data = p + KL_RECORD_HEADER;
    r->len = plen;
}

/* Little-endian loads and stores. */
static inline uint32_t Kl_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t Kl_le64(const uint8_t *p)
{
    return (uint64_t)Kl_le32(p) | (uint64_t)Kl_le32(p + 4) << 32;
}
static inline void Kl_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void Kl_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
#endif
