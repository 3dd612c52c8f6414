/* readwalk.h -- walking a key's objects for one page of the reader
 * (reader.c resolves where a page starts; readwalk.c walks from there).
 *
 * Every walk keeps one invariant, the next offset it wants, which is what
 * makes reads exact while a writer compacts underneath: an object that
 * covers offsets already returned is skipped past, an object that vanished
 * (404) or a gap in the listing means "re-seek the wanted offset", never an
 * error.  A walk belongs to one call; the reader it points to is shared
 * (its cache and memo are thread-safe). */
#ifndef KL_READWALK_H
#define KL_READWALK_H
#include <pthread.h>

#include "keyindex.h"
#include "klstore.h"
#include "objcache.h"
#include "page.h"
#include "readahead.h"

/* How often one page may re-seek after objects vanished under it before we
 * call the store inconsistent (each re-seek follows a compaction). */
#define MAX_RESEEKS 16
/* Objects per look-ahead LIST.  Large, because the listing is kept (see
 * list_memo) and serves the following pages too: a LIST costs about the
 * same for 64 names as for 1000 (a local LIST reads the whole directory). */
#define LOOKAHEAD 1000

/* The reader's last look-ahead listing, for the one key read most
 * recently: the next page of a scan finds its objects here instead of
 * listing again.  A listing may be stale, which is harmless: objects are
 * immutable, one that vanished is a 404 that makes the walk re-seek, one
 * replaced by a compaction holds the same records, and reaching the end of
 * the memo always lists afresh (so new objects are never missed). */
typedef struct list_memo {
    pthread_mutex_t mu;
    char *dir;
    kl_object_meta *v;
    size_t n;
} list_memo;

/* The store reader (reader.c makes it; walks read its store, cache and memo). */
typedef struct store_reader {
    kl_reader base;
    kl_objstore *os;
    kl_store_config cfg;
    char *prefix;
    kl_objcache *cache;
    kl_readahead *ra; /* NULL for stores that map objects locally */
    list_memo memo;
} store_reader;

/* r as a store reader, or NULL when it is another kind (reader.c). */
store_reader *Kl_store_reader(kl_reader *r);

/* One page's walk. */
typedef struct walk {
    store_reader *sr;
    const char *dir;
    kl_pagebuf pb;
    uint64_t limit;
    int reseeks;
    uint64_t hint_in;     /* from the token: first offset of the object holding want */
    uint64_t hint_out;    /* the same for the next page's token */
    kl_index_pages pages; /* listing pages this read has seen */
    kl_object_meta seed;  /* resolving the start found the object holding want */
    int has_seed;
} walk;

/* The object m of w's key, from the reader's cache (one reference for the
 * caller).  KL_ENOTFOUND when it vanished (compacted away). */
kl_status Kl_walk_fetch(walk *w, const kl_object_meta *m, kl_cobj **o, kl_error *err);
/* Fills w's page forwards / backwards from *want; *want ends as the next
 * offset wanted (the next page's start). */
kl_status Kl_walk_forward(walk *w, uint64_t *want, kl_error *err);
kl_status Kl_walk_backward(walk *w, uint64_t *want, kl_error *err);
/* The reader's memo (list_memo): set up and torn down with the reader. */
void Kl_walk_memo_init(list_memo *m);
void Kl_walk_memo_free(list_memo *m);
#endif
