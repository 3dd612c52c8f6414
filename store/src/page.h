/* page.h -- building a kl_page: records plus one arena holding their
 * payloads, so a page is a single owner that kl_page_free releases and
 * stays valid after the objects it came from are evicted. */
#ifndef KL_PAGE_H
#define KL_PAGE_H
#include "buf.h"
#include "klstore.h"

typedef struct kl_pagebuf {
    kl_buf arena;
    kl_record *recs;
    size_t n, cap;
} kl_pagebuf;

/* Copies r (and its payload) into the page.  0, or -1 on ENOMEM. */
int kl_pagebuf_add(kl_pagebuf *pb, const kl_record *r);
/* Moves everything into *out; `continuation` (may be NULL) is copied. */
kl_status kl_pagebuf_finish(kl_pagebuf *pb, const char *keyspace, const char *key,
                            const char *continuation, kl_page *out, kl_error *err);
void kl_pagebuf_free(kl_pagebuf *pb);
#endif
