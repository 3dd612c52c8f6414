/* objbody.h -- the body of a data object a store-writer append puts
 * (append.c): encoded from the append's insertions, in place when they
 * lie framed (append.h Kl_append_records), else copied.  One append, one
 * thread; nothing here locks. */
#ifndef KL_OBJBODY_H
#define KL_OBJBODY_H
#include "buf.h"
#include "klstore.h"

/* Where and when an object is encoded: the tail (next offset, next
 * nonce, prior) and the time given to records without a timestamp. */
typedef struct kl_encode_pos {
    uint64_t offset, prior;
    kl_u128 nonce;
    int64_t now;
} kl_encode_pos;

/* An object's body: in place, pieces over the records' own frames (the
 * caller's framed insertions, append.h: their offsets are written where
 * they lie, nothing is copied), or one pooled buffer they are encoded
 * into.  v is malloc'd, so the struct may be moved (pipelined slices). */
typedef struct kl_objbody {
    kl_buf buf;      /* the copy, pooled (recycle.h), or empty */
    struct iovec *v; /* b's pieces */
    size_t cap;      /* of v */
    kl_body b;
} kl_objbody;

/* Frees what o holds (its pooled buffer, its pieces); o is empty after. */
void Kl_objbody_free(kl_objbody *o);

/* Encodes the records the nonce filter accepts into o (*copied: how many
 * were copied rather than written in place); fills m except name-only
 * fields.  Framed records are taken in place as they are read (one pass
 * over them: they are cold by now), and copied after all if one is
 * dropped or their pieces are small.  Returns the number accepted, -1
 * when out of memory. */
long Kl_objbody_encode(const kl_encode_pos *p, const kl_insertion *ins, size_t n, int framed,
                       kl_objbody *o, kl_object_meta *m, size_t *copied);
#endif
