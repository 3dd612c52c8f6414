/* klstore.h -- the whole public API of libklstore.
 *
 * klstore keeps append-only logs on an object store (S3 or a local
 * directory).  A *keyspace* holds *keys*; each key is a *log* of records,
 * each with an offset (1, 2, 3, ...), a timestamp (ms since the epoch) and
 * an optional 128-bit nonce.  Any number of writers (threads, processes,
 * hosts) may append to one key: each object is published through a slot
 * claimed with a create-only write, so no acknowledged append is lost or
 * duplicated (FORMAT.md "Concurrent writers").  Nonce checking makes
 * retried writes exactly-once, across writers too.  Any number of stateless readers page
 * forwards or backwards from an offset, a timestamp or a nonce.
 *
 * The on-bucket format (object names and bytes) is FORMAT.md; a bucket is
 * interchangeable with the Rust reference implementation.
 *
 * Layers, each an ops table so that implementations stack:
 *
 *   kl_objstore   put/get/head/list/delete of whole objects
 *                 (kl_objstore_local_new, kl_objstore_s3_new)
 *   kl_writer     create_keyspace/append/flush (kl_store_writer_new over an
 *                 object store; kl_batch_writer_new wraps any kl_writer)
 *   kl_reader     metadata and paging (kl_store_reader_new)
 *
 * Conventions, true for every function below unless it says otherwise:
 *  - Functions return KL_OK (0) or a kl_status error code.  When `err` is
 *    not NULL it receives the code and a one-line message naming the
 *    problem.  `err` is owned by the caller, so errors are thread-safe.
 *  - Strings are NUL-terminated UTF-8.  Pointers passed in are borrowed for
 *    the duration of the call only.  Memory handed out is owned by the
 *    caller and released with the matching *_free function (or free(3)
 *    where it says so).
 *  - Objects (kl_objstore, kl_writer, kl_reader) are thread-safe: any
 *    function may be called from any thread at any time, except destroy,
 *    which must be the last call and must not race with other calls.
 *  - A layer borrows the layer below it: destroy the writer/reader before
 *    the object store it was created over.
 */
#ifndef KLSTORE_H
#define KLSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every function declared below is libklstore's public surface and the
 * only thing the shared library exports: the library compiles with hidden
 * visibility, this pragma makes these declarations visible, and
 * store/libklstore.map lists (and versions) the same names. */
#pragma GCC visibility push(default)

#define KL_VERSION "0.2.0"

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

typedef enum kl_status {
    KL_OK = 0,
    KL_EIO,         /* I/O failure talking to the object store: retryable */
    KL_EBADDATA,    /* stored data is corrupt or not in klstore format */
    KL_EINVAL,      /* bad configuration or argument (name, size, value) */
    KL_EBADTOKEN,   /* continuation token is malformed or for another key */
    KL_EEXIST,      /* keyspace already exists */
    KL_ENOKEYSPACE, /* keyspace does not exist */
    KL_ENOTFOUND,   /* object-store level: the named object does not exist */
    KL_ENOMEM,      /* out of memory */
    KL_ECLOSED,     /* the writer was shut down, or a pending write was lost */
    KL_ENOSPC       /* the store is out of space (a full disk or quota on a
                       local store): nothing of the failed write is kept;
                       retry once space is freed */
} kl_status;
#define KL_STATUS_COUNT 11 /* statuses, for tables indexed by kl_status */

#define KL_ERRMSG_MAX 512

typedef struct kl_error {
    kl_status code;
    char msg[KL_ERRMSG_MAX];
} kl_error;

/* A static, human-readable name for a status code ("I/O error", ...). */
const char *kl_status_str(kl_status code);
/* A short identifier of a status ("ok", "io", "bad_data", "invalid",
 * "bad_token", "exists", "no_keyspace", "not_found", "no_memory", "closed",
 * "no_space"): stable, for metric labels and machine-read logs. */
const char *kl_status_name(kl_status code);

/* Sets *err (if not NULL) to code and a printf-formatted message; returns
 * code, so that `return kl_seterr(err, KL_EINVAL, "...")` reads naturally. */
kl_status kl_seterr(kl_error *err, kl_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True for errors that a caller may retry unchanged (KL_EIO). */
int kl_status_retryable(kl_status code);

/* Diagnostics the library cannot return to a caller (a background
 * compaction that failed and will be retried, a batching writer that gave
 * up on records at shutdown) go to a process-wide log handler: stderr by
 * default; klstorefs sends them to syslog.  Levels: */
enum { KL_LOG_ERROR = 0, KL_LOG_WARNING = 1, KL_LOG_INFO = 2 };
typedef void (*kl_log_fn)(int level, const char *msg, void *ctx);
/* Installs `fn` (NULL restores stderr).  Call before starting threads. */
void kl_set_log_handler(kl_log_fn fn, void *ctx);
void kl_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */

typedef unsigned __int128 kl_u128;

/* All bits set: the on-bucket encoding of "no nonce".  Not a valid nonce. */
#define KL_NONCE_NONE (~(kl_u128)0)

/* Limits on names and records.  Names must be non-empty, at most
 * KL_NAME_MAX bytes, contain no '/', NUL or control character, not be "."
 * or "..", not start with '.', and not end with "_config.ini" (which would
 * make a key's objects look like a keyspace marker). */
#define KL_NAME_MAX 200
/* Largest record payload: 64 MiB (the format allows up to 4 GiB - 37). */
#define KL_RECORD_MAX ((uint32_t)64 << 20)
/* Bytes a record takes in a data object besides its payload: offset(8),
 * timestamp(8), nonce(16), length(4) before it and the trailer(4) after. */
#define KL_RECORD_OVERHEAD 40u

/* One record to append.  A record without a nonce is always accepted; one
 * with nonce n is accepted only when n >= the key's next nonce. */
typedef struct kl_insertion {
    const void *data;
    size_t len;
    int has_nonce;
    kl_u128 nonce;
    int has_timestamp; /* when 0 the writer uses the system clock */
    int64_t timestamp; /* ms since the Unix epoch, may be negative */
} kl_insertion;

/* One record read back.  `data` points into the owning kl_page. */
typedef struct kl_record {
    uint64_t offset;
    int64_t timestamp;
    int has_nonce;
    kl_u128 nonce;
    const uint8_t *data;
    size_t len;
} kl_record;

typedef enum kl_direction { KL_FORWARDS = 0, KL_BACKWARDS = 1 } kl_direction;

typedef enum kl_start_kind {
    KL_START_FIRST = 0, /* the oldest record (offset 1) */
    KL_START_LAST,      /* the newest record (extension: handy backwards) */
    KL_START_OFFSET,    /* the record at `offset` */
    KL_START_TIMESTAMP, /* forwards: first record with ts >= t;
                           backwards: last record with ts <= t */
    KL_START_NONCE      /* forwards: first record with nonce >= n;
                           backwards: last record with nonce <= n */
} kl_start_kind;

typedef struct kl_start {
    kl_start_kind kind;
    uint64_t offset;
    int64_t timestamp;
    kl_u128 nonce;
} kl_start;

/* A page of records.  Owns all of its memory; release with kl_page_free.
 * `continuation` is NULL when there is nothing further in that direction:
 * backwards, once offset 1 was returned.  Forwards it is always set, since
 * a log can grow: passing it again returns only records appended since (an
 * empty page means "caught up"), which is how a stateless tail works. */
typedef struct kl_page {
    char *keyspace;
    char *key;
    kl_record *records;
    size_t count;
    char *continuation;
    void *priv_; /* backing buffers, internal */
} kl_page;

void kl_page_free(kl_page *page);

typedef struct kl_keyspace_meta {
    int64_t created; /* ms since the epoch, from the keyspace marker */
} kl_keyspace_meta;

typedef struct kl_key_meta {
    uint64_t next_offset;   /* last offset + 1 */
    kl_u128 next_nonce;     /* smallest nonce that would be accepted */
    int64_t last_timestamp; /* largest timestamp in the newest data object */
} kl_key_meta;

/* ------------------------------------------------------------------ */
/* Object store: the seam between klstore and S3 / a local directory   */
/* ------------------------------------------------------------------ */

typedef struct kl_objstore kl_objstore;

typedef struct kl_objinfo {
    char *name; /* full object name (key) */
    uint64_t size;
    /* When the store last changed it, ms since the epoch by the store's
     * clock (S3 LastModified; the local store gives the inode's change
     * time); 0 when unknown or with names_only on a directory store. */
    int64_t mtime_ms;
} kl_objinfo;

typedef struct kl_list_req {
    const char *prefix;       /* only names starting with this ("" = all) */
    const char *start_after;  /* only names strictly greater, or NULL */
    int delimiter;            /* '/' to roll up common prefixes, 0 = none */
    size_t max_keys;          /* objects + prefixes per call; 0 = 1000 */
    const char *continuation; /* from a previous truncated listing */
    int names_only;           /* sizes may be left 0 (saves a stat per
                                 object on a directory store) */
} kl_list_req;

/* Result of one LIST call, names in ascending byte order (as S3).
 * Release with kl_listing_free. */
typedef struct kl_listing {
    kl_objinfo *objects;
    size_t n_objects;
    char **prefixes; /* common prefixes (with the delimiter) */
    size_t n_prefixes;
    char *next; /* continuation when truncated, else NULL */
} kl_listing;

void kl_listing_free(kl_listing *l);

#define KL_PUT_IF_ABSENT 1 /* fail with KL_EEXIST if the name exists */

/* One object of a kl_os_put_batch call (all fields borrowed). */
typedef struct kl_put_item {
    const char *name;
    const void *data;
    size_t len;
    int flags; /* KL_PUT_* */
} kl_put_item;

/* The body of a claim (and of a publish that must PUT it): `n` pieces, read
 * in order, `len` bytes in all; borrowed for the call.  In pieces so that
 * a writer can hand over records where they already lie encoded (the
 * batching writer's queue) instead of copying them into one buffer.  One
 * buffer is one piece: struct iovec v = {p, len}; kl_body b = {&v, 1, len}. */
typedef struct kl_body {
    const struct iovec *v;
    size_t n;
    size_t len;
} kl_body;

/* A read-only view of a whole object; `release` frees it. */
typedef struct kl_mapping {
    const uint8_t *data;
    size_t len;
    void (*release)(struct kl_mapping *m);
} kl_mapping;

/* Ops table of an object store.  All calls are thread-safe.  A missing
 * object is KL_ENOTFOUND (never KL_EIO), so callers can re-list. */
typedef struct kl_objstore_ops {
    kl_status (*put)(kl_objstore *os, const char *name, const void *data, size_t len, int flags,
                     kl_error *err);
    /* Reads `len` bytes from `off` (len UINT64_MAX = to the end) into a
     * malloc'd buffer the caller frees with free(3). */
    kl_status (*get)(kl_objstore *os, const char *name, uint64_t off, uint64_t len, uint8_t **data,
                     size_t *out_len, kl_error *err);
    kl_status (*head)(kl_objstore *os, const char *name, uint64_t *size, kl_error *err);
    kl_status (*list)(kl_objstore *os, const kl_list_req *req, kl_listing *out, kl_error *err);
    /* Deletes up to 1000 names; missing names are not an error. */
    kl_status (*del)(kl_objstore *os, const char *const *names, size_t n, kl_error *err);
    /* Optional (NULL when the store cannot do better than get): a whole
     * object, cheaply, from a store where fetching is a local read (the
     * local store reads it into a pooled buffer: cheaper than mmap+munmap
     * under a hypervisor).  Its presence also tells readers that fetching
     * an object again is cheap, so they need not cache or prefetch it. */
    kl_status (*map)(kl_objstore *os, const char *name, kl_mapping *out, kl_error *err);
    /* Short description for messages, e.g. "dir:/var/lib/kl" or "s3://b/p". */
    const char *(*describe)(kl_objstore *os);
    void (*destroy)(kl_objstore *os);
    /* Optional (NULL: kl_os_put_batch puts the items one by one): stores
     * `n` objects with put's guarantees, made visible in the given order,
     * and returns only once all of them are durable.  Lets a store share
     * the cost of durability between the objects, e.g. one directory sync
     * for several renames.  On error any prefix of the items may be
     * stored (each object whole or not at all), as after that many puts. */
    kl_status (*put_batch)(kl_objstore *os, const kl_put_item *items, size_t n, kl_error *err);

    /* Slot claims: how concurrent writers of one key are fenced (FORMAT.md
     * "Concurrent writers").  Optional as a group: a store without them
     * (NULL) cannot fence, and its writers fall back to one writer per key.
     * A `tag` identifies one body of a claim (S3: its ETag); stores that do
     * not need one return NULL.  Tags are malloc'd (free(3)).  A claim
     * reads (get) as the body it holds, on every store.
     *
     * claim: creates `claim` holding `body` (the exact body of the data
     * object `object`, a full name) if and only if no object `claim`
     * exists: atomic create-only, KL_EEXIST when another writer has it.
     * Durable only together with a later publish. */
    kl_status (*claim)(kl_objstore *os, const char *claim, const char *object, const kl_body *body,
                       char **tag, kl_error *err);
    /* The full data object name a claim holds (malloc'd, free(3)) and its
     * tag.  KL_ENOTFOUND when there is no claim; KL_EBADDATA when it holds
     * no body (a local claim left by a crash before it was published: such
     * a claim was never acknowledged). */
    kl_status (*claim_target)(kl_objstore *os, const char *claim, char **object, char **tag,
                              kl_error *err);
    /* Makes `object` hold the claimed body, durably: a hard link on a
     * directory store; on S3 a server-side copy conditional on `tag`, or,
     * on a server that ignores copy conditions, a PUT of the body (`body`
     * when the caller has it, else read from the claim together with its
     * object name).  Idempotent; KL_ENOTFOUND when the claim is gone or no
     * longer holds that body. */
    kl_status (*publish)(kl_objstore *os, const char *claim, const char *object, const char *tag,
                         const kl_body *body, kl_error *err);
    /* Deletes claims (missing ones are not an error). */
    kl_status (*unclaim)(kl_objstore *os, const char *const *claims, size_t n, kl_error *err);
} kl_objstore_ops;

struct kl_objstore {
    const kl_objstore_ops *ops;
    struct kl_os_counters *counters_; /* internal (kl_os_stats_read): start it NULL */
};

/* What an object store did, counted by the kl_os_* wrappers below (the
 * library reaches its store only through them), for metrics: an operator
 * sees request rates, failures by kind and time spent per operation. */
typedef enum kl_os_op {
    KL_OP_PUT,
    KL_OP_GET,
    KL_OP_HEAD,
    KL_OP_LIST,
    KL_OP_DEL,
    KL_OP_CLAIM,
    KL_OP_CLAIM_TARGET,
    KL_OP_PUBLISH,
    KL_OP_UNCLAIM,
    KL_OP_COUNT
} kl_os_op;
typedef struct kl_os_stats {
    uint64_t calls[KL_OP_COUNT];                   /* completed, whatever the outcome */
    uint64_t failed[KL_OP_COUNT][KL_STATUS_COUNT]; /* ...by the status returned (a
                                                      get's KL_ENOTFOUND is counted
                                                      too: callers decide if it is bad) */
    double seconds[KL_OP_COUNT];                   /* total time spent in them */
    uint64_t bytes_put;                            /* bodies sent: put, claim, publish */
    uint64_t bytes_got;                            /* bodies received: get */
} kl_os_stats;
/* A snapshot of os's counters since it was created.  Each counter is read
 * atomically (together they may be microseconds apart).  Thread-safe; os
 * is borrowed. */
void kl_os_stats_read(kl_objstore *os, kl_os_stats *out);
/* "put", "get", "head", "list", "del", "claim", "claim_target", "publish",
 * "unclaim": stable, for metric labels. */
const char *kl_os_op_name(kl_os_op op);

/* Convenience wrappers: kl_os_put(os, ...) == os->ops->put(os, ...). */
kl_status kl_os_put(kl_objstore *os, const char *name, const void *data, size_t len, int flags,
                    kl_error *err);
/* Puts several objects, in order, all durable on return (the ops table's
 * put_batch, or one put after the other).  Thread-safe; items borrowed. */
kl_status kl_os_put_batch(kl_objstore *os, const kl_put_item *items, size_t n, kl_error *err);
kl_status kl_os_get(kl_objstore *os, const char *name, uint64_t off, uint64_t len, uint8_t **data,
                    size_t *out_len, kl_error *err);
kl_status kl_os_head(kl_objstore *os, const char *name, uint64_t *size, kl_error *err);
kl_status kl_os_list(kl_objstore *os, const kl_list_req *req, kl_listing *out, kl_error *err);
kl_status kl_os_del(kl_objstore *os, const char *const *names, size_t n, kl_error *err);
/* The claim ops of the table (see kl_objstore_ops); kl_os_can_claim tells
 * whether the store has them. */
int kl_os_can_claim(const kl_objstore *os);
kl_status kl_os_claim(kl_objstore *os, const char *claim, const char *object, const kl_body *body,
                      char **tag, kl_error *err);
kl_status kl_os_claim_target(kl_objstore *os, const char *claim, char **object, char **tag,
                             kl_error *err);
kl_status kl_os_publish(kl_objstore *os, const char *claim, const char *object, const char *tag,
                        const kl_body *body, kl_error *err);
kl_status kl_os_unclaim(kl_objstore *os, const char *const *claims, size_t n, kl_error *err);
void kl_os_destroy(kl_objstore *os);

/* The local-directory store: object K lives at ROOT/K, so the directory is
 * a faithful mirror of a bucket.  Writes are atomic and durable (temporary
 * file, fsync, rename, fsync of the directory).  `root` is created if
 * missing. */
kl_status kl_objstore_local_new(const char *root, kl_objstore **out, kl_error *err);

/* The S3 store (AWS S3, Ceph RGW, MinIO, R2, ...): libcurl, SigV4 signing,
 * the AWS credential chain when use_default_credentials is set, bounded
 * retries with backoff on 5xx/429/SlowDown/timeouts.  Copies what it needs
 * from `c`.  Does not contact the server (the first request does). */
typedef struct kl_s3_config kl_s3_config;
kl_status kl_objstore_s3_new(const kl_s3_config *c, kl_objstore **out, kl_error *err);

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

/* S3 connection settings: the spec's "Shared Config" plus resilience knobs.
 * Strings are owned (malloc'd) and released by kl_config_free. */
struct kl_s3_config {
    char *bucket_name;           /* required */
    char *endpoint;              /* e.g. "http://127.0.0.1:7480"; NULL = AWS */
    char *region;                /* NULL = "us-east-1" */
    int path_style;              /* default 0 (virtual-hosted style) */
    int use_default_credentials; /* default 1: env, files, container, IMDS */
    char *access_key;
    char *secret_key;
    char *security_token;
    char *session_token;
    char *profile;
    long connect_timeout_ms; /* default 5000 */
    long request_timeout_ms; /* default 30000 */
    int max_retries;         /* default 5 */
    int verify_tls;          /* default 1 */
    char *ca_bundle;         /* NULL = system default */
    int sign_payload;        /* KL_SIGN_PAYLOAD_*, default AUTO */
};

/* Whether SigV4 covers request bodies (config key `sign_payload`).  ON:
 * x-amz-content-sha256 is the body's SHA-256, which the server checks (a
 * hash on each side: ~20% of a 1 MiB PUT to a local RGW).  OFF:
 * UNSIGNED-PAYLOAD, as curl --aws-sigv4 and the AWS SDKs send over TLS.
 * AUTO: ON over http, OFF over https, where TLS already protects the body
 * in transit. */
enum { KL_SIGN_PAYLOAD_AUTO = 0, KL_SIGN_PAYLOAD_ON = 1, KL_SIGN_PAYLOAD_OFF = 2 };

/* Store settings shared by reader and writer (spec: reader- and
 * writer-specific config).  Defaults from kl_store_config_init. */
typedef struct kl_store_config {
    char *object_prefix;                /* NULL = "" */
    uint64_t default_page_size;         /* default 1000 */
    size_t max_cached_keys;             /* default 100000 */
    uint64_t compact_records_threshold; /* default 1000 */
    uint64_t compact_size_threshold;    /* default 1 MiB */
    uint64_t compact_objects_threshold; /* default 100 */
    uint64_t reader_cache_bytes;        /* default 64 MiB of fetched objects */
    uint64_t reader_readahead;          /* default 8: objects fetched ahead in
                                           parallel when reading forwards from
                                           a remote store (0 = off) */
    int fencing;                        /* KL_FENCING_*, default AUTO */
    uint64_t claim_hold_ms;             /* default 60000: a slot's claim is
                                           kept this long after its object
                                           is seen published; writers skip
                                           the tail check within a sixth
                                           of it (FORMAT.md).  Every writer
                                           of a bucket must use the same. */
    int skip_tail_check;                /* default 1: skip it as above; 0:
                                           check every object (for machines
                                           whose clocks stop while paused,
                                           e.g. a VM its hypervisor stops) */
} kl_store_config;

/* How the store writer fences concurrent writers of a key (config key
 * `fencing`).  AUTO: claim slots with create-only writes when the store
 * supports them (S3: probed once per writer with a second create-only PUT
 * of one name, which must fail with 412), else warn once and work as one
 * writer per key.  ON: the same, but a store that cannot fence is an
 * error and nothing is written.  OFF: never claim (one writer per key). */
enum { KL_FENCING_AUTO = 0, KL_FENCING_ON = 1, KL_FENCING_OFF = 2 };

/* Batching writer settings: the spec's BatchingStoreWriterConfig.
 *
 * writes_in_flight bounds the store writes (batches of different keys; a
 * key never has two in flight, though over a store writer one write of a
 * key that is written faster than the store takes it may hold up to four
 * objects, pipelined: FORMAT.md "Pipelined appends") that one writer
 * thread has going at once:
 * the thread itself plus writes_in_flight - 1 helper threads.  The helpers
 * are shared by all writer threads and each writer thread also writes, so
 * with N = writer_thread_count threads writing together up to
 * writes_in_flight - 1 + N writes are in flight in all. */
typedef struct kl_batch_config {
    size_t writer_thread_count;                  /* default 1 */
    size_t writer_thread_queue_capacity;         /* default 0 = unbounded */
    uint64_t batch_check_interval_millis;        /* default 100 */
    uint64_t batch_flush_interval_millis;        /* default 1000 */
    uint64_t batch_flush_record_count_threshold; /* default UINT64_MAX */
    uint64_t batch_flush_size_threshold;         /* default 1000000 */
    size_t writes_in_flight;                     /* default 8: per writer
                                                    thread (see above) */
} kl_batch_config;

/* Everything an INI file can say about the store ([s3], [local], [batcher]).
 * Sections other programs own (e.g. [kafka], [parser]) are ignored here. */
typedef struct kl_config {
    kl_store_config store;
    kl_s3_config s3;
    kl_batch_config batch;
    int has_s3;       /* an [s3] section named a bucket */
    char *local_root; /* [local] root=DIR, or NULL */
} kl_config;

void kl_store_config_init(kl_store_config *c);
void kl_s3_config_init(kl_s3_config *c);
void kl_batch_config_init(kl_batch_config *c);
/* Initialises every part with its defaults. */
void kl_config_init(kl_config *c);
/* Releases the strings inside c (not c itself) and re-initialises it. */
void kl_config_free(kl_config *c);

/* Reads the [s3], [local] and [batcher] sections of an INI file into c
 * (which must have been initialised).  Values may be quoted or bare.  An
 * unknown key in those sections, a malformed number or boolean, or a
 * syntax error is KL_EINVAL naming the file, line and key. */
kl_status kl_config_load_file(kl_config *c, const char *path, kl_error *err);

/* Sets one setting by section and key, as the INI loader does (so that
 * command-line flags and config files share one parser). */
kl_status kl_config_set(kl_config *c, const char *section, const char *key, const char *value,
                        kl_error *err);

/* The INI value rule every klstore program shares: strips one pair of
 * matching surrounding quotes ("..." or '...') in place; returns the value.
 * For programs that read further sections of the same file (the bridge). */
const char *kl_config_unquote(char *v);

/* Opens the object store a URL names: a directory path, "file://PATH" or
 * "s3://BUCKET/PREFIX".  NULL means: c->local_root if set, else the S3
 * bucket if c->has_s3, else the default local directory
 * ($XDG_DATA_HOME/klstore or ~/.local/share/klstore).  For s3:// the bucket
 * and prefix from the URL override c; other S3 settings come from c.
 * c->store.object_prefix may be updated from the URL's prefix. */
kl_status kl_objstore_open(const char *url, kl_config *c, kl_objstore **out, kl_error *err);

/* The default local store directory (malloc'd; free(3)). */
char *kl_default_store_dir(void);

/* ------------------------------------------------------------------ */
/* Writer                                                              */
/* ------------------------------------------------------------------ */

typedef struct kl_writer kl_writer;

typedef struct kl_writer_ops {
    kl_status (*create_keyspace)(kl_writer *w, const char *keyspace, int64_t *created,
                                 kl_error *err);
    kl_status (*append)(kl_writer *w, const char *keyspace, const char *key,
                        const kl_insertion *ins, size_t n, kl_error *err);
    kl_status (*flush_key)(kl_writer *w, const char *keyspace, const char *key, kl_error *err);
    kl_status (*flush_all)(kl_writer *w, kl_error *err);
    kl_status (*duty_cycle)(kl_writer *w, kl_error *err);
    void (*destroy)(kl_writer *w);
} kl_writer_ops;

struct kl_writer {
    const kl_writer_ops *ops;
};

/* Creates a keyspace (writes its marker).  KL_EEXIST if it already exists.
 * *created (may be NULL) receives the creation time in ms. */
kl_status kl_create_keyspace(kl_writer *w, const char *keyspace, int64_t *created, kl_error *err);

/* Appends n records to a log, creating the key if needed.  Each record is
 * nonce-checked individually; rejected duplicates are dropped silently
 * (that is the exactly-once contract).  The store writer persists the
 * accepted records as one data object before returning; the batching
 * writer may queue them (see kl_batch_writer_new).  The keyspace marker is
 * not required (as in the reference implementation).  KL_EINVAL for a bad
 * name, a payload over KL_RECORD_MAX or the reserved nonce KL_NONCE_NONE. */
kl_status kl_append(kl_writer *w, const char *keyspace, const char *key, const kl_insertion *ins,
                    size_t n, kl_error *err);

/* Returns once everything appended to the key before the call is durable. */
kl_status kl_flush_key(kl_writer *w, const char *keyspace, const char *key, kl_error *err);
/* Returns once everything appended before the call is durable. */
kl_status kl_flush_all(kl_writer *w, kl_error *err);
/* Runs scheduled work for callers that drive time: a batching writer's
 * due flushes; a store writer's queued compactions (waits for them). */
kl_status kl_duty_cycle(kl_writer *w, kl_error *err);
/* Flushes what it can, then frees the writer.  NULL is a no-op. */
void kl_writer_destroy(kl_writer *w);

/* The store writer: the spec's S3StoreWriter over any object store.  Uses
 * store.object_prefix, max_cached_keys, the compact_* thresholds and the
 * fencing settings.  It borrows `os`.  Thread-safe; appends to the same
 * key are serialised.  Any number of store writers, in any processes, may
 * append to one key at once (see kl_store_config.fencing): each append
 * claims the key's next slot with a create-only write, checks that the
 * slot is really the tail (skipped while its view is fresh, see
 * claim_hold_ms), and only then publishes its object; a writer that loses
 * the slot tries the next one at once and, once it has one, publishes the
 * objects it lost to (nonces are checked against them), failing with
 * KL_EIO after 200 rounds lost.  KL_OK means the records are in the log
 * exactly once.  An append that fails (e.g. KL_EIO) may or may not have
 * put its records in; the next append to the key that starts with the
 * same records, in the same order, finds out instead of writing them
 * again, so repeating a failed call is exactly once even without nonces
 * (the batching writer's retries rely on it; the writer remembers the
 * failed call per key in its key cache, max_cached_keys, not across
 * processes: FORMAT.md "A failed request is not retried twice over").
 * Compaction runs on the writer's own thread, after the append returned:
 * kl_duty_cycle waits for what is queued, destroy runs it. */
kl_status kl_store_writer_new(kl_objstore *os, const kl_store_config *cfg, kl_writer **out,
                              kl_error *err);

/* What a store writer tells its observer about a data object of an append:
 *  - KL_OBJECT_ENCODED: the object is encoded and about to be claimed (or
 *    PUT): from now on it may appear in listings, before its PUBLISHED
 *    report (another writer may even publish its claim) -- or it may never
 *    appear (its slot lost, the request failed).  A retry may report the
 *    same object again.
 *  - KL_OBJECT_PUBLISHED: the object is in the log (reported once);
 *  - KL_OBJECT_DROPPED: the object will not be published: another
 *    writer's object took its slot (one that may even have its name: the
 *    same offsets, sizes and times); its records are encoded again;
 *  - KL_OBJECT_IN_AGAIN: a call that repeats a failed call (kl_store_writer_new
 *    "Failed writes, retried") starts with records that call published
 *    in this object, reported PUBLISHED then: not a new object, but the
 *    one holding this call's first records (a view that added them again
 *    takes them back).
 * Lets a front end that shows its own not-yet-listed appends (klstorefs)
 * know exactly which offsets hold them, and recognise them in a listing
 * that gets there before the report. */
typedef enum kl_publish_event {
    KL_OBJECT_ENCODED,
    KL_OBJECT_PUBLISHED,
    KL_OBJECT_DROPPED,
    KL_OBJECT_IN_AGAIN
} kl_publish_event;

/* Called by a store writer for each event above, in the thread of the
 * append, in the key's order, with the object's name fields (m is
 * borrowed).  Must not call back into the writer. */
struct kl_object_meta;
typedef void (*kl_publish_fn)(const char *keyspace, const char *key, kl_publish_event ev,
                              const struct kl_object_meta *m, void *ctx);
/* Installs fn (NULL: none) on a store writer made by kl_store_writer_new.
 * Call before the first append; not thread-safe with appends.  KL_EINVAL
 * for another kind of writer. */
kl_status kl_store_writer_observe(kl_writer *w, kl_publish_fn fn, void *ctx, kl_error *err);

/* What a store writer did since it was created, for metrics. */
typedef struct kl_writer_stats {
    uint64_t appends;           /* kl_append calls that succeeded */
    uint64_t records_written;   /* records now in the log */
    uint64_t records_duplicate; /* dropped by the nonce check (retries, replays) */
    uint64_t objects;           /* data objects published for appends */
    uint64_t append_failures;   /* kl_append calls that failed */
    /* Records copied into an object body, counted at each encoding (an
     * object encoded again after a lost slot or for a retry counts again).
     * A kl_append copies each record once; a batching writer over this
     * writer queues records encoded and they are sent from its queue,
     * copied again only when the nonce check drops one of an object's
     * records, without fencing, or when an object gathers many small
     * appends (under 4 KiB each on average). */
    uint64_t records_copied;
} kl_writer_stats;
/* A snapshot of a store writer's counters (each read atomically).
 * Thread-safe.  KL_EINVAL for another kind of writer. */
kl_status kl_store_writer_stats(kl_writer *w, kl_writer_stats *out, kl_error *err);

/* The batching writer: wraps `inner` (borrowed) and turns many small
 * appends into few large ones.  Each key is always handled by the same
 * writer thread (stable hash), so per-key order is append order.  append
 * queues and returns; a full queue blocks the caller.  Memory is bounded
 * by writer_thread_count * writer_thread_queue_capacity queued appends plus
 * one batch per key of at most batch_flush_size_threshold bytes -- four
 * times that over a store writer, for a key whose appends are queued
 * faster than the store takes them (they were queued anyway); a queued
 * record takes its payload plus 40 bytes, encoded as in a data object,
 * and over a store writer it is sent from the queue without another copy
 * (kl_writer_stats.records_copied).  Queued records are carved from
 * 256 KiB chunks, so a record still pending can keep up to one chunk
 * alive: at most 256 KiB per pending append, and a few idle chunks, 4 MiB
 * in all, are kept for reuse.  An error
 * of the inner writer is returned by the next flush_key/flush_all covering
 * that key and by the next append to that key; what failed stays pending
 * and is retried at the next flush (over a store writer, exactly once:
 * the retry finds what the failed write left, see kl_store_writer_new). */
kl_status kl_batch_writer_new(kl_writer *inner, const kl_batch_config *cfg, kl_writer **out,
                              kl_error *err);

/* ------------------------------------------------------------------ */
/* Reader                                                              */
/* ------------------------------------------------------------------ */

typedef struct kl_reader kl_reader;

typedef struct kl_reader_ops {
    kl_status (*keyspace_meta)(kl_reader *r, const char *keyspace, kl_keyspace_meta *out,
                               kl_error *err);
    kl_status (*key_meta)(kl_reader *r, const char *keyspace, const char *key, int *exists,
                          kl_key_meta *out, kl_error *err);
    kl_status (*first_page)(kl_reader *r, const char *keyspace, const char *key, kl_direction dir,
                            const kl_start *start, uint64_t page_size, kl_page *out, kl_error *err);
    kl_status (*next_page)(kl_reader *r, const char *keyspace, const char *key,
                           const char *continuation, uint64_t page_size, kl_page *out,
                           kl_error *err);
    void (*destroy)(kl_reader *r);
} kl_reader_ops;

struct kl_reader {
    const kl_reader_ops *ops;
};

/* The store reader over any object store (borrowed).  Thread-safe.
 * Locating a start position costs O(log n) LIST requests, never a full
 * listing of the key.  Reads stay correct while a writer compacts: every
 * offset is returned exactly once, in order. */
kl_status kl_store_reader_new(kl_objstore *os, const kl_store_config *cfg, kl_reader **out,
                              kl_error *err);

/* KL_ENOKEYSPACE if the keyspace has no marker. */
kl_status kl_read_keyspace_metadata(kl_reader *r, const char *keyspace, kl_keyspace_meta *out,
                                    kl_error *err);
/* *exists = 0 (and KL_OK) when the key has no data. */
kl_status kl_read_key_metadata(kl_reader *r, const char *keyspace, const char *key, int *exists,
                               kl_key_meta *out, kl_error *err);
/* page_size 0 = the configured default_page_size.  A key that does not
 * exist reads as an empty log. */
kl_status kl_read_first_page(kl_reader *r, const char *keyspace, const char *key, kl_direction dir,
                             const kl_start *start, uint64_t page_size, kl_page *out,
                             kl_error *err);
/* KL_EBADTOKEN for a malformed token or one minted for another key. */
kl_status kl_read_next_page(kl_reader *r, const char *keyspace, const char *key,
                            const char *continuation, uint64_t page_size, kl_page *out,
                            kl_error *err);
void kl_reader_destroy(kl_reader *r);

/* ------------------------------------------------------------------ */
/* Names and listings                                                  */
/* ------------------------------------------------------------------ */

/* KL_OK if `name` is a valid keyspace or key name (rules at KL_NAME_MAX);
 * otherwise KL_EINVAL with a message saying which rule it breaks.  `what`
 * ("keyspace", "key") is used in the message. */
kl_status kl_validate_name(const char *what, const char *name, kl_error *err);

/* Lists keyspaces (those created, and those with data), sorted, deduped.
 * *names is a malloc'd array of malloc'd strings; free with
 * kl_strv_free(names, n). */
kl_status kl_list_keyspaces(kl_objstore *os, const kl_store_config *cfg, char ***names, size_t *n,
                            kl_error *err);
/* Whether anything is stored under keyspace (one LIST of one name): a
 * keyspace written by a tool that made no marker still exists. */
kl_status kl_keyspace_has_objects(kl_objstore *os, const kl_store_config *cfg, const char *keyspace,
                                  int *yes, kl_error *err);
/* Lists the keys of a keyspace that have data, sorted. */
kl_status kl_list_keys(kl_objstore *os, const kl_store_config *cfg, const char *keyspace,
                       char ***names, size_t *n, kl_error *err);
void kl_strv_free(char **v, size_t n);

/* ------------------------------------------------------------------ */
/* Data objects of a key: their names parsed (FORMAT.md), for tools    */
/* that inspect a key (klstore meta) and writers' observers.           */
/* ------------------------------------------------------------------ */

typedef struct kl_object_meta {
    uint64_t first_offset, last_offset;
    int64_t min_ts, max_ts;
    kl_u128 first_nonce, next_nonce;
    uint64_t size;  /* body bytes */
    uint64_t prior; /* first offset of the previous object */
} kl_object_meta;

/* Formats the data object name suffix ("data_o...bin", no prefix) into buf;
 * returns the length, or -1 if buf is too small. */
int kl_object_name_format(const kl_object_meta *m, char *buf, size_t cap);
/* Parses "data_o...bin" (the last path component only).  KL_EBADDATA. */
kl_status kl_object_name_parse(const char *name, kl_object_meta *m, kl_error *err);

/* Lists the data objects of a key with first_offset > after (0 = from the
 * start), at most `max` of them (0 = no limit), in offset order, dropping
 * objects made redundant by a concurrent compaction.  For callers that
 * keep their own index and refresh it incrementally. */
kl_status kl_list_objects(kl_objstore *os, const kl_store_config *cfg, const char *keyspace,
                          const char *key, uint64_t after, size_t max, kl_object_meta **out,
                          size_t *n, kl_error *err);

/* ------------------------------------------------------------------ */
/* Text views: a key's log as bytes                                    */
/* ------------------------------------------------------------------ */

/* A key's records as one byte stream: each record's bytes followed by
 * '\n', in offset order, for front ends that show a log as a file
 * (klstorefs) or stream it as text.  Byte positions are exact and stable:
 * object names give every object's text size (body size - 39 per record),
 * so locating a byte costs no fetch, and a compaction never moves a byte.
 * Bytes come from the reader's object cache and readahead (one cache for
 * the page API and the views of one reader).
 *
 * A view lists its key once (lazily, or with kl_textview_refresh_many) and
 * then only what is new: reading at its end refreshes it, no more often
 * than max_age_ms.  Lines appended through kl_textview_append are readable
 * at once (read-your-writes): they are held as a pending tail at the end
 * until the writer reports the object holding them (kl_textview_report
 * from a kl_store_writer_observe callback) or a listing shows them.  A
 * listing that shows one of this view's objects before the writer reports
 * it published (the report is made after the request returns) still shows
 * each line once: the writer reported the object ENCODED before sending
 * it, so the view knows it as its own.
 *
 * Thread-safety: all calls on one view may come from any threads at once.
 * The reader must outlive its views. */
typedef struct kl_textview kl_textview;

/* A view of keyspace/key read through r, which must be a store reader
 * (kl_store_reader_new; else KL_EINVAL).  No request is made.  Free with
 * kl_textview_close. */
kl_status kl_textview_open(kl_reader *r, const char *keyspace, const char *key, kl_textview **out,
                           kl_error *err);
void kl_textview_close(kl_textview *tv);

/* Lists what is new when the last listing is older than max_age_ms (0 =
 * always).  The first call lists the whole key, later ones only from the
 * newest known object on. */
kl_status kl_textview_refresh(kl_textview *tv, int64_t max_age_ms, kl_error *err);
/* kl_textview_refresh of many views at once, up to `parallel` in flight
 * (0: 8): showing many keys (ls -l of a directory of keys) costs one round
 * trip per key, overlapped.  Best effort: a view whose listing failed
 * stays as it was (kl_textview_info.loaded == 0 if it never listed) and
 * its own next refresh reports why.  Fails only on bad arguments. */
kl_status kl_textview_refresh_many(kl_textview *const *tvs, size_t n, int64_t max_age_ms,
                                   unsigned parallel, kl_error *err);

/* Copies up to len bytes from text position pos into buf; *got is short
 * only at the end of the log.  At the end the view refreshes once (when
 * its listing is older than max_age_ms) and goes on with what is new.
 * KL_EBADDATA for a corrupt object; bytes already copied are returned with
 * KL_OK and the error comes at the next read. */
kl_status kl_textview_read(kl_textview *tv, uint64_t pos, void *buf, size_t len, int64_t max_age_ms,
                           size_t *got, kl_error *err);
/* The text position where `start` (FIRST, OFFSET, TIMESTAMP or NONCE,
 * forwards) begins: its record's first byte, or the end of the log when
 * no record qualifies.  O(log n) requests (the reader's search). */
kl_status kl_textview_seek(kl_textview *tv, const kl_start *start, uint64_t *pos, kl_error *err);

/* Appends records through w (any writer; usually a batching writer whose
 * store writer is observed, see above) and shows their text at the end of
 * the view at once.  Records should not contain '\n' if the view is to
 * show one line per record, and carry no nonce (KL_EINVAL: the view
 * counts its lines out by the objects holding them, which a duplicate
 * dropped by its nonce would upset).  On failure the pending tail keeps none of
 * the call's lines (those the writer had published show once a listing
 * does).  Through an observed store writer, a retry of a failed call shows
 * each line once as soon as the writer has reloaded the key (its first
 * requests); before that, lines the failed call had put in may show twice. */
kl_status kl_textview_append(kl_textview *tv, kl_writer *w, const kl_insertion *ins, size_t n,
                             kl_error *err);
/* The writer's report ev on object m, which holds the oldest of this
 * view's pending lines not yet reported (call it from the observer, in the
 * writer's order, for m's key). */
void kl_textview_report(kl_textview *tv, kl_publish_event ev, const kl_object_meta *m);
/* Frees the pending tail's buffer when it is empty: a writer is done, so
 * keep no burst-sized buffer for every key it touched. */
void kl_textview_pending_release(kl_textview *tv);

typedef struct kl_textview_info {
    uint64_t size;    /* text bytes: listed objects plus the pending tail */
    uint64_t pending; /* of which not yet listed or reported published */
    uint64_t objects; /* listed data objects */
    uint64_t next_offset;
    kl_u128 next_nonce;
    int64_t first_timestamp, last_timestamp; /* 0 when empty */
    int64_t mtime;                           /* newest record or local append, ms */
    int loaded;                              /* listed at least once */
    int64_t listed_ms;                       /* kl_mono_ms of the newest listing (0: never) */
} kl_textview_info;
/* What the view knows now (no request). */
void kl_textview_stat(kl_textview *tv, kl_textview_info *out);

/* The reader's object cache: lookups served from it or fetched, and what
 * it holds.  KL_EINVAL for a reader that is not a store reader. */
typedef struct kl_cache_stats {
    uint64_t hits, misses, bytes, objects;
} kl_cache_stats;
kl_status kl_reader_cache_stats(kl_reader *r, kl_cache_stats *out, kl_error *err);

/* ------------------------------------------------------------------ */
/* Small helpers shared by the front ends                              */
/* ------------------------------------------------------------------ */

/* A hash table (the library's one, for front ends too): intrusive,
 * chained, growing.  Entries embed a kl_hnode and keep their own keys, so
 * the table copies nothing and allocates nothing per entry.  The caller
 * computes the hash (kl_hash) and supplies equality at lookup; entries
 * with equal hashes are told apart by it.  The table doubles when it holds
 * as many entries as buckets; if that allocation fails the chains just get
 * longer, so insertion never fails.  Not thread-safe: each owner guards
 * its table with its own lock.  The entries belong to the caller. */
typedef struct kl_hnode {
    struct kl_hnode *next; /* chain, owned by the table */
    uint64_t hash;
} kl_hnode;
typedef struct kl_htab {
    kl_hnode **buckets;
    size_t n_buckets; /* a power of two */
    size_t count;
} kl_htab;
/* The entry of type T whose kl_hnode member `field` is at n. */
#define KL_HENTRY(n, T, field) ((T *)((char *)(n)-offsetof(T, field)))
/* 0, or -1 when out of memory.  `initial` is rounded up to a power of 2.
 * A zeroed kl_htab is an empty table too (buckets come with the first
 * insertion). */
int kl_htab_init(kl_htab *t, size_t initial);
/* Frees the buckets only. */
void kl_htab_free(kl_htab *t);
/* 0; -1 only for the first insertion into a zeroed table when out of
 * memory (a table with buckets never refuses one). */
int kl_htab_insert(kl_htab *t, kl_hnode *n, uint64_t hash);
/* n must be in t. */
void kl_htab_remove(kl_htab *t, kl_hnode *n);
/* The first entry with this hash for which eq(entry, key) is true. */
kl_hnode *kl_htab_find(const kl_htab *t, uint64_t hash,
                       int (*eq)(const kl_hnode *n, const void *key), const void *key);
/* FNV-1a of n bytes continuing from h (KL_HASH_SEED to start): stable
 * across runs, machines and versions (inode numbers and writer threads
 * are chosen with it), which hashes with random seeds are not. */
#define KL_HASH_SEED 0xcbf29ce484222325ULL
uint64_t kl_hash(const void *p, size_t n, uint64_t h);

/* Milliseconds since the Unix epoch from the system clock. */
int64_t kl_now_ms(void);
/* Milliseconds on a clock that never steps (CLOCK_MONOTONIC), for ages,
 * timeouts and rate limits: a wall-clock step must not fire or stall them.
 * Only differences between two readings mean anything.  Thread-safe. */
int64_t kl_mono_ms(void);
/* Parses a time: integer milliseconds, ISO-8601 ("2024-05-01T12:00:00Z",
 * "2024-05-01T12:00:00.123+02:00", "2024-05-01"), or relative to now
 * ("-15m", "-2h", "-1d", "-30s", "-500ms").  KL_EINVAL on anything else. */
kl_status kl_parse_time(const char *s, int64_t *ms, kl_error *err);
/* Parses a decimal u128 / u64 (no sign, no junk).  KL_EINVAL otherwise. */
kl_status kl_parse_u128(const char *s, kl_u128 *v, kl_error *err);
kl_status kl_parse_u64(const char *s, uint64_t *v, kl_error *err);
/* Formats a u128 in decimal; buf needs 40 bytes.  Returns buf. */
char *kl_u128_str(kl_u128 v, char buf[40]);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* KLSTORE_H */
