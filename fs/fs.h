/* fs.h -- the types klstorefs's modules share: the mount (klfs), the inode
 * nodes of the tree (root, keyspaces, keys, time-travel views) and open
 * file handles.  A key's bytes, size and pending lines are its text view
 * in libklstore (kl_textview); klstorefs maps FUSE onto it.  Each module's
 * functions are declared here next to the type they work on, so that the
 * call graph reads top-down: ops.c -> nodes.c / appender.c / xattr.c /
 * stats.c -> names.c -> libklstore. */
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

typedef struct klfs klfs;
typedef struct node node;

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
    kl_hnode h;   /* in the (parent, name) table (nodes.c) */
    /* N_KEYSPACE */
    pthread_mutex_t mu; /* guards `created*` and `local_keys` */
    int created_known;  /* 1 marker read, -1 known absent, 0 unknown */
    int64_t created;
    char **local_keys; /* keys created by this mount, maybe unwritten */
    size_t n_local;
    /* N_KEY */
    kl_textview *tv; /* its text: bytes, size, pending lines (libklstore) */
    int local;       /* created in this mount */
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
/* Text position where view v starts (its start record's first byte, or
 * the end of the log when no record qualifies); 0 or -errno. */
int nodes_view_base(klfs *fs, node *v, uint64_t *pos);
/* Unless the first n of `names` (keys of keyspace ks) are all known and
 * listed within refresh_ms, refreshes the first max(n, ahead) of them in
 * parallel (kl_textview_refresh_many, 16 in flight), making the nodes of
 * those not known yet: stat-ing many keys (ls -l, readdirplus) costs one
 * round trip per key, overlapped, in batches larger than one reply.  Keys
 * without data get no node.  Best effort: a key whose listing failed is
 * left to its own lookup. */
void nodes_preload(klfs *fs, node *ks, char *const *names, size_t n, size_t ahead);
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
/* The start position a view names, resolving relative times now; 0 or
 * -EINVAL. */
int names_view_start(const view_spec *spec, kl_start *start);

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
    _Atomic uint64_t read_bytes;                                            /* ops.c */
    _Atomic uint64_t appended_records, appended_bytes;                      /* appender.c */
    _Atomic uint64_t published_records, published_bytes, published_objects; /* main.c */
    _Atomic uint64_t write_errors;                                          /* appender.c */
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
    kl_reader *reader;         /* its object cache and readahead serve every read */
    struct fuse_session *se;
    int ro;
    uid_t uid;
    gid_t gid;
    mode_t umask;
    double entry_timeout, attr_timeout;
    int64_t refresh_ms; /* min interval between listings per key */
    size_t pending_max; /* flush a key when its pending tail exceeds */
    int64_t mount_ms;
    /* nodes.c */
    pthread_mutex_t nodes_mu;
    kl_htab nodes;
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
