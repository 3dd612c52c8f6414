/* append.c -- one store-writer append (append.h): the records as data
 * objects at the tail (their bodies: objbody.c), put there through
 * claimed slots, pipelined, or unfenced, and resuming an earlier append
 * to the key whose outcome was unknown, so that a retry never writes its
 * records twice (what a failed append leaves for that, and what the
 * observer hears as it goes: progress.c). */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "append.h"
#include "clock.h"
#include "keyindex.h"
#include "layout.h"
#include "objbody.h"
#include "progress.h"
#include "tail.h"

/* Slots an append may lose to other writers before it gives up: with k
 * writers racing evenly, losing 200 in a row has odds of ((k-1)/k)^200. */
#define MAX_LOST 200

static kl_status oom(kl_error *err) { return kl_seterr(err, KL_ENOMEM, "out of memory"); }

static kl_encode_pos pos_of(const kl_keystate *s)
{
    return (kl_encode_pos){s->next_offset, s->last_first, s->next_nonce, kl_now_ms()};
}

static void maybe_in(kl_progress *p, size_t from, size_t n, const kl_encode_pos *at)
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
                              const kl_object_meta *m, const kl_body *body, int *raced, int *sent,
                              kl_error *err)
{
    /* kl_os_put takes one buffer: put_object encodes a copy then. */
    if (body->n != 1) return kl_seterr(err, KL_EINVAL, "an unfenced object body in pieces");
    kl_object_meta *v = NULL;
    size_t nv = 0;
    kl_status st = Kl_index_list(os, dir, s->next_offset, 1, &v, &nv, NULL, err);
    free(v);
    if (st) return st;
    if ((*raced = nv != 0)) return KL_OK;
    char *name = Kl_index_name(dir, m);
    *sent = name != NULL;
    st = name ? kl_os_put(os, name, body->v[0].iov_base, body->len, 0, err) : oom(err);
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
                            kl_object_meta *m, int *published, int *sent, kl_encode_pos *at,
                            kl_progress *p, kl_error *err)
{
    kl_objbody body = {0};
    kl_status st = KL_OK;
    int done = 0;
    *published = *sent = 0;
    for (int lost = 0; !done && st == KL_OK; lost++) {
        /* Encoded afresh each round: the nonce filter and offsets must
         * follow the tail as it is now. */
        *at = pos_of(s);
        /* kl_os_put takes one buffer: without fencing, a copy. */
        long acc = Kl_objbody_encode(at, ins, n, fenced && p->framed, &body, m, &p->copied);
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
            Kl_progress_encoded(p, m);
            st = Kl_tail_publish(os, cfg, dir, s, m, &body.b, &done, sent, err);
            /* A slot lost while chasing the tail (s->n_chain: a link
             * taken, two requests) is not a round lost. */
            if (!st && !done) Kl_progress_dropped(p, m);
            if (!st && !done && s->n_chain) lost--;
        } else {
            int raced = 0;
            Kl_progress_encoded(p, m);
            st = put_unfenced(os, dir, s, m, &body.b, &raced, sent, err);
            done = st == KL_OK && !raced;
            if (raced) { /* reload and rerun the nonce filter */
                Kl_progress_dropped(p, m);
                st = Kl_tail_reload(os, cfg, dir, 0, s, err);
                if (st == KL_OK && lost >= 2)
                    st = kl_seterr(err, KL_EIO,
                                   "another writer keeps appending to '%s', and "
                                   "this store cannot fence writers: one writer per key",
                                   dir);
            }
        }
    }
    Kl_objbody_free(&body);
    *published = done;
    return st;
}

/* The start of a retry: if ins begins with the records of s's failed
 * attempt a, finds out which of its objects are in (publishing those
 * whose claims wait at the tail); p->in: how many of ins are in. */
static kl_status resume(kl_objstore *os, const kl_store_config *cfg, int fenced, const char *dir,
                        kl_keystate *s, const kl_attempt *a, const kl_insertion *ins, size_t n,
                        kl_progress *p, kl_error *err)
{
    if (!Kl_attempt_repeated(a, ins, n)) {
        kl_log(KL_LOG_WARNING,
               "'%s': an append failed earlier and this one does not repeat its records: "
               "they may or may not be in",
               dir);
        return KL_OK;
    }
    p->in = a->n_in;
    Kl_progress_in_again(p, a);
    kl_status st = KL_OK;
    for (size_t j = 0; j < a->n_objs && !st && a->obj[j].from == p->in; j++) {
        const kl_attempt_obj *o = &a->obj[j];
        kl_objbody body = {0};
        kl_object_meta m;
        kl_encode_pos at = {o->at_offset, o->at_prior, o->at_nonce, o->now};
        long acc =
            Kl_objbody_encode(&at, ins + o->from, o->n, fenced && p->framed, &body, &m, &p->copied);
        int in = 0;
        st = acc < 0 ? oom(err) : KL_OK;
        if (acc > 0) {
            Kl_progress_encoded(p, &m);
            st = Kl_tail_resume(os, cfg, dir, s, fenced, &m, &body.b, &in, err);
        }
        Kl_objbody_free(&body);
        if (!st && !in && acc > 0) Kl_progress_dropped(p, &m);
        if (st || !in) break; /* an object not in: nor are those after it */
        Kl_progress_in(p, o->from + o->n, &m);
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
    kl_encode_pos at;
    kl_object_meta m;
    kl_objbody body;
    char *claim, *name, *tag;
} slice;

static void slice_free(slice *c)
{
    Kl_objbody_free(&c->body);
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
    j->st = kl_os_publish(j->os, c->claim, c->name, c->tag, &c->body.b, &j->err);
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
                         kl_progress *p, kl_error *err)
{
    kl_object_meta m;
    int published = 0, sent = 0;
    kl_encode_pos at = {0};
    kl_status st = put_object(os, cfg, fenced, dir, s, ins + from, to - from, &m, &published, &sent,
                              &at, p, err);
    if (published || st == KL_OK) /* published (even if a reload after failed), or duplicates */
        Kl_progress_in(p, to, published ? &m : NULL);
    else if (sent)
        maybe_in(p, from, to - from, &at);
    return st;
}

/* Takes the outcome of publishing j's object: s moves past it, or it is
 * in doubt. */
static kl_status published_job(kl_keystate *s, const publish_job *j, kl_progress *p, kl_error *err)
{
    const slice *c = j->c;
    kl_status st = j->st;
    if (st) {
        if (err) *err = j->err;
        maybe_in(p, c->from, c->n, &c->at);
    } else if ((st = Kl_tail_advance(s, &c->m, err)) == KL_OK) {
        Kl_progress_in(p, c->from + c->n, &c->m);
    } else {
        maybe_in(p, c->from, c->n, &c->at); /* in, but not reported: found by a retry */
    }
    return st;
}

/* Publishes the claimed object *pend, if any, alone; s moves past it. */
static kl_status publish_pending(kl_objstore *os, kl_keystate *s, slice *pend, int *have_pend,
                                 kl_progress *p, kl_error *err)
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
                             const size_t *cuts, size_t n_cuts, kl_progress *p, kl_error *err)
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
        cur.at = have_pend ? (kl_encode_pos){pend.m.last_offset + 1, pend.m.first_offset,
                                             pend.m.next_nonce, kl_now_ms()}
                           : pos_of(s);
        long acc = Kl_objbody_encode(&cur.at, ins + from, to - from, p->framed, &cur.body, &cur.m,
                                     &p->copied);
        if (acc < 0) {
            /* pend is claimed: publish it, or leave it in doubt for a
             * retry, as every other way out of the loop does. */
            if (!(st = publish_pending(os, s, &pend, &have_pend, p, err))) st = oom(err);
            break;
        }
        if (acc > 0) Kl_progress_encoded(p, &cur.m);
        if (acc == 0) { /* all duplicates: nothing to claim */
            slice_free(&cur);
            if ((st = publish_pending(os, s, &pend, &have_pend, p, err))) break;
            Kl_progress_in(p, to, NULL);
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
        kl_status cst =
            Kl_tail_claim_ahead(os, dir, &cur.m, &cur.body.b, &won, &sent, &cur.tag, &cerr);
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
            st = Kl_tail_place_claimed(os, cfg, dir, s, &cur.m, &cur.body.b, cur.tag, &in, &maybe,
                                       err);
            if (st) {
                if (maybe) maybe_in(p, cur.from, cur.n, &cur.at);
                break;
            }
            if (in) Kl_progress_in(p, to, &cur.m);
            won = in; /* not in: its slot was taken, the claim removed */
            if (in) {
                slice_free(&cur);
                from = to;
                continue;
            }
        }
        if (!won) { /* another writer's slot: the full protocol places it */
            Kl_progress_dropped(p, &cur.m);
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

kl_status Kl_append_records(kl_objstore *os, const kl_store_config *cfg, int fenced,
                            const char *dir, kl_keystate *s, const kl_insertion *ins, size_t n,
                            int framed, const size_t *cuts, size_t n_cuts, kl_published_fn fn,
                            void *ctx, size_t *n_before, size_t *n_copied, kl_error *err)
{
    kl_progress p = {.fn = fn, .ctx = ctx, .framed = framed};
    *n_before = 0;
    kl_attempt *a = s->attempt;
    s->attempt = NULL;
    kl_status st = KL_OK;
    if (a) {
        if ((st = resume(os, cfg, fenced, dir, s, a, ins, n, &p, err))) {
            Kl_attempt_keep(s, a, &p); /* still undecided: for the next retry */
            *n_copied = p.copied;
            return st;
        }
        *n_before = p.in < a->n_in ? p.in : a->n_in;
        Kl_attempt_free(a);
    }
    st = put_objects(os, cfg, fenced, dir, s, ins, n, cuts, n_cuts, &p, err);
    if (st) Kl_attempt_leave(s, ins, n, &p);
    free(p.in_objs);
    *n_copied = p.copied;
    return st;
}
