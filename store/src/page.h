/* page.h -- building a kl_page without copying payloads: records point
 * into the bodies of the objects they came from, and the page holds a
 * reference to each of those objects until kl_page_free. */
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

/* Room for n more records pointing into object o (held by the page from
 * now on), filled in place by the caller, who then adds n to pb->n: one
 * call per object, not per record.  NULL on ENOMEM. */
kl_record *Kl_pagebuf_room(kl_pagebuf *pb, kl_cobj *o, size_t n);
/* Makes room for n records up front (a page knows its limit). */
int Kl_pagebuf_reserve(kl_pagebuf *pb, size_t n);
/* Moves everything into *out; `continuation` (may be NULL) is copied. */
kl_status Kl_pagebuf_finish(kl_pagebuf *pb, const char *keyspace, const char *key,
                            const char *continuation, kl_page *out, kl_error *err);
void Kl_pagebuf_free(kl_pagebuf *pb);
#endif
