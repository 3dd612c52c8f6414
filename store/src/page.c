/* page.c -- assembling and freeing pages (see page.h). */
#include <stdlib.h>
#include <string.h>

#include "page.h"

int kl_pagebuf_add(kl_pagebuf *pb, const kl_record *r) {
    if (pb->n == pb->cap) {
        size_t cap = pb->cap ? pb->cap * 2 : 64;
        kl_record *v = realloc(pb->recs, cap * sizeof *v);
        if (!v) return -1;
        pb->recs = v;
        pb->cap = cap;
    }
    kl_record c = *r;
    /* Payload pointers are fixed up in finish: the arena may move. */
    c.data = (const uint8_t *)(uintptr_t)pb->arena.len;
    if (kl_buf_append(&pb->arena, r->data, r->len) != 0) return -1;
    pb->recs[pb->n++] = c;
    return 0;
}

kl_status kl_pagebuf_finish(kl_pagebuf *pb, const char *keyspace, const char *key,
                            const char *continuation, kl_page *out, kl_error *err) {
    *out = (kl_page){0};
    out->keyspace = strdup(keyspace);
    out->key = strdup(key);
    out->continuation = continuation ? strdup(continuation) : NULL;
    if (!out->keyspace || !out->key || (continuation && !out->continuation)) {
        kl_page_free(out);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    uint8_t *base = kl_buf_steal(&pb->arena, NULL);
    for (size_t i = 0; i < pb->n; i++)
        pb->recs[i].data = base ? base + (uintptr_t)pb->recs[i].data : NULL;
    out->records = pb->recs;
    out->count = pb->n;
    out->priv_ = base;
    pb->recs = NULL;
    pb->n = pb->cap = 0;
    return KL_OK;
}

void kl_pagebuf_free(kl_pagebuf *pb) {
    kl_buf_free(&pb->arena);
    free(pb->recs);
    pb->recs = NULL;
    pb->n = pb->cap = 0;
}

void kl_page_free(kl_page *page) {
    if (!page) return;
    free(page->keyspace);
    free(page->key);
    free(page->records);
    free(page->continuation);
    free(page->priv_);
    *page = (kl_page){0};
}
