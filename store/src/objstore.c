/* objstore.c -- the object-store seam: thin dispatch through the ops table
 * so callers read `kl_os_get(os, ...)` and any implementation (local
 * directory, S3, a test double) plugs in unchanged. */
#include <stdlib.h>

#include "klstore.h"

kl_status kl_os_put(kl_objstore *os, const char *name, const void *data,
                    size_t len, int flags, kl_error *err) {
    return os->ops->put(os, name, data, len, flags, err);
}

/* Stores without a batch op get the same guarantees from sequential puts:
 * each is durable before the next starts, so order holds too. */
kl_status kl_os_put_batch(kl_objstore *os, const kl_put_item *items, size_t n,
                          kl_error *err) {
    if (n == 0) return KL_OK;
    if (os->ops->put_batch) return os->ops->put_batch(os, items, n, err);
    for (size_t i = 0; i < n; i++) {
        kl_status st = os->ops->put(os, items[i].name, items[i].data, items[i].len,
                                    items[i].flags, err);
        if (st) return st;
    }
    return KL_OK;
}

kl_status kl_os_get(kl_objstore *os, const char *name, uint64_t off,
                    uint64_t len, uint8_t **data, size_t *out_len, kl_error *err) {
    return os->ops->get(os, name, off, len, data, out_len, err);
}

kl_status kl_os_head(kl_objstore *os, const char *name, uint64_t *size,
                     kl_error *err) {
    return os->ops->head(os, name, size, err);
}

kl_status kl_os_list(kl_objstore *os, const kl_list_req *req, kl_listing *out,
                     kl_error *err) {
    return os->ops->list(os, req, out, err);
}

kl_status kl_os_del(kl_objstore *os, const char *const *names, size_t n,
                    kl_error *err) {
    return n ? os->ops->del(os, names, n, err) : KL_OK;
}

void kl_os_destroy(kl_objstore *os) {
    if (os) os->ops->destroy(os);
}

void kl_listing_free(kl_listing *l) {
    if (!l) return;
    for (size_t i = 0; i < l->n_objects; i++) free(l->objects[i].name);
    free(l->objects);
    kl_strv_free(l->prefixes, l->n_prefixes);
    free(l->next);
    *l = (kl_listing){0};
}

int kl_os_can_claim(const kl_objstore *os) {
    return os->ops->claim && os->ops->claim_target && os->ops->publish && os->ops->unclaim;
}

kl_status kl_os_claim(kl_objstore *os, const char *claim, const char *object,
                      const void *data, size_t len, char **tag, kl_error *err) {
    *tag = NULL;
    return os->ops->claim(os, claim, object, data, len, tag, err);
}

kl_status kl_os_claim_target(kl_objstore *os, const char *claim, char **object,
                             char **tag, kl_error *err) {
    *object = *tag = NULL;
    return os->ops->claim_target(os, claim, object, tag, err);
}

kl_status kl_os_publish(kl_objstore *os, const char *claim, const char *object,
                        const char *tag, const void *data, size_t len, kl_error *err) {
    return os->ops->publish(os, claim, object, tag, data, len, err);
}

kl_status kl_os_unclaim(kl_objstore *os, const char *const *claims, size_t n,
                        kl_error *err) {
    return n ? os->ops->unclaim(os, claims, n, err) : KL_OK;
}
