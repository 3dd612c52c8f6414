/*
 * kl-mock-broker - a standalone in-process Kafka "cluster" for klstore tests.
 *
 * Why: the Kafka->store bridge must be tested against something that speaks
 * the real Kafka wire protocol over TCP, but a real Kafka needs a JVM and
 * seconds-to-minutes of startup.  librdkafka ships a mock cluster
 * (rdkafka_mock.h) implementing Produce, Fetch, Metadata, ListOffsets,
 * consumer groups and offset commits on 127.0.0.1 listeners.  This program
 * just hosts one and lets a test drive it and inject faults.
 *
 * Usage:
 *   kl-mock-broker [--brokers N] [--topic NAME:PARTITIONS]...
 *                  [--port-file FILE] [--cmd-fifo FIFO]
 *
 * On start it prints exactly one line "BOOTSTRAP=host:port,..." on stdout
 * (and writes the bootstrap string to --port-file, atomically via rename).
 * It then reads line commands from stdin (and from --cmd-fifo, if given),
 * answering each with one line "OK" or "ERR <reason>" on stdout:
 *
 *   topic NAME PARTITIONS       create topic (replication factor 1)
 *   down BROKER_ID              broker stops answering / drops connections
 *   up BROKER_ID                broker back up
 *   errors APIKEY COUNT ERRCODE next COUNT requests of APIKEY (0=Produce,
 *                               1=Fetch, 8=OffsetCommit, ...) fail with
 *                               ERRCODE (numeric rd_kafka_resp_err_t)
 *   leader TOPIC PARTITION BROKER_ID  move partition leadership (-1: none;
 *                               an unknown TOPIC gets auto-created)
 *   quit                        exit
 *
 * EOF on stdin is not a shutdown request (tests may run it in the background
 * with </dev/null); it then runs until SIGTERM/SIGINT or "quit" on the FIFO.
 * Exit status 0 on clean shutdown, 1 on startup failure, 2 on usage errors.
 *
 * Mock limits (librdkafka 2.0.2) worth knowing when writing tests:
 *  - each partition keeps only ~5 MiB (~45k 100-byte records); older
 *    batches are silently dropped (low watermark moves, consumers asking for
 *    them get OFFSET_OUT_OF_RANGE).  Use enough partitions.
 *  - the first JoinGroup of a consumer group waits a fixed 3 s; a new member
 *    joining a group whose previous member just left waits
 *    session.timeout.ms - 1 s (44 s by default): use a small
 *    session.timeout.ms (e.g. 3000 with heartbeat.interval.ms=500) in tests.
 *  - "down" closes the broker's listener and connections (clients see
 *    connection refused); data is kept and "up" restores it.
 */
#define _POSIX_C_SOURCE 200809L /* strtok_r, sigaction, O_CLOEXEC */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_TOPICS   64
#define LINE_MAX_LEN 1024

struct input {
    int fd;       /* -1 when closed */
    size_t len;   /* bytes buffered in line[] */
    int skipping; /* discarding the rest of an overlong line */
    char line[LINE_MAX_LEN];
};

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;
    (void)!write(sig_pipe[1], &c, 1);
    errno = saved;
}

static void usage(void)
{
    fprintf(stderr, "usage: kl-mock-broker [--brokers N] [--topic NAME:PARTITIONS]"
                    "... [--port-file FILE] [--cmd-fifo FIFO]\n");
    exit(2);
}

static void reply(const char *err)
{
    if (err)
        printf("ERR %s\n", err);
    else
        printf("OK\n");
    fflush(stdout);
}

/* Parse a base-10 integer that must consume the whole string. */
static int parse_int(const char *s, long *out)
{
    char *end;
    if (!s || !*s) return -1;
    errno = 0;
    *out = strtol(s, &end, 10);
    return (errno || *end) ? -1 : 0;
}

static const char *create_topic(rd_kafka_mock_cluster_t *mc, const char *name, const char *parts)
{
    long n;
    rd_kafka_resp_err_t err;
    if (!name || parse_int(parts, &n) || n < 1 || n > 100000) return "usage: topic NAME PARTITIONS";
    err = rd_kafka_mock_topic_create(mc, name, (int)n, 1);
    return err ? rd_kafka_err2str(err) : NULL;
}

static const char *push_errors(rd_kafka_mock_cluster_t *mc, const char *key, const char *count,
                               const char *code)
{
    long k, n, e;
    rd_kafka_resp_err_t *errs;
    if (parse_int(key, &k) || parse_int(count, &n) || parse_int(code, &e) || k < 0 || k > 32767 ||
        n < 1 || n > 1000000)
        return "usage: errors APIKEY COUNT ERRCODE";
    if (!(errs = malloc((size_t)n * sizeof(*errs)))) return "out of memory";
    for (long i = 0; i < n; i++) errs[i] = (rd_kafka_resp_err_t)e;
    rd_kafka_mock_push_request_errors_array(mc, (int16_t)k, (size_t)n, errs);
    free(errs);
    return NULL;
}

static const char *set_broker(rd_kafka_mock_cluster_t *mc, const char *id, int up)
{
    long b;
    rd_kafka_resp_err_t err;
    if (parse_int(id, &b)) return up ? "usage: up BROKER_ID" : "usage: down BROKER_ID";
    err = up ? rd_kafka_mock_broker_set_up(mc, (int32_t)b)
             : rd_kafka_mock_broker_set_down(mc, (int32_t)b);
    return err ? rd_kafka_err2str(err) : NULL;
}

static const char *set_leader(rd_kafka_mock_cluster_t *mc, const char *topic, const char *part,
                              const char *id)
{
    long p, b;
    rd_kafka_resp_err_t err;
    if (!topic || parse_int(part, &p) || parse_int(id, &b))
        return "usage: leader TOPIC PARTITION BROKER_ID";
    err = rd_kafka_mock_partition_set_leader(mc, topic, (int32_t)p, (int32_t)b);
    return err ? rd_kafka_err2str(err) : NULL;
}

/* Execute one command line. Returns 1 if the program should quit. */
static int run_command(rd_kafka_mock_cluster_t *mc, char *line)
{
    char *argv[5] = {0};
    int argc = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r", &save); t && argc < 5;
         t = strtok_r(NULL, " \t\r", &save))
        argv[argc++] = t;

    if (argc == 0) return 0; /* blank line: no answer */
    if (!strcmp(argv[0], "quit")) {
        reply(NULL);
        return 1;
    }
    if (!strcmp(argv[0], "topic"))
        reply(argc == 3 ? create_topic(mc, argv[1], argv[2]) : "usage: topic NAME PARTITIONS");
    else if (!strcmp(argv[0], "down") || !strcmp(argv[0], "up"))
        reply(argc == 2 ? set_broker(mc, argv[1], argv[0][0] == 'u') : "usage: down|up BROKER_ID");
    else if (!strcmp(argv[0], "errors"))
        reply(argc == 4 ? push_errors(mc, argv[1], argv[2], argv[3])
                        : "usage: errors APIKEY COUNT ERRCODE");
    else if (!strcmp(argv[0], "leader"))
        reply(argc == 4 ? set_leader(mc, argv[1], argv[2], argv[3])
                        : "usage: leader TOPIC PARTITION BROKER_ID");
    else
        reply("unknown command");
    return 0;
}

/* Read what is available on in->fd and run every complete line.
 * Returns 1 on "quit". Closes in->fd on EOF/error. */
static int drain_input(rd_kafka_mock_cluster_t *mc, struct input *in)
{
    ssize_t r = read(in->fd, in->line + in->len, sizeof(in->line) - 1 - in->len);
    char *nl;
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
    if (r <= 0) { /* EOF: run an unterminated last line, keep serving */
        int quit = 0;
        in->line[in->len] = '\0';
        if (in->len > 0 && !in->skipping) quit = run_command(mc, in->line);
        in->len = 0;
        close(in->fd);
        in->fd = -1;
        return quit;
    }
    in->len += (size_t)r;
    in->line[in->len] = '\0';
    while ((nl = memchr(in->line, '\n', in->len))) {
        size_t used = (size_t)(nl - in->line) + 1;
        *nl = '\0';
        if (!in->skipping && run_command(mc, in->line)) return 1;
        in->skipping = 0;
        memmove(in->line, nl + 1, in->len - used);
        in->len -= used;
    }
    if (in->len == sizeof(in->line) - 1) { /* overlong line: drop it */
        if (!in->skipping) reply("line too long");
        in->skipping = 1;
        in->len = 0;
    }
    return 0;
}

/* Wait for commands or a signal; returns when it is time to shut down. */
static void serve(rd_kafka_mock_cluster_t *mc, struct input *ins, int n)
{
    for (;;) {
        struct pollfd pfd[3];
        int i;
        pfd[0].fd = sig_pipe[0];
        pfd[0].events = POLLIN;
        for (i = 0; i < n; i++) {
            pfd[i + 1].fd = ins[i].fd; /* -1 is ignored */
            pfd[i + 1].events = POLLIN;
        }
        if (poll(pfd, (nfds_t)n + 1, -1) < 0) {
            if (errno == EINTR) continue;
            perror("kl-mock-broker: poll");
            return;
        }
        if (pfd[0].revents) return;
        for (i = 0; i < n; i++)
            if (ins[i].fd >= 0 && pfd[i + 1].revents && drain_input(mc, &ins[i])) return;
    }
}

static int write_port_file(const char *path, const char *bootstraps)
{
    char tmp[4096];
    FILE *f;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (!(f = fopen(tmp, "w"))) return -1;
    fprintf(f, "%s\n", bootstraps);
    if (fclose(f) != 0) return -1;
    return rename(tmp, path);
}

static void setup_signals(void)
{
    struct sigaction sa;
    if (pipe(sig_pipe) != 0) {
        perror("kl-mock-broker: pipe");
        exit(1);
    }
    fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static rd_kafka_t *new_handle(void)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    /* The handle is only bookkeeping for the mock cluster; keep its own
     * client side quiet (it has no bootstrap servers). */
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) fprintf(stderr, "kl-mock-broker: rd_kafka_new: %s\n", errstr);
    return rk;
}

int main(int argc, char **argv)
{
    long brokers = 1;
    const char *port_file = NULL, *fifo = NULL;
    char *topics[MAX_TOPICS];
    int ntopics = 0, nin = 0, i;
    struct input ins[2];
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    const char *bootstraps;

    for (i = 1; i < argc; i++) {
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val) usage();
        if (!strcmp(argv[i], "--brokers")) {
            if (parse_int(val, &brokers) || brokers < 1 || brokers > 1000) usage();
        } else if (!strcmp(argv[i], "--topic") && ntopics < MAX_TOPICS &&
                   strrchr(val, ':')) /* ':' is illegal in names */
            topics[ntopics++] = argv[i + 1];
        else if (!strcmp(argv[i], "--port-file"))
            port_file = val;
        else if (!strcmp(argv[i], "--cmd-fifo"))
            fifo = val;
        else
            usage();
        i++;
    }

    memset(ins, 0, sizeof(ins));
    ins[nin++].fd = STDIN_FILENO;
    /* O_RDWR keeps the FIFO open across writers, so no EOF between
     * "echo cmd > fifo" invocations and open() does not block. */
    if (fifo) {
        if ((ins[nin].fd = open(fifo, O_RDWR | O_CLOEXEC)) < 0) {
            perror("kl-mock-broker: --cmd-fifo");
            return 1;
        }
        nin++;
    }

    setup_signals();
    if (!(rk = new_handle())) return 1;
    if (!(mc = rd_kafka_mock_cluster_new(rk, (int)brokers))) {
        fprintf(stderr, "kl-mock-broker: mock cluster creation "
                        "failed\n");
        rd_kafka_destroy(rk);
        return 1;
    }

    for (i = 0; i < ntopics; i++) {
        char *colon = strrchr(topics[i], ':');
        const char *err;
        *colon = '\0';
        if ((err = create_topic(mc, topics[i], colon + 1))) {
            fprintf(stderr, "kl-mock-broker: topic %s: %s\n", topics[i], err);
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 1;
        }
    }

    bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    if (port_file && write_port_file(port_file, bootstraps) != 0) {
        perror("kl-mock-broker: --port-file");
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("BOOTSTRAP=%s\n", bootstraps);
    fflush(stdout);

    serve(mc, ins, nin);

    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
