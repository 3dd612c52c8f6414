/* append.c -- one store-writer append (append.h): encoding the records as
 * one data object at the tail, putting it there (through a claimed slot,
 * or unfenced), and resuming an earlier append to the key whose outcome
 * was unknown, so that a retry never writes its records twice.
 *
 * Why the attempt is matched by a digest of the records and re-encoded
 * rather than kept: keeping the body would hold up to an object per
 * failing key for as long as the key fails (a store outage fails them
 * all); the records themselves are still held by the caller that
 * retries, and the encoding is deterministic given the tail and the time
 * that the attempt records. */
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "append.h"
#include "buf.h"
#include "codec.h"
#include "keyindex.h"
#include "recycle.h"
#include "tail.h"

/* Slots an append may lose to other writers before it gives up: with k
 * writers racing evenly, losing 200 in a row has odds of ((k-1)/k)^200. */
#define MAX_LOST 200

static kl_status oom(kl_error *err) { return kl_seterr(err, KL_ENOMEM, "out of memory"); }

/* Where and when an object is encoded: the tail (next offset, next
 * nonce, prior) and the time given to records without a timestamp. */
typedef struct encode_pos {
    uint64_t offset, prior;
    kl_u128 nonce;
    int64_t now;
} encode_pos;

static encode_pos pos_of(const kl_keystate *s)
{
    return (encode_pos){s->next_offset, s->last_first, s->next_nonce, kl_now_ms()};
}

/* Encodes the records the nonce filter accepts into body (cleared); fills
 * m except name-only fields.  Returns the number accepted, -1 when out of
 * memory. */
static long encode_at(const encode_pos *p, const kl_insertion *ins, size_t n, kl_buf *body,
                      kl_object_meta *m)
{
    kl_u128 next_nonce = p->nonce;
    size_t acc = 0;
    int any_nonce = 0;
    body->len = 0;
    *m = (kl_object_meta){.first_offset = p->offset, .prior = p->prior, .first_nonce = p->nonce};
    for (size_t i = 0; i < n; i++) {
        const kl_insertion *r = &ins[i];
        if (r->has_nonce) {
            if (r->nonce < next_nonce) continue; /* a duplicate: dropped by design */
            if (!any_nonce) m->first_nonce = r->nonce;
            any_nonce = 1;
            next_nonce = r->nonce + 1;
        }
        int64_t ts = r->has_timestamp ? r->timestamp : p->now;
        if (acc == 0 || ts < m->min_ts) m->min_ts = ts;
        if (acc == 0 || ts > m->max_ts) m->max_ts = ts;
        if (Kl_codec_put(body, p->offset + acc, ts, r->has_nonce, r->nonce, r->data,
                         (uint32_t)r->len) != 0)
            return -1;
        acc++;
    }
    m->last_offset = p->offset + acc - 1;
    m->next_nonce = next_nonce;
    m->size = body->len;
    return (long)acc;
}

/* A body buffer sized for ins (encoding never grows it), from the pool of
 * large buffers (recycle.h): warm after the first appends. */
static int body_for(const kl_insertion *ins, size_t n, kl_buf *body)
{
    size_t need = 0;
    for (size_t i = 0; i < n; i++) need += ins[i].len + KL_RECORD_OVERHEAD;
    *body = (kl_buf){.data = Kl_recycle_get(need), .cap = need};
    return body->data ? 0 : -1;
}

/* SHA-256 of the records as an append gives them (what identifies a
 * retry): every field, lengths first, so no two lists collide by framing. */
static int digest(const kl_insertion *ins, size_t n, unsigned char out[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char h[8 + 8 + 2 + 16];
        uint64_t len = ins[i].len;
        int64_t ts = ins[i].has_timestamp ? ins[i].timestamp : 0;
        kl_u128 nonce = ins[i].has_nonce ? ins[i].nonce : 0;
        memcpy(h, &len, 8);
        memcpy(h + 8, &ts, 8);
        h[16] = (unsigned char)!!ins[i].has_timestamp;
        h[17] = (unsigned char)!!ins[i].has_nonce;
        memcpy(h + 18, &nonce, 16);
        ok = EVP_DigestUpdate(c, h, sizeof h) && (!len || EVP_DigestUpdate(c, ins[i].data, len));
    }
    unsigned int olen = 0;
    ok = ok && EVP_DigestFinal_ex(c, out, &olen) && olen == 32;
    EVP_MD_CTX_free(c);
    return ok ? 0 : -1;
}

/* Without fencing (a store that cannot claim, or fencing=off): one PUT,
 * after a LIST that checks nobody wrote at or past our next offset (a
 * second writer is then noticed, though a race inside that window is
 * not).  The watermark is compaction's business, stored lazily as under
 * fencing (compact.c), so an object costs these two requests.  *sent: the
 * PUT went out. */
static kl_status put_unfenced(kl_objstore *os, const char *dir, kl_keystate *s,
                              const kl_object_meta *m, const kl_buf *body, int *raced, int *sent,
                              kl_error *err)
{
    kl_object_meta *v = NULL;
    size_t nv = 0;
    kl_status st = Kl_index_list(os, dir, s->next_offset, 1, &v, &nv, NULL, err);
    free(v);
    if (st) return st;
    if ((*raced = nv != 0)) return KL_OK;
    char *name = Kl_index_name(dir, m);
    *sent = name != NULL;
    st = name ? kl_os_put(os, name, body->data, body->len, 0, err) : oom(err);
    free(name);
    if (st) return st;
    s->next_offset = m->last_offset + 1;
    s->next_nonce = m->next_nonce;
    s->last_first = m->first_offset;
    return Kl_keystate_add_pending(s, m) != 0 ? oom(err) : KL_OK;
}

/* Puts ins[0, n) at the tail as one object, losing slots to other
 * writers as often as it must.  *published: m holds the object.  *sent
 * and *at: on an error, whether the last try's object may have landed,
 * and where it was encoded. */
static kl_status put_object(kl_objstore *os, const kl_store_config *cfg, int fenced,
                            const char *dir, kl_keystate *s, const kl_insertion *ins, size_t n,
                            kl_object_meta *m, int *published, int *sent, encode_pos *at,
                            kl_error *err)
{
    kl_buf body;
    if (body_for(ins, n, &body) != 0)
        return kl_seterr(err, KL_ENOMEM, "out of memory encoding %zu records", n);
    kl_status st = KL_OK;
    int done = 0;
    *published = *sent = 0;
    for (int lost = 0; !done && st == KL_OK; lost++) {
        /* Encoded afresh each round: the nonce filter and offsets must
         * follow the tail as it is now. */
        *at = pos_of(s);
        long acc = encode_at(at, ins, n, &body, m);
        if (acc < 0) {
            st = kl_seterr(err, KL_ENOMEM, "out of memory encoding %zu records", n);
        } else if (acc == 0 && s->n_chain) {
            /* Duplicates of the links' nonces: only once they are in. */
            st = Kl_tail_settle(os, cfg, dir, s, err);
        } else if (acc == 0) {
            break; /* every record was a duplicate */
        } else if (lost == MAX_LOST) {
            st = kl_seterr(err, KL_EIO,
                           "gave up appending to '%s': other writers took the "
                           "key's next slot %d times in a row",
                           dir, MAX_LOST);
        } else if (fenced) {
            st = Kl_tail_publish(os, cfg, dir, s, m, body.data, body.len, &done, sent, err);
            /* A slot lost while chasing the tail (s->n_chain: a link
             * taken, two requests) is not a round lost. */
            if (!st && !done && s->n_chain) lost--;
        } else {
            int raced = 0;
            st = put_unfenced(os, dir, s, m, &body, &raced, sent, err);
            done = st == KL_OK && !raced;
            if (raced) { /* reload and rerun the nonce filter */
                st = Kl_tail_reload(os, cfg, dir, 0, s, err);
                if (st == KL_OK && lost >= 2)
                    st = kl_seterr(err, KL_EIO,
                                   "another writer keeps appending to '%s', and "
                                   "this store cannot fence writers: one writer per key",
                                   dir);
            }
        }
    }
    Kl_recycle_put(body.data);
    *published = done;
    return st;
}

/* The start of a retry: if ins begins with the records of s's failed
 * attempt a, finds out whether they are in (publishing them if their
 * claim waits at the tail).  *skip: how many of ins are in. */
static kl_status resume(kl_objstore *os, const kl_store_config *cfg, int fenced, const char *dir,
                        kl_keystate *s, const kl_attempt *a, const kl_insertion *ins, size_t n,
                        size_t *skip, kl_object_meta *m, int *published, kl_error *err)
{
    unsigned char d[32];
    *skip = 0;
    *published = 0;
    if (n < a->n || digest(ins, a->n, d) != 0 || memcmp(d, a->digest, sizeof d) != 0) {
        kl_log(KL_LOG_WARNING,
               "'%s': an append failed earlier and this one does not repeat its records: "
               "they may or may not be in",
               dir);
        return KL_OK;
    }
    *skip = a->n_in;
    if (!a->has_object) return KL_OK;
    kl_buf body;
    if (body_for(ins + a->n_in, a->n - a->n_in, &body) != 0) return oom(err);
    encode_pos at = {a->at_offset, a->at_prior, a->at_nonce, a->now};
    long acc = encode_at(&at, ins + a->n_in, a->n - a->n_in, &body, m);
    kl_status st = acc < 0 ? oom(err) : KL_OK;
    int in = 0;
    if (acc > 0) st = Kl_tail_resume(os, cfg, dir, s, fenced, m, body.data, body.len, &in, err);
    Kl_recycle_put(body.data);
    if (st == KL_OK && in) {
        *skip = a->n;
        *published = 1;
    }
    return st;
}

/* Marks s stale after a failed append, with an attempt when some of
 * ins[0, n) may be in: the first `in` surely, the rest if `sent`. */
static void failed(kl_keystate *s, const kl_insertion *ins, size_t n, size_t in, int sent,
                   const encode_pos *at)
{
    s->stale = 1;
    s->epoch = 0; /* a merge planned on it must not apply (compact.h) */
    if (!in && !sent) return;
    kl_attempt *a = malloc(sizeof *a);
    if (a)
        *a = (kl_attempt){.n = n,
                          .n_in = in,
                          .has_object = sent,
                          .at_offset = at->offset,
                          .at_prior = at->prior,
                          .at_nonce = at->nonce,
                          .now = at->now};
    if (!a || digest(ins, n, a->digest) != 0) {
        free(a);
        kl_log(KL_LOG_WARNING, "out of memory: a retry of a failed append may repeat its records");
        return;
    }
    s->attempt = a;
}

kl_status Kl_append_records(kl_objstore *os, const kl_store_config *cfg, int fenced,
                            const char *dir, kl_keystate *s, const kl_insertion *ins, size_t n,
                            kl_object_meta out[2], size_t *n_out, size_t *n_before, kl_error *err)
{
    size_t skip = 0;
    int published = 0, sent = 0;
    *n_out = *n_before = 0;
    kl_attempt *a = s->attempt;
    s->attempt = NULL;
    kl_status st = KL_OK;
    if (a) {
        st = resume(os, cfg, fenced, dir, s, a, ins, n, &skip, &out[0], &published, err);
        if (st) { /* still undecided: keep it for the next retry */
            s->stale = 1;
            s->epoch = 0;
            s->attempt = a;
            return st;
        }
        *n_before = skip < a->n_in ? skip : a->n_in;
        free(a);
        *n_out += published;
    }
    if (skip == n) return KL_OK;
    encode_pos at = {0};
    st = put_object(os, cfg, fenced, dir, s, ins + skip, n - skip, &out[*n_out], &published, &sent,
                    &at, err);
    *n_out += published;
    /* Published yet failed (a reload after it): all of ins is in. */
    if (st) failed(s, ins, n, published ? n : skip, published ? 0 : sent, &at);
    return st;
}
