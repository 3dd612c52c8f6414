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
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "append.h"
#include "buf.h"
#include "clock.h"
#include "codec.h"
#include "keyindex.h"
#include "layout.h"
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

/* What an append has done so far: records [0, in) are in the log (or
 * were dropped as duplicates); unsure[] are the objects right after them
 * that may have landed.  Each published object goes to fn. */
typedef struct progress {
    size_t in;
    size_t n_unsure;
    kl_attempt_obj unsure[2];
    kl_object_meta *in_objs; /* the objects holding [0, in), malloc'd */
    size_t n_in_objs, cap_in_objs;
    int in_objs_lost; /* out of memory: not all of them */
    kl_published_fn fn;
    void *ctx;
} progress;

static void note_in(progress *p, const kl_object_meta *m)
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

static void done_upto(progress *p, size_t to, const kl_object_meta *m)
{
    p->in = to;
    if (m) {
        note_in(p, m);
        p->fn(KL_OBJECT_PUBLISHED, m, p->ctx);
    }
}

/* The failed call's objects that hold the records this call repeats were
 * reported then; they are named again for those who hold this call's
 * records, not that call's (klstore.h KL_OBJECT_IN_AGAIN). */
static void in_again(progress *p, const kl_attempt *a)
{
    if (a->in_objs_lost)
        kl_log(KL_LOG_WARNING, "out of memory: a text view may show a retried call's lines twice");
    for (size_t i = 0; i < a->n_in_objs && !a->in_objs_lost; i++) {
        note_in(p, &a->in_objs[i]);
        p->fn(KL_OBJECT_IN_AGAIN, &a->in_objs[i], p->ctx);
    }
    p->in_objs_lost |= a->in_objs_lost;
}

/* Before any request that may publish m: from then on a listing may show
 * it before its report (klstore.h kl_publish_event). */
static void announce(progress *p, const kl_object_meta *m) { p->fn(KL_OBJECT_ENCODED, m, p->ctx); }

/* m will not be published: another writer's object took its slot. */
static void dropped(progress *p, const kl_object_meta *m) { p->fn(KL_OBJECT_DROPPED, m, p->ctx); }

static void maybe_in(progress *p, size_t from, size_t n, const encode_pos *at)
{
    if (p->n_unsure < 2)
        p->unsure[p->n_unsure++] =
            (kl_attempt_obj){from, n, at->offset, at->prior, at->nonce, at->now};
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
                            progress *p, kl_error *err)
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
            announce(p, m);
            st = Kl_tail_publish(os, cfg, dir, s, m, body.data, body.len, &done, sent, err);
            /* A slot lost while chasing the tail (s->n_chain: a link
             * taken, two requests) is not a round lost. */
            if (!st && !done) dropped(p, m);
            if (!st && !done && s->n_chain) lost--;
        } else {
            int raced = 0;
            announce(p, m);
            st = put_unfenced(os, dir, s, m, &body, &raced, sent, err);
            done = st == KL_OK && !raced;
            if (raced) { /* reload and rerun the nonce filter */
                dropped(p, m);
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
 * attempt a, finds out which of its objects are in (publishing those
 * whose claims wait at the tail); p->in: how many of ins are in. */
static kl_status resume(kl_objstore *os, const kl_store_config *cfg, int fenced, const char *dir,
                        kl_keystate *s, const kl_attempt *a, const kl_insertion *ins, size_t n,
                        progress *p, kl_error *err)
{
    unsigned char d[32];
    if (n < a->n || digest(ins, a->n, d) != 0 || memcmp(d, a->digest, sizeof d) != 0) {
        kl_log(KL_LOG_WARNING,
               "'%s': an append failed earlier and this one does not repeat its records: "
               "they may or may not be in",
               dir);
        return KL_OK;
    }
    p->in = a->n_in;
    in_again(p, a);
    kl_status st = KL_OK;
    for (size_t j = 0; j < a->n_objs && !st && a->obj[j].from == p->in; j++) {
        const kl_attempt_obj *o = &a->obj[j];
        kl_buf body;
        kl_object_meta m;
        if (body_for(ins + o->from, o->n, &body) != 0) return oom(err);
        encode_pos at = {o->at_offset, o->at_prior, o->at_nonce, o->now};
        long acc = encode_at(&at, ins + o->from, o->n, &body, &m);
        int in = 0;
        st = acc < 0 ? oom(err) : KL_OK;
        if (acc > 0) {
            announce(p, &m);
            st = Kl_tail_resume(os, cfg, dir, s, fenced, &m, body.data, body.len, &in, err);
        }
        Kl_recycle_put(body.data);
        if (!st && !in && acc > 0) dropped(p, &m);
        if (st || !in) break; /* an object not in: nor are those after it */
        done_upto(p, o->from + o->n, &m);
    }
    return st;
}

/* ---- pipelined objects --------------------------------------------------
 *
 * An append of several objects to one key (the batching writer's full
 * batches) claims each object's slot while the object before it is being
 * published: per object the time of the slower request, not of both.
 * Safe as FORMAT.md "Pipelined appends" says: the claim of object i+1
 * starts right where object i ends, i is claimed (so nobody publishes at
 * or past its slot before i is published), and i+1 is published only
 * after i.  Anything unusual (a claim lost, a view not fresh, a chain)
 * goes through the full protocol, one object at a time. */

/* One object of the append: insertions [from, from + n), encoded, and its
 * claim once won. */
typedef struct slice {
    size_t from, n;
    encode_pos at;
    kl_object_meta m;
    kl_buf body;
    char *claim, *name, *tag;
} slice;

static void slice_free(slice *c)
{
    Kl_recycle_put(c->body.data);
    free(c->claim);
    free(c->name);
    free(c->tag);
    *c = (slice){0};
}

typedef struct publish_job {
    kl_objstore *os;
    const slice *c;
    kl_status st;
    kl_error err;
} publish_job;

static void *publish_run(void *arg)
{
    publish_job *j = arg;
    const slice *c = j->c;
    j->st = kl_os_publish(j->os, c->claim, c->name, c->tag, c->body.data, c->body.len, &j->err);
    if (j->st == KL_ENOTFOUND) j->st = KL_OK; /* a helper published it, then it was unclaimed */
    return NULL;
}

/* Where object `from` ends: the next cut (cuts: object sizes in records;
 * none = one object). */
static size_t cut_after(const size_t *cuts, size_t n_cuts, size_t n, size_t from)
{
    size_t end = 0;
    for (size_t i = 0; i < n_cuts; i++)
        if ((end += cuts[i]) > from) return end < n ? end : n;
    return n;
}

/* The object before `from` (through the full protocol, not pipelined). */
static kl_status put_one(kl_objstore *os, const kl_store_config *cfg, int fenced, const char *dir,
                         kl_keystate *s, const kl_insertion *ins, size_t from, size_t to,
                         progress *p, kl_error *err)
{
    kl_object_meta m;
    int published = 0, sent = 0;
    encode_pos at = {0};
    kl_status st = put_object(os, cfg, fenced, dir, s, ins + from, to - from, &m, &published, &sent,
                              &at, p, err);
    if (published || st == KL_OK) /* published (even if a reload after failed), or duplicates */
        done_upto(p, to, published ? &m : NULL);
    else if (sent)
        maybe_in(p, from, to - from, &at);
    return st;
}

/* Takes the outcome of publishing j's object: s moves past it, or it is
 * in doubt. */
static kl_status published_job(kl_keystate *s, const publish_job *j, progress *p, kl_error *err)
{
    const slice *c = j->c;
    kl_status st = j->st;
    if (st) {
        if (err) *err = j->err;
        maybe_in(p, c->from, c->n, &c->at);
    } else if ((st = Kl_tail_advance(s, &c->m, err)) == KL_OK) {
        done_upto(p, c->from + c->n, &c->m);
    } else {
        maybe_in(p, c->from, c->n, &c->at); /* in, but not reported: found by a retry */
    }
    return st;
}

/* Publishes the claimed object *pend, if any, alone; s moves past it. */
static kl_status publish_pending(kl_objstore *os, kl_keystate *s, slice *pend, int *have_pend,
                                 progress *p, kl_error *err)
{
    kl_status st = KL_OK;
    if (*have_pend) {
        publish_job j = {os, pend, KL_OK, {0}};
        publish_run(&j);
        st = published_job(s, &j, p, err);
    }
    slice_free(pend);
    *have_pend = 0;
    return st;
}

static kl_status put_objects(kl_objstore *os, const kl_store_config *cfg, int fenced,
                             const char *dir, kl_keystate *s, const kl_insertion *ins, size_t n,
                             const size_t *cuts, size_t n_cuts, progress *p, kl_error *err)
{
    slice cur = {0}, pend = {0}; /* pend: claimed, to publish */
    int have_pend = 0;
    kl_status st = KL_OK;
    for (size_t from = p->in; !st && from < n;) {
        size_t to = cut_after(cuts, n_cuts, n, from);
        int ahead = fenced && Kl_tail_fresh(cfg, s) && (have_pend || to < n);
        if (!ahead) { /* one at a time, the full protocol */
            if ((st = publish_pending(os, s, &pend, &have_pend, p, err))) break;
            st = put_one(os, cfg, fenced, dir, s, ins, from, to, p, err);
            from = to;
            continue;
        }
        cur = (slice){.from = from, .n = to - from};
        cur.at = have_pend ? (encode_pos){pend.m.last_offset + 1, pend.m.first_offset,
                                          pend.m.next_nonce, kl_now_ms()}
                           : pos_of(s);
        long acc = body_for(ins + from, to - from, &cur.body) == 0
                       ? encode_at(&cur.at, ins + from, to - from, &cur.body, &cur.m)
                       : -1;
        if (acc < 0) {
            st = oom(err);
            break;
        }
        if (acc > 0) announce(p, &cur.m);
        if (acc == 0) { /* all duplicates: nothing to claim */
            slice_free(&cur);
            if ((st = publish_pending(os, s, &pend, &have_pend, p, err))) break;
            done_upto(p, to, NULL);
            from = to;
            continue;
        }
        /* Claim cur while pend is published. */
        uint64_t began = Kl_boot_ns();
        publish_job j = {os, &pend, KL_OK, {0}};
        pthread_t t;
        int threaded = have_pend && pthread_create(&t, NULL, publish_run, &j) == 0;
        if (have_pend && !threaded) publish_run(&j); /* no thread: one after the other */
        int won = 0, sent = 0;
        kl_error cerr = {0};
        kl_status cst = Kl_tail_claim_ahead(os, dir, &cur.m, cur.body.data, cur.body.len, &won,
                                            &sent, &cur.tag, &cerr);
        /* Skipping the tail check needs the claim's answer within a sixth
         * of the hold of the view (FORMAT.md "Skipping the check"). */
        int late = !Kl_tail_fresh(cfg, s);
        if (threaded) pthread_join(t, NULL);
        if (have_pend) {
            st = published_job(s, &j, p, err);
            slice_free(&pend);
            have_pend = 0;
        }
        if (!st && cst) {
            st = cst;
            if (err) *err = cerr;
        }
        if (st) {
            if (sent) maybe_in(p, cur.from, cur.n, &cur.at);
            break;
        }
        if (won && late) { /* check the tail, as after any claim */
            int in = 0, maybe = 1;
            st = Kl_tail_place_claimed(os, cfg, dir, s, &cur.m, cur.body.data, cur.body.len,
                                       cur.tag, &in, &maybe, err);
            if (st) {
                if (maybe) maybe_in(p, cur.from, cur.n, &cur.at);
                break;
            }
            if (in) done_upto(p, to, &cur.m);
            won = in; /* not in: its slot was taken, the claim removed */
            if (in) {
                slice_free(&cur);
                from = to;
                continue;
            }
        }
        if (!won) { /* another writer's slot: the full protocol places it */
            dropped(p, &cur.m);
            slice_free(&cur);
            st = put_one(os, cfg, fenced, dir, s, ins, from, to, p, err);
            from = to;
            continue;
        }
        s->view_ns = began;
        cur.claim = Kl_layout_claim(dir, cur.m.first_offset);
        cur.name = Kl_index_name(dir, &cur.m);
        if (!cur.claim || !cur.name) {
            st = oom(err);
            maybe_in(p, cur.from, cur.n, &cur.at);
            break;
        }
        pend = cur;
        cur = (slice){0};
        have_pend = 1;
        from = to;
    }
    if (!st) st = publish_pending(os, s, &pend, &have_pend, p, err);
    slice_free(&pend);
    slice_free(&cur);
    return st;
}

/* Marks s stale after a failed append, with an attempt when some of
 * ins[0, n) may be in (p). */
/* The attempt takes the progress's list of objects in. */
static void keep_in_objs(kl_attempt *a, progress *p)
{
    free(a->in_objs);
    a->in_objs = p->in_objs;
    a->n_in_objs = p->n_in_objs;
    a->in_objs_lost = p->in_objs_lost;
    p->in_objs = NULL;
    p->n_in_objs = p->cap_in_objs = 0;
}

static void failed(kl_keystate *s, const kl_insertion *ins, size_t n, progress *p)
{
    Kl_keystate_mark_stale(s);
    if (!p->in && !p->n_unsure) return;
    kl_attempt *a = malloc(sizeof *a);
    if (a) {
        *a = (kl_attempt){.n = n, .n_in = p->in, .n_objs = p->n_unsure};
        memcpy(a->obj, p->unsure, sizeof a->obj);
        keep_in_objs(a, p);
    }
    if (!a || digest(ins, n, a->digest) != 0) {
        Kl_attempt_free(a);
        kl_log(KL_LOG_WARNING, "out of memory: a retry of a failed append may repeat its records");
        return;
    }
    s->attempt = a;
}

kl_status Kl_append_records(kl_objstore *os, const kl_store_config *cfg, int fenced,
                            const char *dir, kl_keystate *s, const kl_insertion *ins, size_t n,
                            const size_t *cuts, size_t n_cuts, kl_published_fn fn, void *ctx,
                            size_t *n_before, kl_error *err)
{
    progress p = {.fn = fn, .ctx = ctx};
    *n_before = 0;
    kl_attempt *a = s->attempt;
    s->attempt = NULL;
    kl_status st = KL_OK;
    if (a) {
        if ((st = resume(os, cfg, fenced, dir, s, a, ins, n, &p, err))) {
            /* Still undecided: kept for the next retry, without the
             * objects found in (reported already). */
            size_t k = 0;
            for (size_t j = 0; j < a->n_objs; j++)
                if (a->obj[j].from >= p.in) a->obj[k++] = a->obj[j];
            a->n_objs = k;
            if (p.in > a->n_in) a->n_in = p.in;
            keep_in_objs(a, &p);
            Kl_keystate_mark_stale(s);
            s->attempt = a;
            return st;
        }
        *n_before = p.in < a->n_in ? p.in : a->n_in;
        Kl_attempt_free(a);
    }
    st = put_objects(os, cfg, fenced, dir, s, ins, n, cuts, n_cuts, &p, err);
    if (st) failed(s, ins, n, &p);
    free(p.in_objs);
    return st;
}
