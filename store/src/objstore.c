/* objstore.c -- the object-store seam: thin dispatch through the ops table
 * so callers read `kl_os_get(os, ...)` and any implementation (local
 * directory, S3, a test double) plugs in unchanged.
 *
 * Because every request of the library passes here, this is also where
 * requests are counted (kl_os_stats_read): one place, whatever the store,
 * and no store implementation has to remember to do it.  Counters are
 * relaxed atomics -- a few nanoseconds next to a request -- allocated at
 * the first request, so stores made by anyone (test doubles, third-party
 * ops tables) only need counters_ to start NULL. */
#include <stdatomic.h>
#include <stdlib.h>

#include "clock.h"
#include "klstore.h"

_Static_assert(KL_ENOSPC + 1 == KL_STATUS_COUNT, "KL_STATUS_COUNT must follow kl_status");

struct kl_os_counters {
    _Atomic uint64_t calls[KL_OP_COUNT];
    _Atomic uint64_t failed[KL_OP_COUNT][KL_STATUS_COUNT];
    _Atomic uint64_t ns[KL_OP_COUNT];
    _Atomic uint64_t bytes_put, bytes_got;
};

/* NULL only when out of memory: then nothing is counted, nothing fails. */
static struct kl_os_counters *counters(kl_objstore *os)
{
    struct kl_os_counters *c = __atomic_load_n(&os->counters_, __ATOMIC_ACQUIRE);
    if (c) return c;
    struct kl_os_counters *fresh = calloc(1, sizeof *fresh);
    if (!fresh) return NULL;
    if (__atomic_compare_exchange_n(&os->counters_, &c, fresh, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return fresh;
    free(fresh); /* another thread attached its block first */
    return c;
}

static kl_status count(kl_objstore *os, kl_os_op op, uint64_t n, uint64_t t0, kl_status st)
{
    struct kl_os_counters *c = counters(os);
    if (!c) return st;
    atomic_fetch_add_explicit(&c->calls[op], n, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->ns[op], Kl_mono_ns() - t0, memory_order_relaxed);
    if (st != KL_OK && (unsigned)st < KL_STATUS_COUNT)
        atomic_fetch_add_explicit(&c->failed[op][st], 1, memory_order_relaxed);
    return st;
}

static void add_bytes(kl_objstore *os, int got, uint64_t n)
{
    struct kl_os_counters *c = counters(os);
    if (c) atomic_fetch_add_explicit(got ? &c->bytes_got : &c->bytes_put, n, memory_order_relaxed);
}

kl_status kl_os_put(kl_objstore *os, const char *name, const void *data, size_t len, int flags,
                    kl_error *err)
{
    uint64_t t0 = Kl_mono_ns();
    kl_status st = os->ops->put(os, name, data, len, flags, err);
    if (st == KL_OK) add_bytes(os, 0, len);
    return count(os, KL_OP_PUT, 1, t0, st);
}

/* Stores without a batch op get the same guarantees from sequential puts:
 * each is durable before the next starts, so order holds too. */
kl_status kl_os_put_batch(kl_objstore *os, const kl_put_item *items, size_t n, kl_error *err)
{
    if (n == 0) return KL_OK;
    if (!os->ops->put_batch) {
        for (size_t i = 0; i < n; i++) {
            kl_status st =
                kl_os_put(os, items[i].name, items[i].data, items[i].len, items[i].flags, err);
            if (st) return st;
        }
        return KL_OK;
    }
    uint64_t t0 = Kl_mono_ns(), bytes = 0;
    kl_status st = os->ops->put_batch(os, items, n, err);
    for (size_t i = 0; st == KL_OK && i < n; i++) bytes += items[i].len;
    add_bytes(os, 0, bytes);
    return count(os, KL_OP_PUT, n, t0, st);
}

kl_status kl_os_get(kl_objstore *os, const char *name, uint64_t off, uint64_t len, uint8_t **data,
                    size_t *out_len, kl_error *err)
{
    uint64_t t0 = Kl_mono_ns();
    kl_status st = os->ops->get(os, name, off, len, data, out_len, err);
    if (st == KL_OK) add_bytes(os, 1, *out_len);
    return count(os, KL_OP_GET, 1, t0, st);
}

kl_status kl_os_head(kl_objstore *os, const char *name, uint64_t *size, kl_error *err)
{
    uint64_t t0 = Kl_mono_ns();
    return count(os, KL_OP_HEAD, 1, t0, os->ops->head(os, name, size, err));
}

kl_status kl_os_list(kl_objstore *os, const kl_list_req *req, kl_listing *out, kl_error *err)
{
    uint64_t t0 = Kl_mono_ns();
    return count(os, KL_OP_LIST, 1, t0, os->ops->list(os, req, out, err));
}

kl_status kl_os_del(kl_objstore *os, const char *const *names, size_t n, kl_error *err)
{
    if (!n) return KL_OK;
    uint64_t t0 = Kl_mono_ns();
    return count(os, KL_OP_DEL, 1, t0, os->ops->del(os, names, n, err));
}

void kl_os_destroy(kl_objstore *os)
{
    if (!os) return;
    free(os->counters_);
    os->ops->destroy(os);
}

void kl_listing_free(kl_listing *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n_objects; i++) free(l->objects[i].name);
    free(l->objects);
    kl_strv_free(l->prefixes, l->n_prefixes);
    free(l->next);
    *l = (kl_listing){0};
}

int kl_os_can_claim(const kl_objstore *os)
{
    return os->ops->claim && os->ops->claim_target && os->ops->publish && os->ops->unclaim;
}

kl_status kl_os_claim(kl_objstore *os, const char *claim, const char *object, const kl_body *body,
                      char **tag, kl_error *err)
{
    *tag = NULL;
    uint64_t t0 = Kl_mono_ns();
    kl_status st = os->ops->claim(os, claim, object, body, tag, err);
    if (st == KL_OK) add_bytes(os, 0, body->len);
    return count(os, KL_OP_CLAIM, 1, t0, st);
}

kl_status kl_os_claim_target(kl_objstore *os, const char *claim, char **object, char **tag,
                             kl_error *err)
{
    *object = *tag = NULL;
    uint64_t t0 = Kl_mono_ns();
    return count(os, KL_OP_CLAIM_TARGET, 1, t0, os->ops->claim_target(os, claim, object, tag, err));
}

kl_status kl_os_publish(kl_objstore *os, const char *claim, const char *object, const char *tag,
                        const kl_body *body, kl_error *err)
{
    uint64_t t0 = Kl_mono_ns();
    return count(os, KL_OP_PUBLISH, 1, t0, os->ops->publish(os, claim, object, tag, body, err));
}

kl_status kl_os_unclaim(kl_objstore *os, const char *const *claims, size_t n, kl_error *err)
{
    if (!n) return KL_OK;
    uint64_t t0 = Kl_mono_ns();
    return count(os, KL_OP_UNCLAIM, 1, t0, os->ops->unclaim(os, claims, n, err));
}

void kl_os_stats_read(kl_objstore *os, kl_os_stats *out)
{
    *out = (kl_os_stats){0};
    struct kl_os_counters *c = __atomic_load_n(&os->counters_, __ATOMIC_ACQUIRE);
    if (!c) return;
    for (int op = 0; op < KL_OP_COUNT; op++) {
        out->calls[op] = atomic_load_explicit(&c->calls[op], memory_order_relaxed);
        out->seconds[op] = atomic_load_explicit(&c->ns[op], memory_order_relaxed) / 1e9;
        for (int st = 0; st < KL_STATUS_COUNT; st++)
            out->failed[op][st] = atomic_load_explicit(&c->failed[op][st], memory_order_relaxed);
    }
    out->bytes_put = atomic_load_explicit(&c->bytes_put, memory_order_relaxed);
    out->bytes_got = atomic_load_explicit(&c->bytes_got, memory_order_relaxed);
}

const char *kl_os_op_name(kl_os_op op)
{
    static const char *const names[KL_OP_COUNT] = {
        [KL_OP_PUT] = "put",
        [KL_OP_GET] = "get",
        [KL_OP_HEAD] = "head",
        [KL_OP_LIST] = "list",
        [KL_OP_DEL] = "del",
        [KL_OP_CLAIM] = "claim",
        [KL_OP_CLAIM_TARGET] = "claim_target",
        [KL_OP_PUBLISH] = "publish",
        [KL_OP_UNCLAIM] = "unclaim",
    };
    return (unsigned)op < KL_OP_COUNT ? names[op] : "unknown";
}
