/* main.c -- klstore-kafka-bridge: command line, signals, start-up and
 * shutdown, exit codes.
 *
 *   klstore-kafka-bridge [--check] CONFIG.ini
 *
 * Consumes Kafka topics through a consumer group and appends every record
 * to a klstore log, exactly once (see README.md).  The work is done by the
 * files listed in bridge.h; this file only wires them together. */
#define _GNU_SOURCE
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"
#include "log.h"

#define PROG "klstore-kafka-bridge"

static volatile sig_atomic_t signals_received;

static void on_signal(int sig)
{
    (void)sig;
    signals_received++;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: " PROG " [--check] CONFIG.ini\n"
                 "       " PROG " --help | --version\n"
                 "\n"
                 "Consumes Kafka topics in a consumer group and appends each record to a\n"
                 "klstore log (S3 or a local directory), exactly once: every\n"
                 "offset_commit_interval_seconds, before partitions are revoked and on\n"
                 "SIGINT/SIGTERM the batching writer is flushed, and only after a successful\n"
                 "flush are the offsets of the records written committed.  Records\n"
                 "re-delivered after a crash are dropped by nonce checking (use a nonce\n"
                 "parser such as RecordOffset and one key per partition).\n"
                 "\n"
                 "  --check     validate CONFIG.ini (all sections, librdkafka keys, parsers)\n"
                 "              and exit without connecting to anything\n"
                 "  --help      this text\n"
                 "  --version   versions of the bridge, libklstore and librdkafka\n"
                 "\n"
                 "CONFIG.ini sections: [s3] (or [local] root=DIR), [batcher], [kafka],\n"
                 "[parser], [metrics] (listen=HOST:PORT serves /metrics and /healthz); see\n"
                 "klstore.ini(5) and example.ini.  [kafka] keys other than topic,\n"
                 "offset_commit_interval_seconds and stats_interval_seconds go to librdkafka\n"
                 "unchanged.  [parser] on_error=stop (default) stops at a record the parsers\n"
                 "cannot handle, on_error=skip logs it and goes on.\n"
                 "\n"
                 "Exit codes:\n"
                 "  0  clean shutdown after SIGINT/SIGTERM (everything flushed and committed)\n"
                 "  1  internal error (out of memory)\n"
                 "  2  configuration or command-line error\n"
                 "  3  fatal Kafka error (e.g. authorization refused, fatal client error)\n"
                 "  4  fatal store error, or shutdown while the store was still failing\n"
                 "     (nothing uncommitted is lost: it is consumed again after a restart)\n"
                 "  5  stopped at a record the parsers cannot handle (on_error=stop); offsets\n"
                 "     are committed up to that record, not past it\n"
                 "A second SIGINT/SIGTERM stops waiting for a failing store.\n");
}

/* Runs of records are copied into blocks of up to a few MiB (batching
 * writer queue, batch, encoded object).  glibc would mmap and munmap each
 * such block, paying page faults on every byte copied -- at high rates
 * the bridge's main cost.  Keeping them on the heap reuses the pages. */
static void tune_malloc(void)
{
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Opens the object store.  A bad [s3]/[local] setting is a configuration
 * error; anything else (a directory we cannot create) a store error. */
static int open_store(br_config *cfg, kl_objstore **os)
{
    kl_error e = {0};
    kl_status st = kl_objstore_open(NULL, &cfg->store, os, &e);
    if (st == KL_OK) return 0;
    br_log(BR_ERROR, "cannot open the store: %s", e.msg);
    return st == KL_EINVAL ? BR_EXIT_CONFIG : BR_EXIT_STORE;
}

/* After a store error that retrying cannot fix the writer may have dropped
 * records.  Flushing or committing anything more could write later records
 * past them (nonce checking would then reject the re-delivered ones) or
 * commit past them, so leave as a crash would: nothing more is written or
 * committed, and Kafka re-delivers from the last commit. */
static void crash_out(void)
{
    br_log(BR_ERROR,
           "exiting at once with code %d: nothing more is written or "
           "committed",
           BR_EXIT_STORE);
    _exit(BR_EXIT_STORE);
}

static int run(br_config *cfg)
{
    char msg[2048];
    kl_objstore *os = NULL;
    br_bridge b;
    int rc;
    memset(&b, 0, sizeof b);
    b.cfg = cfg;
    b.signals = &signals_received;
    br_stats_init(&b.stats);
    if (br_pending_init(&b.pending)) {
        br_log(BR_ERROR, "out of memory");
        return BR_EXIT_INTERNAL;
    }
    if ((rc = open_store(cfg, &os))) {
        br_pending_free(&b.pending);
        return rc;
    }
    br_sink_init(&b.sink, &cfg->store, os);
    if (br_flusher_start(&b.flusher)) {
        br_log(BR_ERROR, "cannot start the flush thread");
        kl_os_destroy(os);
        br_pending_free(&b.pending);
        return BR_EXIT_INTERNAL;
    }
    if (br_kafka_open(&b, br_config_take_kafka_conf(cfg), msg, sizeof msg)) {
        br_log(BR_ERROR, "%s: cannot create the Kafka consumer: %s", cfg->path, msg);
        br_flusher_stop(&b.flusher);
        kl_os_destroy(os);
        br_pending_free(&b.pending);
        return BR_EXIT_CONFIG;
    }
    br_log(BR_INFO, "store: %s", os->ops->describe(os));
    if (br_metrics_start(&b, os, msg, sizeof msg)) {
        br_log(BR_ERROR, "%s: %s", cfg->path, msg);
        b.exit_code = BR_EXIT_CONFIG;
    } else if (br_kafka_subscribe(&b) == 0) {
        br_run(&b);
    }
    if (b.exit_code == BR_EXIT_STORE) crash_out();
    if (b.exit_code == 0)
        br_log(BR_INFO, "signal received: flushing, committing and leaving the group");
    br_kafka_close(&b); /* collects the last background flush */
    br_flusher_stop(&b.flusher);
    if (b.flush_snap) /* no revocation collected it: no commit */
        rd_kafka_topic_partition_list_destroy(b.flush_snap);
    br_metrics_stop(&b); /* before what it reads goes away */
    br_sink_close(&b.sink);
    br_positions_clear(&b.pos);
    br_pending_free(&b.pending);
    kl_os_destroy(os);
    br_log(BR_INFO, "exiting with code %d (%llu records written, %llu skipped)", b.exit_code,
           (unsigned long long)b.stats.records, (unsigned long long)b.stats.skipped);
    return b.exit_code;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int check = 0;
    char err[2048], desc[2048];
    br_config cfg;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--version")) {
            printf(PROG " %s (libklstore %s, librdkafka %s)\n", KL_VERSION, KL_VERSION,
                   rd_kafka_version_str());
            return 0;
        }
        if (!strcmp(argv[i], "--check"))
            check = 1;
        else if (argv[i][0] == '-' || path) {
            fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return BR_EXIT_CONFIG;
        } else
            path = argv[i];
    }
    if (!path) {
        usage(stderr);
        return BR_EXIT_CONFIG;
    }
    br_log_install();
    install_signals();
    tune_malloc();
    if (br_config_load(path, &cfg, err, sizeof err)) {
        br_log(BR_ERROR, "configuration error: %s", err);
        br_config_free(&cfg);
        return BR_EXIT_CONFIG;
    }
    br_config_describe(&cfg, desc, sizeof desc);
    if (check) {
        printf("%s: configuration OK: %s\n", path, desc);
        br_config_free(&cfg);
        return 0;
    }
    br_log(BR_INFO, PROG " %s (librdkafka %s) starting: %s", KL_VERSION, rd_kafka_version_str(),
           desc);
    int rc = run(&cfg);
    br_config_free(&cfg);
    return rc;
}
