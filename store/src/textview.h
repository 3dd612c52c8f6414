/* textview.h -- a key's text view (klstore.h "Text views"): the byte map
 * of its objects (textindex.c) and reading bytes out of them (textview.c).
 *
 * A key reads as its records, each followed by '\n', so an object of n
 * records and `size` body bytes shows size - 39 * n text bytes: the
 * listing alone gives every object's text position, nothing is fetched to
 * know where a byte lies.  The index holds one entry per object (96 bytes:
 * the parsed name and its text position), plus the pending tail: lines
 * this process appended that no listing shows yet. */
#ifndef KL_TEXTVIEW_H
#define KL_TEXTVIEW_H
#include <pthread.h>

#include "readwalk.h"

/* Bytes a record adds to a data object beyond what it adds to the text:
 * the text spends one '\n' where the object spends its 40-byte framing. */
#define KL_TEXT_SHRINK (KL_RECORD_OVERHEAD - 1u)

#define KL_TV_HINTS 8

typedef struct kl_tentry {
    kl_object_meta m;
    uint64_t start; /* text position of its first record */
} kl_tentry;
/* SEMANTICS.md promises at most 100 bytes of index per object. */
_Static_assert(sizeof(kl_tentry) <= 100, "a text view's index entry outgrew 100 bytes");

/* Where a text position lies (Kl_tv_locate). */
typedef enum { KL_LOC_OBJECT, KL_LOC_PENDING, KL_LOC_EOF } kl_loc_kind;
typedef struct kl_tloc {
    kl_loc_kind kind;
    size_t i;    /* KL_LOC_OBJECT: the entry's index */
    kl_tentry e; /* KL_LOC_OBJECT: a copy of it */
} kl_tloc;

struct kl_textview {
    store_reader *sr; /* borrowed: cache, readahead, store and config */
    char *keyspace, *key, *dir;
    pthread_mutex_t mu; /* guards everything below */
    kl_tentry *v;
    size_t n, cap;
    uint64_t committed; /* text bytes of the listed objects */
    uint8_t *pend;      /* the pending tail, at text position `committed` */
    size_t pend_len, pend_cap;
    int64_t pend_mtime;   /* wall ms of the newest local append */
    int64_t refreshed_ms; /* monotonic ms of the last listing */
    int loaded;
    /* Objects of our own lines reported published beyond the listed ones,
     * oldest first: the tail shrinks by their text once a listing covers
     * them, so other writers' objects in between never retire our lines. */
    struct kl_tmine {
        uint64_t last, text;
    } * mine;
    size_t n_mine, cap_mine;
    /* Where recent reads stopped, so that a sequential read continues
     * there instead of walking the object from its start.  Several, for
     * several readers at once (and the kernel's parallel readahead). */
    struct kl_thint {
        uint64_t first; /* that object's first offset + 1; 0: none */
        uint64_t text, body, offset;
    } hints[KL_TV_HINTS];
    unsigned next_hint; /* the slot a new stream takes */
    /* Readahead: objects up to first offset ra_upto were hinted by a
     * reader at object ra_from; each object is hinted once, not at every
     * read of the one before it.  A reader back before ra_from starts
     * afresh. */
    uint64_t ra_from, ra_upto;
    pthread_mutex_t list_mu;   /* serialises listings */
    pthread_mutex_t append_mu; /* keeps the tail in the writer's order */
};

/* Text bytes of an object, from its name. */
uint64_t Kl_tv_text_len(const kl_object_meta *m);
/* Lists from entry i on (stepping back when it was merged into an object
 * that starts earlier) and splices the listing in; after KL_ENOTFOUND. */
kl_status Kl_tv_resync(kl_textview *tv, size_t i, kl_error *err);
kl_tloc Kl_tv_locate(kl_textview *tv, uint64_t pos);
/* The entry holding record `offset`: 1, or 0 when none is listed. */
int Kl_tv_find_offset(kl_textview *tv, uint64_t offset, kl_tloc *out);
/* Up to max entries after entry i (for readahead); returns the count. */
size_t Kl_tv_next(kl_textview *tv, size_t i, kl_tentry *out, size_t max);
/* Copies pending bytes at text position pos; returns the count. */
size_t Kl_tv_read_pending(kl_textview *tv, uint64_t pos, uint8_t *buf, size_t len);
/* Extends / shortens the pending tail (append_mu held). */
kl_status Kl_tv_pending_add(kl_textview *tv, const kl_insertion *ins, size_t n);
void Kl_tv_pending_undo(kl_textview *tv, size_t bytes);
#endif
