/* harness.h -- helpers for the bridge's end-to-end suites: a private mock
 * Kafka cluster per test (kl-mock-broker), producing with kcat, running
 * klstore-kafka-bridge as a child process, and checking the store against
 * the topic.
 *
 * The paths of the three programs come from compile definitions
 * (BRIDGE_BIN, MOCK_BROKER_BIN, KCAT_BIN) set in tests/bridge/CMakeLists.txt.
 * Everything listens on 127.0.0.1 only; every process started here is
 * stopped by its pid. */
#ifndef BR_HARNESS_H
#define BR_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "klstore.h"

typedef struct ht_mock {
    pid_t pid;
    int to_fd;   /* its stdin: commands */
    int from_fd; /* its stdout: BOOTSTRAP= line, then OK/ERR lines */
    char bootstrap[600];
} ht_mock;

/* Starts a mock cluster with `brokers` brokers and the topic
 * NAME:PARTITIONS (NULL for none).  Asserts on failure. */
void ht_mock_start(ht_mock *m, int brokers, const char *topic_spec);
/* Sends one command line; returns 0 when the mock answered OK. */
int ht_mock_cmd(ht_mock *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ht_mock_stop(ht_mock *m);

/* A fresh temporary directory (test workspace), removed by ht_rmtree. */
void ht_tmpdir(char *buf, size_t cap);
void ht_rmtree(const char *dir);
void ht_write_file(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The whole file, NUL-terminated (malloc'd), or NULL. */
char *ht_read_file(const char *path);
int ht_file_contains(const char *path, const char *needle);
/* Number of occurrences of needle in the file. */
int ht_file_count(const char *path, const char *needle);

/* Runs argv (NULL-terminated) to completion with stdout/stderr appended to
 * log (or /dev/null); returns the exit status (128+signal if killed). */
int ht_run(const char *const *argv, const char *log, int timeout_ms);
/* Starts argv in the background, stdout+stderr appended to log. */
pid_t ht_spawn(const char *const *argv, const char *log);
/* Waits up to timeout_ms; exit status, 128+signal, or -1 on timeout. */
int ht_wait(pid_t pid, int timeout_ms);
/* SIGKILL + reap (for cleanup paths). */
void ht_kill(pid_t pid);
/* Kills every process this test started that is still running (use as
 * the suite's .fini, so that a failed assertion leaves no orphans). */
void ht_cleanup(void);

/* Produces lines "KEY:PAYLOAD" from file to topic with kcat, optionally
 * with one header "name=value" (NULL for none) on every message. */
void ht_produce_file(const ht_mock *m, const char *topic, const char *file, const char *header);
/* Writes n lines "k<i>:<prefix><i>" (i from first) to file. */
void ht_make_data(const char *file, const char *prefix, long first, long n);

/* Starts the bridge on a config file; its stderr goes to log. */
pid_t ht_bridge_start(const char *ini, const char *log);
/* Waits until the log contains needle (polling); 0 if it did in time. */
int ht_wait_log(const char *log, const char *needle, int timeout_ms);

/* Total records in a keyspace (sum over its keys of next_offset - 1). */
uint64_t ht_store_count(kl_objstore *os, const char *prefix, const char *keyspace);
/* Waits until ht_store_count reaches want; returns the last count. */
uint64_t ht_wait_count(kl_objstore *os, const char *prefix, const char *keyspace, uint64_t want,
                       int timeout_ms);

/* The exactly-once check: dumps the topic with kcat (partition, offset,
 * payload) and asserts that key "<partition>" of the keyspace holds
 * exactly the partition's records, in order, record i with nonce = the
 * Kafka offset and the same payload.  Returns the number of records. */
uint64_t ht_check_exactly_once(const ht_mock *m, const char *topic, kl_objstore *os,
                               const char *prefix, const char *keyspace, const char *workdir);

/* A store to test against: the directory `dir`, or (s3 = 1) the RGW of
 * KL_S3_* under a fresh prefix.  `ini` receives the store's INI section
 * ([local] or [s3]) for the bridge's configuration. */
typedef struct ht_store {
    kl_objstore *os;
    char prefix[128];
    char ini[1024];
} ht_store;
/* Returns 0, or -1 when s3 was asked for and KL_S3_ENDPOINT is unset. */
int ht_store_open(ht_store *s, int s3, const char *dir);
void ht_store_close(ht_store *s);

/* Monotonic milliseconds. */
long long ht_now_ms(void);
void ht_sleep_ms(long ms);

#endif
