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
    /* The pending tail (textpending.c), at text position `committed`:
     * pend_len bytes from pend + pend_head; pend_retired bytes have left
     * its front so far. */
    uint8_t *pend;
    size_t pend_head, pend_len, pend_cap;
    uint64_t pend_retired;
    /* Bytes that left the tail for an object a listing mistook for ours
     * (textindex.c), and the append call that took them. */
    uint64_t credit, credit_call;
    uint64_t calls;       /* kl_textview_append calls so far */
    int64_t pend_mtime;   /* wall ms of the newest local append */
    int64_t refreshed_ms; /* monotonic ms of the last listing */
    int loaded;
    /* Objects of our own lines the writer reported (klstore.h
     * kl_publish_event) that no listing has settled, in offset order:
     *  - ENCODED: sent or about to be; a listing may show it before its
     *    PUBLISHED report, and then retires its lines (LISTED); a listing
     *    that covers its offsets with another object drops it (its slot
     *    went to another writer, or its request failed);
     *  - PUBLISHED: beyond the listed objects (others' objects may lie in
     *    between): its lines leave the tail once a listing covers it;
     *  - LISTED: its lines retired by a listing, its report still to come.
     * So other writers' objects never retire our lines, and a listing that
     * gets ahead of the writer's report never shows them twice.  A writer
     * that reports in the appending thread (a store writer) tags entries
     * with the kl_textview_append call, whose failure drops them. */
    struct kl_tmine {
        kl_object_meta m;
        uint64_t text;
        uint64_t call; /* 0: reported from another thread */
        int state;     /* MINE_* (textindex.c) */
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

/* textpending.c.  Copies pending bytes at text position pos; returns the
 * count (takes mu). */
size_t Kl_tv_read_pending(kl_textview *tv, uint64_t pos, uint8_t *buf, size_t len);
/* mu held: retires bytes from the tail's front (less any credit); adds
 * lines at the end (*start: where they begin, counted from the tail's
 * creation). */
void Kl_tv_pend_retire(kl_textview *tv, uint64_t bytes);
kl_status Kl_tv_pend_add(kl_textview *tv, const kl_insertion *ins, size_t n, uint64_t *start);
/* mu held: removes up to `bytes` from the tail at `at` (counted as above;
 * at the front when that is later): lines found to be in already, or
 * with UINT64_MAX what is left of a failed call's lines. */
void Kl_tv_pend_cut(kl_textview *tv, uint64_t at, uint64_t bytes);

/* textindex.c.  An append through the view, append_mu held: begin adds
 * the lines to the tail and tags the writer's reports made in this thread
 * with the call; end, once the writer answered, forgets a failed call's
 * objects and takes back what is left of its lines (some may have left the
 * tail already, for objects of theirs that are in). */
typedef struct kl_tcall {
    uint64_t no, start;
} kl_tcall;
kl_status Kl_tv_append_begin(kl_textview *tv, const kl_insertion *ins, size_t n, kl_tcall *call);
void Kl_tv_append_end(kl_textview *tv, const kl_tcall *call, int failed);
#endif
