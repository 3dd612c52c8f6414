/* page.c -- assembling and freeing pages (see page.h).  Record arrays
 * come from the recycler (recycle.h): a reader paging through a key would
 * otherwise fault in a fresh array for every page. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "page.h"
#include "recycle.h"

/* What a kl_page's priv_ points to: the objects its records live in. */
typedef struct page_priv {
    kl_cobj **held;
    size_t nheld;
} page_priv;

static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < need) c *= 2;
    void *p = realloc(*v, c * elem);
    if (!p) return -1;
    *v = p;
    *cap = c;
    return 0;
}

/* grow() for the record array, which is recycled rather than realloc'd. */
static int grow_recs(kl_pagebuf *pb, size_t need)
{
    if (need <= pb->cap) return 0;
    size_t c = pb->cap ? pb->cap * 2 : 16;
    while (c < need) c *= 2;
    if (c > SIZE_MAX / sizeof *pb->recs) return -1;
    kl_record *r = Kl_recycle_get(c * sizeof *r);
    if (!r) return -1;
    if (pb->n) memcpy(r, pb->recs, pb->n * sizeof *r);
    Kl_recycle_put(pb->recs);
    pb->recs = r;
    pb->cap = c;
    return 0;
}

int Kl_pagebuf_reserve(kl_pagebuf *pb, size_t n) { return grow_recs(pb, n); }

kl_record *Kl_pagebuf_room(kl_pagebuf *pb, kl_cobj *o, size_t n)
{
    if (grow_recs(pb, pb->n + n) != 0) return NULL;
    if (pb->nheld == 0 || pb->held[pb->nheld - 1] != o) {
        if (grow((void **)&pb->held, &pb->capheld, pb->nheld + 1, sizeof *pb->held) != 0)
            return NULL;
        Kl_cobj_retain(o);
        pb->held[pb->nheld++] = o;
    }
    return pb->recs + pb->n;
}

kl_status Kl_pagebuf_finish(kl_pagebuf *pb, const char *keyspace, const char *key,
                            const char *continuation, kl_page *out, kl_error *err)
{
    *out = (kl_page){0};
    page_priv *priv = calloc(1, sizeof *priv);
    out->keyspace = strdup(keyspace);
    out->key = strdup(key);
    out->continuation = continuation ? strdup(continuation) : NULL;
    out->priv_ = priv;
    if (!priv || !out->keyspace || !out->key || (continuation && !out->continuation)) {
        kl_page_free(out);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    priv->held = pb->held;
    priv->nheld = pb->nheld;
    out->records = pb->recs;
    out->count = pb->n;
    *pb = (kl_pagebuf){0};
    return KL_OK;
}

void Kl_pagebuf_free(kl_pagebuf *pb)
{
    for (size_t i = 0; i < pb->nheld; i++) Kl_cobj_release(pb->held[i]);
    free(pb->held);
    Kl_recycle_put(pb->recs);
    *pb = (kl_pagebuf){0};
}

void kl_page_free(kl_page *page)
{
    if (!page) return;
    page_priv *priv = page->priv_;
    if (priv) {
        for (size_t i = 0; i < priv->nheld; i++) Kl_cobj_release(priv->held[i]);
        free(priv->held);
        free(priv);
    }
    free(page->keyspace);
    free(page->key);
    Kl_recycle_put(page->records);
    free(page->continuation);
    *page = (kl_page){0};
}
