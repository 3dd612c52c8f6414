/* resume.c -- the retry of an append whose outcome was unknown (tail.h
 * Kl_tail_resume; FORMAT.md "A failed request is not retried twice
 * over"): finding the object a failed attempt may have left -- claimed
 * and unpublished, published by itself (the answer lost), or published by
 * a helper as a link -- instead of writing its records a second time.
 * Built on tail.c's checks and chains, which it calls one way. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "keyindex.h"
#include "layout.h"
#include "tail.h"

/* Whether the claim at m's slot holds exactly body (then *tag is its tag). */
static kl_status read_own_claim(kl_objstore *os, const char *claim, const char *name,
                                const kl_body *body, int *mine, char **tag, kl_error *err)
{
    char *other = NULL;
    *mine = 0;
    *tag = NULL;
    kl_status st = Kl_tail_read_claim(os, claim, name, body, mine, &other, tag, err);
    if (st == KL_ENOTFOUND || st == KL_EBADDATA) st = KL_OK; /* none, or not ours */
    free(other);
    if (!*mine) {
        free(*tag);
        *tag = NULL;
    }
    return st;
}

/* Takes the claims from s's tail up to `slot` as its chain (links), as a
 * writer that lost them would.  *gap: a slot on the way has no claim. */
static kl_status chain_to(kl_objstore *os, const char *dir, kl_keystate *s, uint64_t slot, int *gap,
                          kl_error *err)
{
    kl_status st = KL_OK;
    *gap = 0;
    while (!st && !*gap && s->next_offset < slot && s->n_chain < KL_CHAIN_MAX) {
        char *claim = Kl_layout_claim(dir, s->next_offset), *other = NULL, *tag = NULL;
        kl_object_meta om;
        if (!claim) return kl_seterr(err, KL_ENOMEM, "out of memory");
        st = kl_os_claim_target(os, claim, &other, &tag, err);
        if (st == KL_ENOTFOUND || st == KL_EBADDATA) {
            *gap = 1;
            st = KL_OK;
        } else if (st == KL_OK) {
            const char *base = strrchr(other, '/');
            st = kl_object_name_parse(base ? base + 1 : other, &om, err);
            if (st == KL_OK && om.first_offset != s->next_offset)
                *gap = 1;
            else if (st == KL_OK)
                st = Kl_tail_chain_add(s, &om, &claim, &other, &tag, err);
        }
        free(claim);
        free(other);
        free(tag);
    }
    return st;
}

kl_status Kl_tail_resume(kl_objstore *os, const kl_store_config *cfg, const char *dir,
                         kl_keystate *s, int fenced, const kl_object_meta *m, const kl_body *body,
                         int *in, kl_error *err)
{
    *in = 0;
    char *claim = fenced ? Kl_layout_claim(dir, m->first_offset) : NULL;
    char *name = Kl_index_name(dir, m), *tag = NULL;
    kl_status st = name && (claim || !fenced) ? KL_OK : kl_seterr(err, KL_ENOMEM, "out of memory");
    int round = 0, done = 0;
    for (; !st && !done && round < 8; round++) {
        int mine = 0, gap = 0;
        free(tag);
        tag = NULL;
        /* The claim first, then the load (the chain argument above): a
         * claim seen before a load that shows its slot unpublished was
         * that slot's first claim, and is still there. */
        if (fenced && (st = read_own_claim(os, claim, name, body, &mine, &tag, err))) break;
        if ((st = Kl_tail_reload(os, cfg, dir, 0, s, err))) break;
        if (s->next_offset > m->first_offset) { /* published: by whom, the bytes say */
            st = Kl_tail_holds_body(os, dir, m, body, in, err);
            done = 1;
        } else if (s->next_offset == m->first_offset) {
            done = 1; /* without our claim at the tail, it never landed */
            if (mine) {
                st = kl_os_publish(os, claim, name, tag, body, err);
                if (st == KL_ENOTFOUND) { /* published meanwhile: look again */
                    st = KL_OK;
                    done = 0;
                } else if (st == KL_OK && (st = Kl_tail_advance(s, m, err)) == KL_OK) {
                    *in = 1;
                }
            }
        } else if (fenced) {
            /* Others' claims lie between the tail and ours: publish them as
             * a loser would, then look again. */
            if (!(st = chain_to(os, dir, s, m->first_offset, &gap, err)) && !gap)
                st = Kl_tail_chain_settle(os, cfg, dir, s, err);
            Kl_links_free(s->chain, s->n_chain);
            s->chain = NULL;
            s->n_chain = 0;
        } else {
            done = 1; /* unfenced, the log never ends before our object */
        }
    }
    if (!st && !done)
        st = kl_seterr(err, KL_EIO,
                       "could not tell whether the failed append of records %" PRIu64 "-%" PRIu64
                       " to '%s' is in: the key keeps changing before it",
                       m->first_offset, m->last_offset, dir);
    free(claim);
    free(name);
    free(tag);
    return st;
}
