/* progress.c -- an append's progress and its failed attempt (progress.h).
 *
 * Why an attempt is matched by a digest of the records and encoded again
 * rather than kept: keeping the bodies would hold up to an object per
 * failing key for as long as the key fails (a store outage fails them
 * all); the records themselves are still held by the caller that
 * retries, and the encoding is deterministic given the tail and the time
 * the attempt records.  The objects a failed call published are kept by
 * name (a few dozen bytes each), so that its retry can name them to a
 * text view that added their lines again. */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"

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

static void note_in(kl_progress *p, const kl_object_meta *m)
{
    if (p->n_in_objs == p->cap_in_objs) {
        size_t cap = p->cap_in_objs ? 2 * p->cap_in_objs : 4;
        kl_object_meta *v = realloc(p->in_objs, cap * sizeof *v);
        if (!v) {
            p->in_objs_lost = 1;
            return;
        }
        p->in_objs = v;
        p->cap_in_objs = cap;
    }
    p->in_objs[p->n_in_objs++] = *m;
}

void Kl_progress_in(kl_progress *p, size_t to, const kl_object_meta *m)
{
    p->in = to;
    if (m) {
        note_in(p, m);
        p->fn(KL_OBJECT_PUBLISHED, m, p->ctx);
    }
}

void Kl_progress_encoded(kl_progress *p, const kl_object_meta *m)
{
    p->fn(KL_OBJECT_ENCODED, m, p->ctx);
}

void Kl_progress_dropped(kl_progress *p, const kl_object_meta *m)
{
    p->fn(KL_OBJECT_DROPPED, m, p->ctx);
}

/* Named again for those who hold this call's records, not that call's
 * (they were reported PUBLISHED then). */
void Kl_progress_in_again(kl_progress *p, const kl_attempt *a)
{
    if (a->in_objs_lost)
        kl_log(KL_LOG_WARNING, "out of memory: a text view may show a retried call's lines twice");
    for (size_t i = 0; i < a->n_in_objs && !a->in_objs_lost; i++) {
        note_in(p, &a->in_objs[i]);
        p->fn(KL_OBJECT_IN_AGAIN, &a->in_objs[i], p->ctx);
    }
    p->in_objs_lost |= a->in_objs_lost;
}

int Kl_attempt_repeated(const kl_attempt *a, const kl_insertion *ins, size_t n)
{
    unsigned char d[32];
    return n >= a->n && digest(ins, a->n, d) == 0 && memcmp(d, a->digest, sizeof d) == 0;
}

/* The attempt takes the progress's list of objects in. */
static void take_in_objs(kl_attempt *a, kl_progress *p)
{
    free(a->in_objs);
    a->in_objs = p->in_objs;
    a->n_in_objs = p->n_in_objs;
    a->in_objs_lost = p->in_objs_lost;
    p->in_objs = NULL;
    p->n_in_objs = p->cap_in_objs = 0;
}

void Kl_attempt_keep(kl_keystate *s, kl_attempt *a, kl_progress *p)
{
    size_t k = 0;
    for (size_t j = 0; j < a->n_objs; j++)
        if (a->obj[j].from >= p->in) a->obj[k++] = a->obj[j];
    a->n_objs = k;
    if (p->in > a->n_in) a->n_in = p->in;
    take_in_objs(a, p);
    Kl_keystate_mark_stale(s);
    s->attempt = a;
}

void Kl_attempt_leave(kl_keystate *s, const kl_insertion *ins, size_t n, kl_progress *p)
{
    Kl_keystate_mark_stale(s);
    if (!p->in && !p->n_unsure) return;
    kl_attempt *a = malloc(sizeof *a);
    if (a) {
        *a = (kl_attempt){.n = n, .n_in = p->in, .n_objs = p->n_unsure};
        memcpy(a->obj, p->unsure, sizeof a->obj);
        take_in_objs(a, p);
    }
    if (!a || digest(ins, n, a->digest) != 0) {
        Kl_attempt_free(a);
        kl_log(KL_LOG_WARNING, "out of memory: a retry of a failed append may repeat its records");
        return;
    }
    s->attempt = a;
}
