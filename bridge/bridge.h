/* bridge.h -- the running bridge: one Kafka consumer feeding one batching
 * writer, and the state shared by the files that drive it:
 *
 *   consume.c     the poll loop and what happens to each message
 *   rebalance.c   partition assignment and revocation
 *   checkpoint.c  flush, then commit: the exactly-once ordering
 *   flusher.c     the periodic flush, on a thread of its own
 *   outage.c      riding out a failing store: retry, then resume
 *   pending.c     runs of records for one key, appended together
 *   positions.c   per-partition offsets handed to the writer / committed
 *   sink.c        the store writers' life cycle
 *   stats.c       the periodic status line
 *   metrics.c     /metrics and /healthz ([metrics] listen)
 *   kafka.c       consumer creation and librdkafka callbacks
 *   failure.c     fatal errors, and a failing store (pause, back off)
 *
 * They call each other one way, never back (tests/callgraph checks it):
 * consume.c -> outage.c -> checkpoint.c -> pending.c -> failure.c, so
 * each can be read knowing only the files below it.
 *
 * Everything but the periodic flush runs on the main thread: librdkafka
 * calls rebalance_cb and error_cb from inside rd_kafka_consumer_poll, so
 * no locking is needed; the flusher thread touches only its own struct
 * (under its mutex) and the writer, which is thread-safe. */
#ifndef BR_BRIDGE_H
#define BR_BRIDGE_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "bridge_config.h"
#include "klstore.h"
#include "metrics.h"

/* Exit codes, for a supervisor (documented in --help and README.md). */
enum {
    BR_EXIT_OK = 0,         /* clean shutdown (SIGINT/SIGTERM) */
    BR_EXIT_INTERNAL = 1,   /* out of memory, bad usage of the library */
    BR_EXIT_CONFIG = 2,     /* configuration or command-line error */
    BR_EXIT_KAFKA = 3,      /* fatal Kafka error */
    BR_EXIT_STORE = 4,      /* fatal store error, or unflushed at shutdown */
    BR_EXIT_BAD_MESSAGE = 5 /* on_error=stop and a record could not be parsed */
};

/* Waits bounded by these when the bridge must not leave before it tried. */
#define BR_REVOKE_FLUSH_TIMEOUT_MS 20000 /* rebalance / shutdown */
#define BR_COMMIT_TIMEOUT_MS       10000
#define BR_BACKOFF_MIN_MS          500
#define BR_BACKOFF_MAX_MS          30000

/* One assigned partition. */
typedef struct br_partition {
    char *topic;
    int32_t partition;
    int64_t next;      /* offset after the last record handed to the
                          writer (or skipped); -1 = none yet */
    int64_t committed; /* last offset we committed; -1 = none */
    int64_t resume_at; /* paused: first offset received and dropped */
    uint64_t records;  /* handed to the writer since the assignment */
    uint64_t consumed; /* messages received since the assignment */
} br_partition;

typedef struct br_positions {
    br_partition *v;
    size_t n;
    br_partition *last; /* lookup cache: messages come in runs */
} br_positions;

/* Records parsed but not yet appended: a run for one keyspace/key. */
#define BR_PENDING_MAX   4096
#define BR_PENDING_BYTES (1u << 20)
typedef struct br_pending {
    char keyspace[KL_NAME_MAX + 1];
    char key[KL_NAME_MAX + 1];
    rd_kafka_message_t **msgs; /* owned until the writer accepts */
    kl_insertion *ins;         /* point into msgs' payloads */
    size_t n, bytes;
} br_pending;

/* The store side: batching writer over store writer over object store. */
typedef struct br_sink {
    kl_config *cfg;
    kl_objstore *os;
    kl_writer *store_w;
    kl_writer *batch_w;
    kl_writer_stats retired; /* totals of the store writers closed so far */
} br_sink;

/* The flush thread (flusher.c).  busy is the main thread's own flag: a
 * flush was handed over and its result not yet collected. */
typedef struct br_flusher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, stop, requested, done, busy;
    kl_writer *w;
    kl_status status;
    kl_error err;
    long long ms;
} br_flusher;

typedef struct br_stats {
    uint64_t records, bytes, skipped, nonce_records;
    uint64_t flushes, flush_failures, commits, commit_failures;
    long long last_flush_ms;  /* duration of the last flush */
    long long last_commit_ms; /* duration of the last commit */
    long long last_commit_at; /* monotonic time of the last success */
    uint64_t window_records;  /* at the last status line */
    long long window_start;
} br_stats;

/* The endpoint (metrics.c).  Bridge state belongs to the main thread, so
 * the main thread renders its part into `text` (at most once a second,
 * br_metrics_tick) and the endpoint's thread serves that, under mu, plus
 * what it may read itself: the histograms, the commit time and the store's
 * counters. */
typedef struct br_metrics {
    km_server *server;
    pthread_mutex_t mu;
    char *text; /* under mu */
    long long rendered_at;
    km_histogram flush_seconds, commit_seconds;
    _Atomic long long last_commit_at; /* monotonic ms; health */
    long long health_ms;              /* no commit for this long: 503 */
    kl_objstore *os;
} br_metrics;

typedef struct br_bridge {
    br_config *cfg;
    rd_kafka_t *rk;
    rd_kafka_queue_t *commitq; /* results of our commits */
    uintptr_t commit_seq;
    br_sink sink;
    br_positions pos;
    br_pending pending;
    br_flusher flusher;
    rd_kafka_topic_partition_list_t *flush_snap; /* what the running
                                                    flush makes durable */
    /* Store outage: consumption paused; a refused run stays in pending. */
    int paused;
    long long paused_since, retry_at, backoff_ms;
    unsigned failed_attempts;
    /* Life cycle. */
    volatile sig_atomic_t *signals; /* SIGINT/SIGTERM received */
    int exit_code;                  /* first fatal reason; 0 = running */
    long long next_checkpoint, next_stats;
    br_stats stats;
    br_metrics metrics;
} br_bridge;

/* consume.c */
int br_run(br_bridge *b);
/* Parses one message of partition p (assigned) into the pending run;
 * takes ownership of m. */
void br_deliver(br_bridge *b, br_partition *p, rd_kafka_message_t *m);

/* pending.c */
int br_pending_init(br_pending *r);
void br_pending_free(br_pending *r);
void br_pending_discard(br_pending *r);
int br_pending_fits(const br_pending *r, const char *keyspace, const char *key, size_t len);
void br_pending_add(br_pending *r, const char *keyspace, const char *key, rd_kafka_message_t *m,
                    const kl_insertion *ins);
/* Appends the run; 0 = accepted (positions advanced), -1 = refused (the
 * run stays; consumption paused, outage.c retries) or fatal
 * (b->exit_code). */
int br_pending_submit(br_bridge *b);
/* After the run was appended by other means: advance positions, release. */
void br_pending_accepted(br_bridge *b);

/* kafka.c: consumer creation (takes conf), subscription, close. */
int br_kafka_open(br_bridge *b, rd_kafka_conf_t *conf, char *err, size_t errlen);
int br_kafka_subscribe(br_bridge *b);
void br_kafka_close(br_bridge *b);

/* rebalance.c */
void br_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                     rd_kafka_topic_partition_list_t *parts, void *opaque);

/* checkpoint.c: flush, then commit what the flush made durable. */
kl_status br_flush(br_bridge *b, kl_error *err);
int br_commit(br_bridge *b, rd_kafka_topic_partition_list_t *offsets);
/* Starts a flush in the background (unless one is running) after taking
 * the snapshot of positions it covers.  -1 = the pending run was refused
 * (consumption paused; outage.c retries). */
int br_checkpoint(br_bridge *b);
/* Collects the background flush's result (waiting for it if `wait`):
 * commits the snapshot after a success; a failure that retrying cannot
 * fix is fatal, a retryable one pauses consumption if `pause`.  Returns 1
 * while it still runs, -1 after a failure, else 0. */
int br_checkpoint_collect(br_bridge *b, int wait, int pause);
/* Retries the flush until it works or `deadline` (monotonic ms) passes or
 * a second signal arrives; commits after a successful flush.  0 = done. */
int br_checkpoint_until(br_bridge *b, long long deadline);

/* flusher.c */
int br_flusher_start(br_flusher *f);
void br_flusher_stop(br_flusher *f);
void br_flusher_begin(br_flusher *f, kl_writer *w);
/* 1 and the result if the flush handed over has finished (waits for it
 * if `wait`); 0 if none was handed over or it still runs. */
int br_flusher_result(br_flusher *f, int wait, kl_status *st, kl_error *e, long long *ms);

/* outage.c: while paused, retries the flush when the backoff is over,
 * and resumes consumption once it works. */
void br_outage_tick(br_bridge *b);
void br_outage_reset(br_bridge *b);

/* failure.c */
/* Logs the error; its code becomes the exit code unless one was set. */
void br_fatal(br_bridge *b, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int br_store_error_retryable(kl_status st);
/* A write or flush failed: fatal unless retryable; else consumption is
 * paused (or stays paused) and the next attempt is scheduled. */
void br_store_failed(br_bridge *b, kl_status st, const kl_error *e);
/* Pauses (1) or resumes (0) every assigned partition. */
void br_pause_all(br_bridge *b, int pause);

/* positions.c */
int br_positions_set(br_positions *p, const rd_kafka_topic_partition_list_t *l);
void br_positions_clear(br_positions *p);
br_partition *br_positions_find(br_positions *p, const char *topic, int32_t part);
/* Partitions with records handed since their last commit (NULL if none). */
rd_kafka_topic_partition_list_t *br_positions_uncommitted(const br_positions *p);
void br_positions_committed(br_positions *p, const rd_kafka_topic_partition_list_t *l);

/* sink.c */
void br_sink_init(br_sink *s, kl_config *cfg, kl_objstore *os);
kl_status br_sink_open(br_sink *s, kl_error *err);
void br_sink_close(br_sink *s);

/* stats.c */
void br_stats_init(br_stats *s);
void br_stats_log(br_bridge *b);
/* Messages behind the high watermark librdkafka last saw; -1 = unknown. */
int64_t br_partition_lag(br_bridge *b, const br_partition *p);

/* metrics.c: the endpoint, when [metrics] listen is set.  start binds and
 * serves (-1 and a message when the address cannot be bound); tick
 * re-renders the main thread's part when it is a second old. */
int br_metrics_start(br_bridge *b, kl_objstore *os, char *err, size_t errlen);
void br_metrics_tick(br_bridge *b);
void br_metrics_stop(br_bridge *b);

#endif
