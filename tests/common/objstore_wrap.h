/* objstore_wrap.h -- an object store that delegates to another one but
 * hides the inner store's `map`, so a local directory behaves like a remote
 * store (every read a GET), which is how tests and benchmarks reach the
 * remote-only paths (readahead) without a network.  Its requests are
 * counted like any store's, by kl_os_stats_read (kl_wrap_total sums them).
 * Header-only: the tests and benchmarks each include it. */
#ifndef KL_OBJSTORE_WRAP_H
#define KL_OBJSTORE_WRAP_H
#include <stdlib.h>

#include "klstore.h"

typedef struct kl_wrap {
    kl_objstore base;
    kl_objstore *inner;
} kl_wrap;

#define KL_WRAP(os) ((kl_wrap *)(os))

static kl_status wrap_put(kl_objstore *os, const char *n, const void *d, size_t l, int f,
                          kl_error *e)
{
    return kl_os_put(KL_WRAP(os)->inner, n, d, l, f, e);
}
static kl_status wrap_get(kl_objstore *os, const char *n, uint64_t off, uint64_t len, uint8_t **d,
                          size_t *ol, kl_error *e)
{
    return kl_os_get(KL_WRAP(os)->inner, n, off, len, d, ol, e);
}
static kl_status wrap_head(kl_objstore *os, const char *n, uint64_t *s, kl_error *e)
{
    return kl_os_head(KL_WRAP(os)->inner, n, s, e);
}
static kl_status wrap_list(kl_objstore *os, const kl_list_req *r, kl_listing *o, kl_error *e)
{
    return kl_os_list(KL_WRAP(os)->inner, r, o, e);
}
static kl_status wrap_del(kl_objstore *os, const char *const *n, size_t c, kl_error *e)
{
    return kl_os_del(KL_WRAP(os)->inner, n, c, e);
}
/* Slot claims are forwarded when the inner store has them, so wrapped
 * writers fence as they would unwrapped: a claim is a PUT, claim_target a
 * HEAD, publish a server-side copy, unclaim a DELETE. */
static kl_status wrap_claim(kl_objstore *os, const char *c, const char *o, const kl_body *d,
                            char **t, kl_error *e)
{
    return kl_os_claim(KL_WRAP(os)->inner, c, o, d, t, e);
}
static kl_status wrap_target(kl_objstore *os, const char *c, char **o, char **t, kl_error *e)
{
    return kl_os_claim_target(KL_WRAP(os)->inner, c, o, t, e);
}
static kl_status wrap_publish(kl_objstore *os, const char *c, const char *o, const char *t,
                              const kl_body *d, kl_error *e)
{
    return kl_os_publish(KL_WRAP(os)->inner, c, o, t, d, e);
}
static kl_status wrap_unclaim(kl_objstore *os, const char *const *c, size_t n, kl_error *e)
{
    return kl_os_unclaim(KL_WRAP(os)->inner, c, n, e);
}
static const char *wrap_describe(kl_objstore *os)
{
    return KL_WRAP(os)->inner->ops->describe(KL_WRAP(os)->inner);
}
static void wrap_destroy(kl_objstore *os) { free(os); }

static const kl_objstore_ops kl_wrap_ops = {
    .put = wrap_put,
    .get = wrap_get,
    .head = wrap_head,
    .list = wrap_list,
    .del = wrap_del,
    .map = NULL,
    .describe = wrap_describe,
    .destroy = wrap_destroy,
};
static const kl_objstore_ops kl_wrap_claim_ops = {
    .put = wrap_put,
    .get = wrap_get,
    .head = wrap_head,
    .list = wrap_list,
    .del = wrap_del,
    .map = NULL,
    .describe = wrap_describe,
    .destroy = wrap_destroy,
    .claim = wrap_claim,
    .claim_target = wrap_target,
    .publish = wrap_publish,
    .unclaim = wrap_unclaim,
};

/* Wraps `inner` (borrowed: destroy the wrapper first). */
static inline kl_objstore *kl_wrap_new(kl_objstore *inner)
{
    kl_wrap *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->base.ops = kl_os_can_claim(inner) ? &kl_wrap_claim_ops : &kl_wrap_ops;
    w->inner = inner;
    return &w->base;
}

/* Requests made through the wrapper so far, of every kind. */
static inline unsigned long kl_wrap_total(kl_objstore *os)
{
    kl_os_stats st;
    kl_os_stats_read(os, &st);
    unsigned long n = 0;
    for (int op = 0; op < KL_OP_COUNT; op++) n += st.calls[op];
    return n;
}
#endif
