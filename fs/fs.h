/* fs.h -- the types klstorefs's modules share: the mount (klfs), the inode
 * nodes of the tree (root, keyspaces, keys, time-travel views), a key's
 * byte-offset index with its pending (written, not yet listed) tail, the
 * object cache, and open file handles.  Each module's functions are
 * declared here next to the type they work on, so that the call graph
 * reads top-down: ops.c -> nodes.c / readpath.c / appender.c / xattr.c ->
 * keyindex.c / objcache.c -> libklstore. */
#ifndef KLFS_H
#define KLFS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "klstore.h"
#include "metrics.h"

/* Bytes a record adds to a data object beyond what it adds to the text
 * view: the text view spends one '\n' where the object spends the 40-byte
 * header+trailer, so an object of n records shows size - 39 * n bytes. */
#define KLFS_TEXT_SHRINK (KL_RECORD_OVERHEAD - 1u)

typedef struct klfs klfs;
typedef struct node node;
typedef struct objcache objcache;

/* ---- per-key byte-offset index (keyindex.c) ----------------------------- */

/* One data object as the text view sees it: its name fields plus where its
 * bytes start in the key's text (cumulative over earlier objects). */
typedef struct kentry {
    kl_object_meta m;
    uint64_t start; /* text byte position of its first record */
    uint64_t len;   /* text bytes: size - 39 * records */
} kentry;

typedef struct keyindex {
    pthread_mutex_t mu; /* guards everything below */
    kentry *v;
    size_t n, cap;
    uint64_t committed; /* text bytes covered by listed objects */
    /* Text this mount appended that no listing shows yet, in append order;
     * it starts at byte `committed`.  Lets readers and stat see a writer's
     * lines at once, and lets non-O_APPEND writers (cat > new) keep
     * writing at "the end". */
    uint8_t *pend;
    size_t pend_len, pend_cap;
    int64_t pend_mtime;   /* ms of the newest local append */
    int64_t refreshed_ms; /* monotonic ms of the last listing, 0 = never */
    int loaded;
    /* Objects of this mount's own lines that the writer reported published
     * (ki_published) beyond what the index lists, oldest first.  The
     * pending tail shrinks by exactly their text once a listing covers
     * them, so other writers' objects in between never retire our lines. */
    struct kmine {
        uint64_t last, text;
    } * mine;
    size_t n_mine, cap_mine;
    pthread_mutex_t list_mu;   /* serialises listings (refresh, resync) */
    pthread_mutex_t append_mu; /* keeps pend in the batch writer's order */
} keyindex;

void ki_init(keyindex *ki);
/* Lists what is new when the last listing is older than max_age_ms (0 =
 * always).  The first call lists the whole key; later ones only the last
 * known object and what follows it. */
kl_status ki_refresh(klfs *fs, node *k, int64_t max_age_ms, kl_error *err);
/* Loads the index from a whole listing of the key (kl_list_objects order),
 * made elsewhere (nodes_preload lists many keys at once). */
kl_status ki_set_listing(keyindex *ki, const kl_object_meta *v, size_t n);
/* Re-lists from the entry at index i (stepping back when it was compacted
 * into an object that starts earlier); used after KL_ENOTFOUND. */
kl_status ki_resync(klfs *fs, node *k, size_t i, kl_error *err);
/* Text size: listed objects plus the pending tail. */
uint64_t ki_size(keyindex *ki);

/* Where a text byte position lies. */
typedef enum { LOC_OBJECT, LOC_PENDING, LOC_EOF } loc_kind;
typedef struct kloc {
    loc_kind kind;
    size_t i; /* LOC_OBJECT: entry index */
    kentry e; /* LOC_OBJECT: copy of the entry */
} kloc;
kloc ki_locate(keyindex *ki, uint64_t pos);
/* Entry covering record `offset`; 0 if the index does not cover it. */
int ki_find_offset(keyindex *ki, uint64_t offset, kloc *out);
/* Copies up to max entries after index i (for readahead); returns the count. */
size_t ki_next_entries(keyindex *ki, size_t i, kentry *out, size_t max);
/* Copies up to len pending bytes at text position pos; returns the count. */
size_t ki_read_pending(keyindex *ki, uint64_t pos, uint8_t *buf, size_t len);
/* Adds/removes text at the end of the pending tail (append_mu held). */
int ki_pending_add(keyindex *ki, const void *p1, size_t n1, const void *p2, size_t n2);
void ki_pending_undo(keyindex *ki, size_t n);
/* The store writer published object m holding the oldest pending lines:
 * indexes it at once when it follows the listed objects (no LIST needed),
 * else retires its text when a listing covers it. */
void ki_published(keyindex *ki, const kl_object_meta *m);
/* Frees the pending tail's buffer if it is empty (a writer closed: do not
 * keep a burst's buffer for every key it hit). */
void ki_pending_release(keyindex *ki);
/* Summary for stat and xattrs. */
typedef struct kstat {
    uint64_t size, next_offset, objects;
    kl_u128 next_nonce;
    int64_t first_ts, last_ts, mtime;
    int empty;
} kstat;
kstat ki_stat(keyindex *ki);

/* ---- nodes: the inode table (nodes.c) ----------------------------------- */

/* N_INFO is the directory /.klstore and N_STATS its file "stats": found
 * by name only (like views), never listed in the root, and never in the
 * way of a keyspace (keyspace names cannot start with '.'). */
typedef enum { N_ROOT, N_KEYSPACE, N_KEY, N_VIEW, N_INFO, N_STATS } node_kind;
#define KLFS_INFO_DIR   ".klstore"
#define KLFS_STATS_FILE "stats"

/* Where a time-travel view starts (names.c parses "KEY@t=...", ...). */
typedef struct view_spec {
    kl_start_kind kind; /* OFFSET, TIMESTAMP or NONCE */
    char arg[64];       /* as written: relative times resolve at open */
} view_spec;

struct node {
    node_kind kind;
    char *name;   /* keyspace, key, or full view name */
    node *parent; /* keyspace of a key/view; NULL for the root */
    node *hnext;  /* hash chain of the (parent, name) table */
    /* N_KEYSPACE */
    pthread_mutex_t mu; /* guards `created*` and `local_keys` */
    int created_known;  /* 1 marker read, -1 known absent, 0 unknown */
    int64_t created;
    char **local_keys; /* keys created by this mount, maybe unwritten */
    size_t n_local;
    /* N_KEY */
    keyindex ki;
    int local; /* created in this mount */
    /* N_VIEW */
    node *base;
    view_spec spec;
};

/* Nodes live until unmount (keys never disappear: there is no unlink), so
 * a node's address is its inode number and stays valid without refcounts. */
node *nodes_get(klfs *fs, fuse_ino_t ino);
/* The inode number stat shows for name in keyspace ks (ks NULL: name is a
 * keyspace; name NULL: the root): the same in every mount. */
ino_t nodes_path_ino(const char *ks, const char *name);
/* The node of key `key` in keyspace `ks`, or NULL if none was looked up. */
node *nodes_find_key(klfs *fs, const char *ks, const char *key);
fuse_ino_t nodes_ino(klfs *fs, node *n);
/* Finds the child, creating its node only when the name exists in the
 * store (keyspace marker or data, key data, or a view of an existing key);
 * 0 or -errno. */
int nodes_lookup(klfs *fs, node *parent, const char *name, node **out);
/* create(2)/mkdir(2): a key of this mount (listed before it has data), or
 * a new keyspace (its marker is written at once); 0 or -errno. */
int nodes_mkkey(klfs *fs, node *ks, const char *name, node **out);
int nodes_mkkeyspace(klfs *fs, const char *name, node **out);
/* Attributes; `view_base` is the open view's start (or -1 to resolve). */
int nodes_stat(klfs *fs, node *n, int64_t view_base, struct stat *st);
/* Makes the nodes of the keys `names` of keyspace ks that are not known
 * yet, their indexes loaded by listings in parallel (kl_list_objects_many),
 * so that stat-ing many keys (ls -l, readdirplus) costs one round trip per
 * key, overlapped.  Keys without data get no node.  Best effort: a key
 * whose listing failed is left to its own lookup. */
void nodes_preload(klfs *fs, node *ks, char *const *names, size_t n);
/* The node for name under parent if one was made, else NULL (no request). */
node *nodes_find(klfs *fs, node *parent, const char *name);
/* Directory listing as a NULL-terminated name vector (free with
 * kl_strv_free(v, n)). */
int nodes_list(klfs *fs, node *dir, char ***names, size_t *n);
void nodes_init(klfs *fs);
void nodes_free(klfs *fs);

/* ---- time-travel names (names.c) ---------------------------------------- */

/* 1 if `name` is "KEY@t=..", "KEY@o=.." or "KEY@n=.." with a valid key
 * name and argument; fills key (KL_NAME_MAX + 1 bytes) and spec. */
int names_parse_view(const char *name, char *key, view_spec *spec);

/* ---- object cache and readahead (objcache.c) ---------------------------- */

/* A fetched data object rendered as text: records joined by '\n'. */
typedef struct cobj {
    node *k;
    uint64_t first, last;
    uint8_t *text;
    size_t len, cap;
    uint64_t *recpos; /* text position of each record, n + 1 */
    /* cache bookkeeping (objcache.c) */
    int state, refs;
    kl_status st;
    struct cobj *hnext, *lprev, *lnext;
} cobj;

objcache *objcache_new(klfs *fs, size_t max_bytes, unsigned threads);
void objcache_free(objcache *c);
/* Text bytes and objects the cache holds now. */
void objcache_usage(objcache *c, size_t *bytes, size_t *objects);
/* Returns the object, fetching it (once, whoever asks first) if needed.
 * KL_ENOTFOUND when it was compacted away. */
kl_status objcache_get(objcache *c, node *k, const kl_object_meta *m, cobj **out, kl_error *err);
void objcache_put(objcache *c, cobj *o);
/* Like objcache_put, and drops the object from the cache: a sequential
 * read went through it on a store where fetching again is cheap. */
void objcache_done(objcache *c, cobj *o);
/* Queues a background fetch unless cached or already in flight. */
void objcache_prefetch(objcache *c, node *k, const kl_object_meta *m);

/* ---- reading text (readpath.c) ------------------------------------------ */

/* Fills buf with up to len bytes of key k's text from `pos`; returns the
 * count (short only at the end of the log) or -errno. */
ssize_t readpath_read(klfs *fs, node *k, uint64_t pos, uint8_t *buf, size_t len);
/* The zero-copy case of a read: when [pos, pos + len) lies inside one
 * fetched object, returns 1 with *p into its text and *o referenced (the
 * caller replies from *p, then readpath_unpeek); else 0 and nothing held. */
int readpath_peek(klfs *fs, node *k, uint64_t pos, size_t len, cobj **o, const uint8_t **p);
void readpath_unpeek(klfs *fs, cobj *o, const uint8_t *p, size_t len);
/* Text byte position where a view starts (its start record's first byte,
 * or the end of the log when no record qualifies). */
int readpath_view_base(klfs *fs, node *view, uint64_t *pos);

/* ---- open files and appends (appender.c) -------------------------------- */

typedef struct fhandle {
    node *n;
    int writable, append;
    int dirty;     /* written since the last successful flush */
    uint64_t base; /* views: text position of byte 0 */
    pthread_mutex_t mu;
    uint8_t *partial; /* unterminated last line, not yet a record */
    size_t plen, pcap;
    int refusing;   /* inside a line refused as too long: its
                       bytes up to the next '\n' are dropped */
    uint64_t owner; /* lock owner (fd table) that wrote the partial */
    char *snap;     /* N_STATS: the text as of open(2) */
    size_t snap_len;
    struct fhandle *prev, *next; /* open handles, for shutdown */
} fhandle;

fhandle *fh_new(klfs *fs, node *n, int writable, int append);
void fh_free(klfs *fs, fhandle *fh);
/* Appends `len` bytes written at `off` by lock owner `owner`; returns
 * len or -errno. */
ssize_t appender_write(klfs *fs, fhandle *fh, const uint8_t *data, size_t len, uint64_t off,
                       uint64_t owner);
/* Waits until the key's records are durable; 0 or -EIO.  The held partial
 * line becomes a record first when `owner` is the one that wrote it (a
 * close by that process) or when `owner` is 0 (fsync, release). */
int appender_flush(klfs *fs, fhandle *fh, uint64_t owner);
/* At shutdown: partial lines of every open handle become records, then
 * everything is flushed.  0 or -EIO. */
int appender_flush_all(klfs *fs);

/* ---- extended attributes (xattr.c) -------------------------------------- */

/* Fills `buf` (size 0 = just measure) as listxattr/getxattr do; returns
 * the length or -errno. */
ssize_t xattr_list(klfs *fs, node *n, char *buf, size_t size);
ssize_t xattr_get(klfs *fs, node *n, const char *name, char *buf, size_t size);

/* ---- statistics (stats.c) ---------------------------------------------- */

/* Counters the modules bump as they go (relaxed atomics: any thread). */
typedef struct klfs_stats {
    _Atomic uint64_t cache_hits, cache_misses;                              /* objcache.c */
    _Atomic uint64_t read_bytes;                                            /* ops.c */
    _Atomic uint64_t appended_records, appended_bytes;                      /* appender.c */
    _Atomic uint64_t published_records, published_bytes, published_objects; /* main.c */
    _Atomic uint64_t write_errors;                                          /* appender.c */
    _Atomic uint64_t listings;                                              /* keyindex.c */
    atomic_int flush_failing;   /* appender.c: the last flush failed */
    km_histogram flush_seconds; /* appender.c */
} klfs_stats;

#define KLFS_COUNT(fs, field, n)                                                                   \
    atomic_fetch_add_explicit(&(fs)->stats.field, (n), memory_order_relaxed)

/* The counters, the cache's size and the store's requests, in the
 * Prometheus text format (the /.klstore/stats file and -o metrics). */
void stats_render(FILE *f, void *fs);
/* stats_render into a new buffer (free it); NULL when out of memory. */
char *stats_snapshot(klfs *fs, size_t *len);

/* ---- the mount ---------------------------------------------------------- */

struct klfs {
    kl_config cfg;
    kl_objstore *os;
    kl_writer *inner, *writer; /* NULL on a read-only mount */
    kl_reader *reader;
    objcache *cache;
    struct fuse_session *se;
    int ro;
    uid_t uid;
    gid_t gid;
    mode_t umask;
    double entry_timeout, attr_timeout;
    int64_t refresh_ms; /* min interval between listings per key */
    size_t pending_max; /* flush a key when its pending tail exceeds */
    unsigned readahead; /* objects fetched ahead of a sequential read */
    int drop_consumed;  /* local store: uncache objects read to the end */
    int64_t mount_ms;
    /* nodes.c */
    pthread_mutex_t nodes_mu;
    node **buckets;
    size_t nbuckets, nnodes;
    node *root;
    /* appender.c */
    pthread_mutex_t fh_mu;
    fhandle *open_files;
    klfs_stats stats;
    km_server *metrics; /* -o metrics=ADDR, or NULL */
};

/* errno for a library status. */
int klfs_errno(kl_status st);

#endif
