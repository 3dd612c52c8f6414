/* page.h -- building a kl_page without copying payloads: records point
 * into the decoded objects they came from, and the page holds a reference
 * to each of those objects until kl_page_free. */
#ifndef KL_PAGE_H
#define KL_PAGE_H
#include "klstore.h"
#include "objcache.h"

typedef struct kl_pagebuf {
    kl_record *recs;
    size_t n, cap;
    kl_cobj **held;
    size_t nheld, capheld;
} kl_pagebuf;

/* Adds record r, which points into object o (held by the page from now
 * on).  0, or -1 on ENOMEM. */
int kl_pagebuf_add(kl_pagebuf *pb, kl_cobj *o, const kl_record *r);
/* Makes room for n records up front (a page knows its limit). */
int kl_pagebuf_reserve(kl_pagebuf *pb, size_t n);
/* Moves everything into *out; `continuation` (may be NULL) is copied. */
kl_status kl_pagebuf_finish(kl_pagebuf *pb, const char *keyspace, const char *key,
                            const char *continuation, kl_page *out, kl_error *err);
void kl_pagebuf_free(kl_pagebuf *pb);
#endif
