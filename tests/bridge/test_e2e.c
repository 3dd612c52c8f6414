/* test_e2e.c -- klstore-kafka-bridge end to end, against the librdkafka
 * mock cluster over TCP on 127.0.0.1: the spec's example configuration,
 * exactly-once ingest across kill -9 and restarts, restart from the
 * committed offsets, a consumer group of two bridges, a broker outage, a
 * store outage (local: chattr +i; S3: a cuttable proxy in front of RGW),
 * SIGTERM during a store outage, bad messages under both on_error
 * policies, and Kafka refusing access (exit code 3).  The _s3 variants need the RGW of
 * scripts/test.sh (KL_S3_*) and are skipped without it.
 *
 * Every test has its own mock cluster, workspace and consumer group.  The
 * exactly-once check (harness.c) compares each store key with its Kafka
 * partition record by record: nonce = Kafka offset, same payload, nothing
 * missing, nothing twice. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "../common/net.h"
#include "../common/shell.h"
#include "../common/spec_example.h"
#include "proxy.h"

TestSuite(bridge_e2e, .fini = ht_cleanup);

/* A test's workspace: mock cluster, store, files. */
typedef struct ws {
    char dir[256], ini[300], data[300], root[300];
    ht_mock mock;
    ht_store store;
} ws;

static void ws_open(ws *w, const char *topic_spec, int s3)
{
    memset(w, 0, sizeof *w);
    ht_tmpdir(w->dir, sizeof w->dir);
    snprintf(w->ini, sizeof w->ini, "%s/bridge.ini", w->dir);
    snprintf(w->data, sizeof w->data, "%s/data.txt", w->dir);
    snprintf(w->root, sizeof w->root, "%s/store", w->dir);
    if (ht_store_open(&w->store, s3, w->root) != 0) {
        ht_rmtree(w->dir);
        cr_skip_test("KL_S3_ENDPOINT etc. are unset (scripts/test.sh starts Ceph RGW)");
    }
    ht_mock_start(&w->mock, 1, topic_spec);
}

static void ws_close(ws *w)
{
    ht_mock_stop(&w->mock);
    ht_store_close(&w->store);
    ht_rmtree(w->dir);
}

/* The bridge configuration the tests share: small intervals so that
 * flushes and commits happen often during a test, and a short session
 * timeout so that the mock's rebalances are quick. */
static void write_ini(ws *w, const char *parser_extra)
{
    ht_write_file(w->ini,
                  "%s"
                  "[batcher]\nbatch_flush_interval_millis=100\nbatch_check_interval_millis=20\n"
                  "[kafka]\ntopic=\"inbound\"\noffset_commit_interval_seconds=1\n"
                  "stats_interval_seconds=2\ngroup.id=\"g\"\nbootstrap.servers=\"%s\"\n"
                  "auto.offset.reset=earliest\nsession.timeout.ms=6000\n"
                  "heartbeat.interval.ms=500\n"
                  "[parser]\n%s",
                  w->store.ini, w->mock.bootstrap,
                  parser_extra ? parser_extra
                               : "nonce_parser=\"RecordOffset\"\n"
                                 "keyspace_parser=\"Static(ks)\"\n"
                                 "key_parser=\"RecordPartition\"\n");
}

static void produce(ws *w, const char *prefix, long first, long n, const char *header)
{
    ht_make_data(w->data, prefix, first, n);
    ht_produce_file(&w->mock, "inbound", w->data, header);
}

static void stop_bridge(pid_t pid, const char *log)
{
    /* Before its start-up line it may not have its signal handlers yet. */
    cr_assert_eq(ht_wait_log(log, "starting:", 10000), 0);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int rc = ht_wait(pid, 30000);
    if (rc < 0) ht_kill(pid);
    cr_assert_eq(rc, 0, "bridge exited with %d after SIGTERM (log %s)", rc, log);
}

/* The usual start: a workspace on `topics` with the default config, a
 * running bridge logging to log (cap bytes), and n records produced with
 * `prefix` and seen in the store. */
static pid_t start_ingesting(ws *w, const char *topics, const char *prefix, long n, char *log,
                             size_t cap)
{
    ws_open(w, topics, 0);
    write_ini(w, NULL);
    snprintf(log, cap, "%s/bridge.log", w->dir);
    pid_t pid = ht_bridge_start(w->ini, log);
    produce(w, prefix, 0, n, NULL);
    cr_assert_eq(ht_wait_count(w->store.os, "", "ks", n, 60000), n);
    return pid;
}

static uint64_t count(ws *w, const char *keyspace)
{
    return ht_store_count(w->store.os, w->store.prefix, keyspace);
}

/* ------------------------------------------------------------------ */

static void spec_example(int s3)
{
    ws w;
    char log[300], local[400] = "";
    ws_open(&w, "inbound:4", s3);
    if (s3) {
        /* object_prefix keeps the run apart from others in the bucket; the
         * session tokens of the example would be sent to RGW, which has
         * no such session: they are the "addresses" of credentials. */
        ht_write_file(w.ini, KL_SPEC_EXAMPLE, getenv("KL_S3_ENDPOINT"), getenv("KL_S3_BUCKET"),
                      getenv("KL_S3_ACCESS_KEY"), getenv("KL_S3_SECRET_KEY"), "", "", "",
                      w.mock.bootstrap, "");
        FILE *f = fopen(w.ini, "a");
        fprintf(f, "[s3]\nobject_prefix=\"%s\"\n", w.store.prefix);
        fclose(f);
    } else {
        snprintf(local, sizeof local, "\n[local]\nroot=%s\n", w.root);
        ht_write_file(w.ini, KL_SPEC_EXAMPLE, "http://localhost:4566", "my-bucket", "test", "test",
                      "test", "test", "", w.mock.bootstrap, local);
    }
    snprintf(log, sizeof log, "%s/bridge.log", w.dir);
    const char *check[] = {BRIDGE_BIN, "--check", w.ini, NULL};
    cr_assert_eq(ht_run(check, log, 10000), 0, "--check refused the spec's example");

    produce(&w, "spec-", 0, 20000, NULL);
    pid_t pid = ht_bridge_start(w.ini, log);
    uint64_t got = ht_wait_count(w.store.os, w.store.prefix, "my_keyspace", 20000, 60000);
    cr_assert_eq(got, 20000, "store holds %llu of 20000 records", (unsigned long long)got);
    stop_bridge(pid, log);
    cr_assert_eq(
        ht_check_exactly_once(&w.mock, "inbound", w.store.os, w.store.prefix, "my_keyspace", w.dir),
        20000);
    cr_assert(ht_file_contains(log, "exiting with code 0 (20000 records written"));
    ws_close(&w);
}

Test(bridge_e2e, spec_example_local, .timeout = 150) { spec_example(0); }
Test(bridge_e2e, spec_example_s3, .timeout = 150) { spec_example(1); }

/* ------------------------------------------------------------------ */

/* kill -9 at random moments during a large ingest, restart, and finally
 * compare the store with the topic.  Small batches (many objects, each
 * fsync'd or PUT) keep the ingest going for seconds, so the kills land
 * mid-ingest: between a flush and the commit after it, in the middle of
 * a batch, during compaction. */
static void kill9(int s3)
{
    enum { ROUNDS = 3, FIRST = 160000, CHUNK = 40000 };
    ws w;
    char log[300];
    long produced = 0;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    ws_open(&w, "inbound:8", s3);
    write_ini(&w, NULL);
    FILE *f = fopen(w.ini, "a"); /* [parser] is last: re-open [batcher] */
    fprintf(f, "[batcher]\nbatch_flush_record_count_threshold=250\n");
    fclose(f);
    cr_log_info("kill9: seed %u", seed);
    srand(seed);
    produce(&w, "kill-", produced, FIRST, NULL);
    produced += FIRST;
    for (int round = 0; round < ROUNDS; round++) {
        snprintf(log, sizeof log, "%s/bridge-%d.log", w.dir, round);
        pid_t pid = ht_bridge_start(w.ini, log);
        cr_assert_eq(ht_wait_log(log, "partitions assigned", 30000), 0,
                     "round %d: no assignment (log %s)", round, log);
        /* Kill when the store reaches a random point of what is left to
         * ingest (time alone misses: the S3 ingest is over in a second). */
        uint64_t start = count(&w, "ks");
        uint64_t target = start + (uint64_t)rand() % ((uint64_t)produced - start + 1);
        long long t0 = ht_now_ms();
        uint64_t now_count = start;
        while (now_count < target && ht_now_ms() - t0 < 20000) {
            ht_sleep_ms(10);
            now_count = count(&w, "ks");
        }
        ht_kill(pid);
        cr_log_info("kill9: round %d killed %lld ms after the assignment with %llu of "
                    "%ld records stored (target %llu)",
                    round, ht_now_ms() - t0, (unsigned long long)now_count, produced,
                    (unsigned long long)target);
        produce(&w, "kill-", produced, CHUNK, NULL);
        produced += CHUNK;
    }
    snprintf(log, sizeof log, "%s/bridge-final.log", w.dir);
    pid_t pid = ht_bridge_start(w.ini, log);
    cr_assert_eq(ht_wait_log(log, "partitions assigned", 30000), 0);
    uint64_t got = ht_wait_count(w.store.os, w.store.prefix, "ks", (uint64_t)produced, 120000);
    cr_assert_eq(got, (uint64_t)produced, "store holds %llu of %ld records",
                 (unsigned long long)got, produced);
    stop_bridge(pid, log);
    cr_assert_eq(ht_check_exactly_once(&w.mock, "inbound", w.store.os, w.store.prefix, "ks", w.dir),
                 (uint64_t)produced);
    ws_close(&w);
}

Test(bridge_e2e, kill9_exactly_once_local, .timeout = 240) { kill9(0); }
Test(bridge_e2e, kill9_exactly_once_s3, .timeout = 240) { kill9(1); }

/* A clean shutdown flushes and commits: the next run starts where the
 * previous one ended and hands the writer only the new records. */
Test(bridge_e2e, restart_resumes_from_commit, .timeout = 120)
{
    ws w;
    char log[300];
    pid_t pid = start_ingesting(&w, "inbound:4", "rs-", 10000, log, sizeof log);
    stop_bridge(pid, log);
    cr_assert(ht_file_contains(log, "exiting with code 0 (10000 records written"));
    produce(&w, "rs-", 10000, 1000, NULL);
    pid = ht_bridge_start(w.ini, log);
    cr_assert_eq(ht_wait_count(w.store.os, "", "ks", 11000, 60000), 11000);
    stop_bridge(pid, log);
    cr_assert(ht_file_contains(log, "exiting with code 0 (1000 records written"),
              "the second run re-read committed records (log %s)", log);
    cr_assert_eq(ht_check_exactly_once(&w.mock, "inbound", w.store.os, "", "ks", w.dir), 11000);
    ws_close(&w);
}

/* ------------------------------------------------------------------ */

/* Two bridges in one consumer group share 8 partitions; the second joins
 * mid-ingest (a rebalance with records in flight, and commits the mock
 * rejects during it).  Each partition's key is written by one process at
 * a time, and the store ends up equal to the topic. */
/* Two bridges of one group on a topic of 2n partitions: a starts alone
 * (and ingests `before` records), then b joins and each gets n. */
static void two_bridges(ws *w, int n, long before, pid_t *a, char *log_a, pid_t *b, char *log_b)
{
    char spec[32], all[48], half[48];
    snprintf(spec, sizeof spec, "inbound:%d", 2 * n);
    snprintf(all, sizeof all, "partitions assigned (%d)", 2 * n);
    snprintf(half, sizeof half, "partitions assigned (%d)", n);
    ws_open(w, spec, 0);
    write_ini(w, NULL);
    snprintf(log_a, 300, "%s/a.log", w->dir);
    snprintf(log_b, 300, "%s/b.log", w->dir);
    *a = ht_bridge_start(w->ini, log_a);
    cr_assert_eq(ht_wait_log(log_a, all, 30000), 0);
    if (before) produce(w, "grp-", 0, before, NULL);
    *b = ht_bridge_start(w->ini, log_b);
    cr_assert_eq(ht_wait_log(log_b, half, 40000), 0, "second bridge got no partitions");
    cr_assert_eq(ht_wait_log(log_a, half, 10000), 0,
                 "first bridge did not give up half of the partitions");
}

Test(bridge_e2e, consumer_group_two_bridges, .timeout = 180)
{
    ws w;
    char log_a[300], log_b[300];
    pid_t a, b;
    two_bridges(&w, 4, 40000, &a, log_a, &b, log_b);
    produce(&w, "grp-", 40000, 40000, NULL);
    uint64_t got = ht_wait_count(w.store.os, "", "ks", 80000, 60000);
    cr_assert_eq(got, 80000, "store holds %llu of 80000", (unsigned long long)got);
    stop_bridge(b, log_b);
    stop_bridge(a, log_a);
    cr_assert_eq(ht_check_exactly_once(&w.mock, "inbound", w.store.os, "", "ks", w.dir), 80000);
    ws_close(&w);
}

/* Two bridges in one group; one is stopped (SIGSTOP) past
 * session.timeout.ms with records consumed but not committed, its
 * partitions move to the other, more records arrive, and then it is
 * resumed and flushes what it held.  The store's slot claims put its late
 * objects after the new owner's, and nonce checking at the true tail
 * drops what the new owner already stored: every partition's log is the
 * topic exactly once. */
Test(bridge_e2e, paused_bridge_resumes_after_its_partitions_moved, .timeout = 240)
{
    ws w;
    char log_a[300], log_b[300];
    pid_t a, b;
    two_bridges(&w, 2, 0, &a, log_a, &b, log_b);
    produce(&w, "pz-", 0, 20000, NULL);
    cr_assert_eq(ht_wait_count(w.store.os, "", "ks", 20000, 60000), 20000);
    /* A holds records it consumed but has not flushed when it stops. */
    produce(&w, "pz-", 20000, 20000, NULL);
    ht_sleep_ms(50);
    cr_assert_eq(kill(a, SIGSTOP), 0);
    cr_assert_eq(ht_wait_log(log_b, "partitions assigned (4)", 60000), 0,
                 "the stopped bridge's partitions did not move");
    produce(&w, "pz-", 40000, 20000, NULL);
    uint64_t got = ht_wait_count(w.store.os, "", "ks", 60000, 60000);
    cr_assert_eq(got, 60000, "store holds %llu of 60000", (unsigned long long)got);
    int revoked = ht_file_count(log_a, "partitions revoked");
    cr_assert_eq(kill(a, SIGCONT), 0);
    /* A flushes what it held, loses its assignment, rejoins. */
    for (int i = 0; i < 600 && ht_file_count(log_a, "partitions revoked") == revoked; i++)
        ht_sleep_ms(100);
    cr_assert_gt(ht_file_count(log_a, "partitions revoked"), revoked, "A never noticed");
    produce(&w, "pz-", 60000, 20000, NULL);
    got = ht_wait_count(w.store.os, "", "ks", 80000, 60000);
    cr_assert_eq(got, 80000, "store holds %llu of 80000", (unsigned long long)got);
    stop_bridge(b, log_b);
    stop_bridge(a, log_a);
    cr_assert_eq(ht_check_exactly_once(&w.mock, "inbound", w.store.os, "", "ks", w.dir), 80000);
    ws_close(&w);
}

/* ------------------------------------------------------------------ */

/* The only broker goes down for a while: the bridge logs it, keeps
 * running, and carries on when the broker is back. */
Test(bridge_e2e, broker_down_and_back, .timeout = 180)
{
    ws w;
    char log[300];
    pid_t pid = start_ingesting(&w, "inbound:4", "bd-", 20000, log, sizeof log);
    cr_assert_eq(ht_mock_cmd(&w.mock, "down 1"), 0);
    ht_sleep_ms(6000);
    cr_assert_eq(ht_wait(pid, 0), -1, "bridge exited while the broker was down");
    cr_assert_eq(ht_mock_cmd(&w.mock, "up 1"), 0);
    produce(&w, "bd-", 20000, 20000, NULL);
    uint64_t got = ht_wait_count(w.store.os, "", "ks", 40000, 90000);
    cr_assert_eq(got, 40000, "store holds %llu of 40000 after the broker came back",
                 (unsigned long long)got);
    cr_assert(ht_file_contains(log, "WARN kafka:"), "the outage was not logged");
    stop_bridge(pid, log);
    cr_assert_eq(ht_check_exactly_once(&w.mock, "inbound", w.store.os, "", "ks", w.dir), 40000);
    ws_close(&w);
}

/* Kafka refuses access (the mock answers a Fetch with
 * TOPIC_AUTHORIZATION_FAILED): the bridge stops with exit code 3 after
 * flushing and committing what it had, and a restart goes on from there
 * without writing anything twice. */
Test(bridge_e2e, kafka_access_refused_exits_3, .timeout = 180)
{
    ws w;
    char log[300];
    pid_t pid = start_ingesting(&w, "inbound:2", "auth-", 1000, log, sizeof log);
    cr_assert_eq(ht_mock_cmd(&w.mock, "errors 1 1 29"), 0); /* one Fetch */
    int rc = ht_wait(pid, 30000);
    if (rc < 0) ht_kill(pid);
    cr_assert_eq(rc, 3, "exit code %d, expected 3 (log %s)", rc, log);
    cr_assert(ht_file_contains(log, "Kafka refuses access"));
    cr_assert(ht_file_contains(log, "flushed and committed before revocation"));
    produce(&w, "auth-", 1000, 500, NULL);
    pid = ht_bridge_start(w.ini, log);
    cr_assert_eq(ht_wait_count(w.store.os, "", "ks", 1500, 60000), 1500);
    stop_bridge(pid, log);
    cr_assert_eq(ht_check_exactly_once(&w.mock, "inbound", w.store.os, "", "ks", w.dir), 1500);
    ws_close(&w);
}

/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */

/* The sum of a metric's samples (all label sets) at the bridge's endpoint,
 * or -1 when the endpoint does not answer. */
static double metric(int port, const char *name)
{
    char cmd[512];
    snprintf(
        cmd, sizeof cmd,
        "curl -sf -m 5 http://127.0.0.1:%d/metrics | awk -v n='%s' "
        "'index($1, n) == 1 && (length($1) == length(n) || substr($1, length(n) + 1, 1) == \"{\") "
        "{ s += $2; seen = 1 } END { if (seen) print s; else print -1 }'",
        port, name);
    char *out = kl_sh(cmd, NULL);
    double v = atof(out);
    free(out);
    return v;
}

/* Polls until the metric reaches at least want (or timeout); returns it. */
static double wait_metric(int port, const char *name, double want, int timeout_ms)
{
    double v = -1;
    for (long long end = ht_now_ms() + timeout_ms; ht_now_ms() < end; ht_sleep_ms(100))
        if ((v = metric(port, name)) >= want) break;
    return v;
}

static char *healthz(int port)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "curl -s -m 5 -w ' %%{http_code}' http://127.0.0.1:%d/healthz", port);
    return kl_sh(cmd, NULL);
}

/* chattr +i makes the store's directories refuse new files even to root
 * (chmod would not): writes fail with EPERM until it is lifted. */
static int set_immutable(const char *root, int on)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "chattr -R %ci '%s' 2>/dev/null", on ? '+' : '-', root);
    return system(cmd);
}

/* [metrics]: what a scrape shows while the bridge works -- every record
 * consumed, appended and written, lag 0, commits -- and, after a kill -9
 * before any commit, a second run that shows each re-delivered record
 * de-duplicated (and writes none).  /healthz turns 503 while the store is
 * down (no commit for health_commit_intervals intervals) and 200 after. */
Test(bridge_e2e, metrics_show_progress_deduplication_and_health, .timeout = 240)
{
    ws w;
    ws_open(&w, "inbound:2", 0);
    int port = kl_free_port();
    char log[300], metrics[160];
    snprintf(log, sizeof log, "%s/bridge.log", w.dir);
    snprintf(metrics, sizeof metrics, "[metrics]\nlisten=127.0.0.1:%d\nhealth_commit_intervals=2\n",
             port);
    /* Run 1: commits far apart, so the kill lands before any commit. */
    write_ini(&w, NULL);
    char *ini = ht_read_file(w.ini), *slow = NULL;
    cr_assert(asprintf(&slow, "%s%s", metrics, ini) > 0);
    char *at = strstr(slow, "offset_commit_interval_seconds=1\n");
    cr_assert_not_null(at);
    memcpy(at, "offset_commit_interval_seconds=9", 32); /* keeps the length */
    ht_write_file(w.ini, "%s", slow);
    pid_t pid = ht_bridge_start(w.ini, log);
    produce(&w, "m-", 0, 1000, NULL);
    cr_assert_eq(ht_wait_count(w.store.os, "", "ks", 1000, 60000), 1000);
    cr_assert_eq(wait_metric(port, "klstore_bridge_records_written_total", 1000, 10000), 1000);
    cr_assert_eq(metric(port, "klstore_bridge_records_consumed_total"), 1000);
    cr_assert_eq(metric(port, "klstore_bridge_records_appended_total"), 1000);
    cr_assert_eq(metric(port, "klstore_bridge_records_deduplicated_total"), 0);
    cr_assert_eq(metric(port, "klstore_bridge_consumer_lag"), 0);
    cr_assert_eq(metric(port, "klstore_bridge_assigned_partitions"), 2);
    cr_assert_eq(metric(port, "klstore_bridge_commits_total"), 0);
    cr_assert_gt(metric(port, "klstore_store_requests_total"), 0);
    char *h = healthz(port);
    cr_assert_str_eq(h, "ok\n 200");
    free(h);
    ht_kill(pid); /* SIGKILL: nothing committed */
    ht_wait(pid, 10000);

    /* Run 2: everything is re-delivered and dropped by nonce checking. */
    ht_write_file(w.ini, "%s%s", metrics, ini);
    pid = ht_bridge_start(w.ini, log);
    cr_assert_eq(wait_metric(port, "klstore_bridge_records_deduplicated_total", 1000, 60000), 1000,
                 "log %s", log);
    cr_assert_eq(metric(port, "klstore_bridge_records_written_total"), 0);
    cr_assert_eq(count(&w, "ks"), 1000);
    cr_assert_geq(wait_metric(port, "klstore_bridge_commits_total", 1, 20000), 1);
    cr_assert_geq(metric(port, "klstore_bridge_flush_seconds_count"), 1);
    cr_assert_geq(metric(port, "klstore_bridge_commit_seconds_count"), 1);

    /* The store goes read-only: no commit for 2 intervals means 503. */
    if (set_immutable(w.root, 1) == 0) {
        produce(&w, "m-", 1000, 100, NULL);
        char *got = NULL;
        for (long long end = ht_now_ms() + 30000; ht_now_ms() < end; ht_sleep_ms(200)) {
            free(got);
            got = healthz(port);
            if (strstr(got, " 503")) break;
        }
        set_immutable(w.root, 0);
        cr_assert(strstr(got, "no successful offset commit for ") == got && strstr(got, " 503"),
                  "%s", got);
        free(got);
        cr_assert_eq(ht_wait_count(w.store.os, "", "ks", 1100, 60000), 1100);
        got = NULL;
        for (long long end = ht_now_ms() + 30000; ht_now_ms() < end; ht_sleep_ms(200)) {
            free(got);
            got = healthz(port);
            if (strstr(got, " 200")) break;
        }
        cr_assert_str_eq(got, "ok\n 200");
        free(got);
    }
    stop_bridge(pid, log);
    cr_assert_eq(ht_check_exactly_once(&w.mock, "inbound", w.store.os, "", "ks", w.dir), 1100);
    free(slow);
    free(ini);
    ws_close(&w);
}

Test(bridge_e2e, store_down_and_back_local, .timeout = 180)
{
    ws w;
    char log[300];
    pid_t pid = start_ingesting(&w, "inbound:4", "sd-", 20000, log, sizeof log);
    if (set_immutable(w.root, 1) != 0) {
        ht_kill(pid);
        ws_close(&w);
        cr_skip_test("chattr +i is not supported here");
    }
    produce(&w, "sd-", 20000, 20000, NULL);
    int failed = ht_wait_log(log, "store write failed", 20000);
    if (failed == 0) ht_wait_log(log, "store still failing", 10000);
    ht_sleep_ms(1500);
    int alive = ht_wait(pid, 0) == -1;
    uint64_t during = count(&w, "ks");
    set_immutable(w.root, 0);
    cr_assert_eq(failed, 0, "the store failure was not logged (log %s)", log);
    cr_assert(alive, "bridge exited during the store outage");
    cr_assert_lt(during, 40000, "records were written during the outage?");
    cr_assert_eq(ht_wait_log(log, "store recovered", 60000), 0);
    uint64_t got = ht_wait_count(w.store.os, "", "ks", 40000, 90000);
    cr_assert_eq(got, 40000, "store holds %llu of 40000 after the outage", (unsigned long long)got);
    stop_bridge(pid, log);
    cr_assert_eq(ht_check_exactly_once(&w.mock, "inbound", w.store.os, "", "ks", w.dir), 40000);
    ws_close(&w);
}

/* SIGTERM while the store is down: the bridge cannot flush, so it must
 * not commit; it exits with 4 (a second signal stops its retries), and a
 * restart once the store is back stores everything exactly once. */
Test(bridge_e2e, shutdown_during_store_outage, .timeout = 180)
{
    ws w;
    char log[300];
    pid_t pid = start_ingesting(&w, "inbound:4", "so-", 10000, log, sizeof log);
    if (set_immutable(w.root, 1) != 0) {
        ht_kill(pid);
        ws_close(&w);
        cr_skip_test("chattr +i is not supported here");
    }
    produce(&w, "so-", 10000, 10000, NULL);
    int failed = ht_wait_log(log, "store write failed", 20000);
    kill(pid, SIGTERM);
    ht_sleep_ms(1500);
    kill(pid, SIGTERM);
    int rc = ht_wait(pid, 30000);
    if (rc < 0) ht_kill(pid);
    set_immutable(w.root, 0);
    cr_assert_eq(failed, 0, "the store failure was not logged (log %s)", log);
    cr_assert_eq(rc, 4, "exit code %d, expected 4 (log %s)", rc, log);
    cr_assert(ht_file_contains(log, "shutting down with unflushed records"));
    pid = ht_bridge_start(w.ini, log);
    uint64_t got = ht_wait_count(w.store.os, "", "ks", 20000, 90000);
    cr_assert_eq(got, 20000, "store holds %llu of 20000 after the restart",
                 (unsigned long long)got);
    stop_bridge(pid, log);
    cr_assert_eq(ht_check_exactly_once(&w.mock, "inbound", w.store.os, "", "ks", w.dir), 20000);
    ws_close(&w);
}

/* S3 down and back: a cuttable TCP proxy between the bridge and RGW
 * (stopping RGW would lose its in-memory data). */
Test(bridge_e2e, store_down_and_back_s3, .timeout = 180)
{
    ws w;
    char log[300], host[64] = "";
    int port = 0;
    ws_open(&w, "inbound:4", 1);
    cr_assert_eq(sscanf(getenv("KL_S3_ENDPOINT"), "http://%63[^:]:%d", host, &port), 2,
                 "KL_S3_ENDPOINT is not http://HOST:PORT");
    ht_proxy *proxy = ht_proxy_start(host, port);
    cr_assert_not_null(proxy);
    /* Through the proxy, with short timeouts and few retries so that the
     * outage reaches the bridge quickly. */
    char *endpoint = strstr(w.store.ini, "endpoint=");
    char rest[1024];
    snprintf(rest, sizeof rest, "%s", strchr(endpoint, '\n') + 1);
    snprintf(endpoint, sizeof w.store.ini - (size_t)(endpoint - w.store.ini),
             "endpoint=\"http://127.0.0.1:%d\"\nconnect_timeout_ms=1000\n"
             "request_timeout_ms=3000\nmax_retries=1\n%s",
             ht_proxy_port(proxy), rest);
    write_ini(&w, NULL);
    snprintf(log, sizeof log, "%s/bridge.log", w.dir);
    pid_t pid = ht_bridge_start(w.ini, log);
    produce(&w, "s3d-", 0, 20000, NULL);
    cr_assert_eq(ht_wait_count(w.store.os, w.store.prefix, "ks", 20000, 60000), 20000);
    ht_proxy_cut(proxy, 1);
    produce(&w, "s3d-", 20000, 20000, NULL);
    int failed = ht_wait_log(log, "store write failed", 30000);
    ht_sleep_ms(3000);
    int alive = ht_wait(pid, 0) == -1;
    ht_proxy_cut(proxy, 0);
    cr_assert_eq(failed, 0, "the S3 failure was not logged (log %s)", log);
    cr_assert(alive, "bridge exited during the S3 outage");
    cr_assert_eq(ht_wait_log(log, "store recovered", 90000), 0);
    uint64_t got = ht_wait_count(w.store.os, w.store.prefix, "ks", 40000, 90000);
    cr_assert_eq(got, 40000, "store holds %llu of 40000 after the outage", (unsigned long long)got);
    stop_bridge(pid, log);
    cr_assert_eq(ht_check_exactly_once(&w.mock, "inbound", w.store.os, w.store.prefix, "ks", w.dir),
                 40000);
    ht_proxy_stop(proxy);
    ws_close(&w);
}

/* ------------------------------------------------------------------ */

static const char HEADER_PARSERS[] = "keyspace_parser=RecordHeader(ks)\nkey_parser=Static(k)\n"
                                     "nonce_parser=RecordOffset\n";

/* One partition: 5 good records, one without the keyspace header, 5 good. */
static void produce_with_bad(ws *w, int also_bad_name)
{
    produce(w, "good-", 0, 5, "ks=a");
    produce(w, "nohdr-", 5, 1, NULL);
    if (also_bad_name) produce(w, "badname-", 6, 1, "ks=../etc");
    produce(w, "good-", 10, 5, "ks=a");
}

Test(bridge_e2e, bad_message_stop, .timeout = 120)
{
    ws w;
    char log[300], parsers[512];
    ws_open(&w, "inbound:1", 0);
    snprintf(parsers, sizeof parsers, "%son_error=stop\n", HEADER_PARSERS);
    write_ini(&w, parsers);
    snprintf(log, sizeof log, "%s/bridge.log", w.dir);
    produce_with_bad(&w, 0);
    pid_t pid = ht_bridge_start(w.ini, log);
    int rc = ht_wait(pid, 30000);
    if (rc < 0) ht_kill(pid);
    cr_assert_eq(rc, 5, "exit code %d, expected 5 (stopped on a bad message)", rc);
    cr_assert(ht_file_contains(log, "offset 5: the record has no header 'ks'"));
    cr_assert_eq(count(&w, "a"), 5);
    /* Committed up to the bad record, not past it: the restart stops on
     * the same record and writes nothing twice. */
    pid = ht_bridge_start(w.ini, log);
    rc = ht_wait(pid, 60000);
    if (rc < 0) ht_kill(pid);
    cr_assert_eq(rc, 5);
    cr_assert_eq(ht_file_count(log, "offset 5: the record has no header 'ks'"), 2);
    cr_assert_eq(count(&w, "a"), 5);
    ws_close(&w);
}

Test(bridge_e2e, bad_message_skip, .timeout = 120)
{
    ws w;
    char log[300], parsers[512];
    ws_open(&w, "inbound:1", 0);
    snprintf(parsers, sizeof parsers, "%son_error=skip\n",
             "keyspace_parser=RecordHeader(ks)\nkey_parser=Static(k)\n"
             "nonce_parser=RecordOffset\n");
    write_ini(&w, parsers);
    snprintf(log, sizeof log, "%s/bridge.log", w.dir);
    produce_with_bad(&w, 1);
    pid_t pid = ht_bridge_start(w.ini, log);
    cr_assert_eq(ht_wait_count(w.store.os, "", "a", 10, 60000), 10);
    cr_assert_eq(ht_wait_log(log, "skipping inbound[0] offset 6", 10000), 0);
    cr_assert(ht_file_contains(log, "skipping inbound[0] offset 5 (on_error=skip, 1 "
                                    "skipped so far): the record has no header 'ks'"));
    cr_assert(ht_file_contains(log, "2 skipped so far"));
    stop_bridge(pid, log);
    cr_assert(ht_file_contains(log, "(10 records written, 2 skipped)"));
    ws_close(&w);
}

/* ------------------------------------------------------------------ */
/* A hostile S3 server (tests/s3/stub_http.c): a listing that never ends
 * is a store error retrying cannot fix, so the bridge stops within
 * seconds with exit code 4, the misbehaviour named, nothing committed. */
#include "../s3/stub_http.h"

static __thread char endless_body[256];

/* Writes succeed; a listing never ends. */
static void endless_listing(void *ud, int n, const stub_req *rq, stub_resp *rs)
{
    rs->status = 200;
    if (strcmp(rq->method, "PUT") == 0 || strcmp(rq->method, "HEAD") == 0) {
        rs->headers = "ETag: \"0123456789abcdef0123456789abcdef\"\r\n";
    } else if (strcmp(rq->method, "DELETE") == 0) {
        rs->status = 204;
    } else if (strstr(rq->target, "list-type=2")) {
        snprintf(endless_body, sizeof endless_body,
                 "<ListBucketResult><IsTruncated>true"
                 "</IsTruncated><NextContinuationToken>t%d</NextContinuationToken>"
                 "</ListBucketResult>",
                 n);
        rs->body = endless_body;
    } else {
        rs->status = 404;
        rs->body = "<Error><Code>NoSuchKey</Code></Error>";
    }
}

Test(bridge_e2e, hostile_s3_stops_the_bridge_in_seconds, .timeout = 120)
{
    ws w;
    char log[300];
    ws_open(&w, "inbound:2", 0);
    stub *s = stub_start(endless_listing, NULL);
    snprintf(w.store.ini, sizeof w.store.ini,
             "[s3]\nbucket_name=\"bkt\"\nendpoint=\"http://127.0.0.1:%d\"\npath_style=true\n"
             "use_default_credentials=false\naccess_key=\"AKID\"\nsecret_key=\"SECRET\"\n"
             "max_retries=1\nrequest_timeout_ms=3000\n",
             stub_port(s));
    write_ini(&w, NULL);
    produce(&w, "h-", 0, 100, NULL);
    snprintf(log, sizeof log, "%s/bridge.log", w.dir);
    pid_t pid = ht_bridge_start(w.ini, log);
    int rc = ht_wait(pid, 30000);
    if (rc == -1) ht_kill(pid);
    stub_stop(s);
    cr_assert_eq(rc, 4, "bridge exit %d (log %s)", rc, log);
    cr_assert(ht_file_contains(log, "never ends"), "log %s does not name the misbehaviour", log);
    ws_close(&w);
}
