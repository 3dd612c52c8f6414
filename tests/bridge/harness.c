/* harness.c -- see harness.h.  Assertions use Criterion, so a broken
 * precondition fails the test with a message instead of hanging it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

extern char **environ;

long long ht_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ht_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

void ht_tmpdir(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/klbridge-test-XXXXXX");
    cr_assert_not_null(mkdtemp(buf), "mkdtemp: %s", strerror(errno));
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void ht_rmtree(const char *dir)
{
    if (dir && *dir) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void ht_write_file(const char *path, const char *fmt, ...)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    cr_assert_eq(fclose(f), 0);
}

char *ht_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2048) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

int ht_file_count(const char *path, const char *needle)
{
    char *s = ht_read_file(path);
    int n = 0;
    for (char *p = s; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    free(s);
    return n;
}

int ht_file_contains(const char *path, const char *needle)
{
    return ht_file_count(path, needle) > 0;
}

void ht_make_data(const char *file, const char *prefix, long first, long n)
{
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    for (long i = first; i < first + n; i++) fprintf(f, "k%ld:%s%ld\n", i, prefix, i);
    cr_assert_eq(fclose(f), 0);
}

/* ------------------------------------------------------------------ */
/* Processes                                                           */
/* ------------------------------------------------------------------ */

/* Children started by this test process, for ht_cleanup. */
static pid_t children[64];
static int n_children;

static void remember(pid_t pid)
{
    for (int i = 0; i < n_children; i++)
        if (children[i] <= 0) {
            children[i] = pid;
            return;
        }
    if (n_children < 64) children[n_children++] = pid;
}

static void forget(pid_t pid)
{
    for (int i = 0; i < n_children; i++)
        if (children[i] == pid) children[i] = 0;
}

void ht_cleanup(void)
{
    for (int i = 0; i < n_children; i++)
        if (children[i] > 0 && kill(children[i], SIGKILL) == 0) waitpid(children[i], NULL, 0);
    n_children = 0;
}

pid_t ht_spawn(const char *const *argv, const char *log)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "spawn %s: %s", argv[0], strerror(rc));
    remember(pid);
    return pid;
}

int ht_wait(pid_t pid, int timeout_ms)
{
    long long end = ht_now_ms() + timeout_ms;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) forget(pid);
        if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0 || ht_now_ms() >= end) return -1;
        ht_sleep_ms(20);
    }
}

void ht_kill(pid_t pid)
{
    if (pid > 0 && kill(pid, SIGKILL) == 0) waitpid(pid, NULL, 0);
    forget(pid);
}

int ht_run(const char *const *argv, const char *log, int timeout_ms)
{
    pid_t pid = ht_spawn(argv, log);
    int rc = ht_wait(pid, timeout_ms);
    if (rc < 0) {
        ht_kill(pid);
        cr_assert_fail("%s did not finish within %d ms", argv[0], timeout_ms);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Mock broker                                                         */
/* ------------------------------------------------------------------ */

/* One line from the mock's stdout (blocking, bounded by timeout). */
static int read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t n = 0;
    long long end = ht_now_ms() + timeout_ms;
    while (n + 1 < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        long long left = end - ht_now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) return -1;
        char c;
        if (read(fd, &c, 1) != 1) return -1;
        if (c == '\n') break;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return 0;
}

void ht_mock_start(ht_mock *m, int brokers, const char *topic_spec)
{
    int in[2], out[2];
    char nb[16];
    cr_assert_eq(pipe(in), 0);
    cr_assert_eq(pipe(out), 0);
    snprintf(nb, sizeof nb, "%d", brokers);
    const char *argv[] = {MOCK_BROKER_BIN, "--brokers", nb, topic_spec ? "--topic" : NULL,
                          topic_spec,      NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    int rc = posix_spawn(&m->pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "spawn mock broker: %s", strerror(rc));
    remember(m->pid);
    close(in[0]);
    close(out[1]);
    m->to_fd = in[1];
    m->from_fd = out[0];
    char line[512];
    cr_assert_eq(read_line(m->from_fd, line, sizeof line, 10000), 0,
                 "mock broker printed no BOOTSTRAP line");
    cr_assert(!strncmp(line, "BOOTSTRAP=", 10), "mock broker said: %s", line);
    snprintf(m->bootstrap, sizeof m->bootstrap, "%s", line + 10);
}

int ht_mock_cmd(ht_mock *m, const char *fmt, ...)
{
    char cmd[512], line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd - 1, fmt, ap);
    va_end(ap);
    cmd[n++] = '\n';
    if (write(m->to_fd, cmd, (size_t)n) != n) return -1;
    if (read_line(m->from_fd, line, sizeof line, 10000)) return -1;
    return strcmp(line, "OK") == 0 ? 0 : -1;
}

void ht_mock_stop(ht_mock *m)
{
    if (m->pid <= 0) return;
    ht_mock_cmd(m, "quit");
    close(m->to_fd);
    close(m->from_fd);
    if (ht_wait(m->pid, 5000) < 0) ht_kill(m->pid);
    m->pid = 0;
}

void ht_produce_file(const ht_mock *m, const char *topic, const char *file, const char *header)
{
    const char *argv[] = {KCAT_BIN, "-b", m->bootstrap,         "-P",   "-t", topic, "-K:",
                          "-l",     file, header ? "-H" : NULL, header, NULL};
    int rc = ht_run(argv, NULL, 120000);
    cr_assert_eq(rc, 0, "kcat -P failed with %d", rc);
}

/* ------------------------------------------------------------------ */
/* Bridge                                                              */
/* ------------------------------------------------------------------ */

pid_t ht_bridge_start(const char *ini, const char *log)
{
    const char *argv[] = {BRIDGE_BIN, ini, NULL};
    return ht_spawn(argv, log);
}

int ht_wait_log(const char *log, const char *needle, int timeout_ms)
{
    long long end = ht_now_ms() + timeout_ms;
    while (ht_now_ms() < end) {
        if (ht_file_contains(log, needle)) return 0;
        ht_sleep_ms(100);
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Store                                                               */
/* ------------------------------------------------------------------ */

int ht_store_open(ht_store *s, int s3, const char *dir)
{
    kl_error e = {0};
    kl_config c;
    memset(s, 0, sizeof *s);
    kl_config_init(&c);
    if (!s3) {
        snprintf(s->ini, sizeof s->ini, "[local]\nroot=%s\n", dir);
        cr_assert_eq(kl_objstore_local_new(dir, &s->os, &e), KL_OK, "%s", e.msg);
        return 0;
    }
    const char *ep = getenv("KL_S3_ENDPOINT"), *bucket = getenv("KL_S3_BUCKET"),
               *ak = getenv("KL_S3_ACCESS_KEY"), *sk = getenv("KL_S3_SECRET_KEY"),
               *region = getenv("KL_S3_REGION");
    if (!ep || !*ep || !bucket || !ak || !sk) return -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(s->prefix, sizeof s->prefix, "bridge-%d-%ld-%ld/", (int)getpid(), (long)ts.tv_sec,
             ts.tv_nsec);
    snprintf(s->ini, sizeof s->ini,
             "[s3]\nendpoint=\"%s\"\nbucket_name=\"%s\"\nregion=\"%s\"\npath_style=true\n"
             "use_default_credentials=false\naccess_key=\"%s\"\nsecret_key=\"%s\"\n"
             "object_prefix=\"%s\"\n",
             ep, bucket, region ? region : "us-east-1", ak, sk, s->prefix);
    c.s3.endpoint = strdup(ep);
    c.s3.bucket_name = strdup(bucket);
    c.s3.access_key = strdup(ak);
    c.s3.secret_key = strdup(sk);
    c.s3.path_style = 1;
    c.s3.use_default_credentials = 0;
    cr_assert_eq(kl_objstore_s3_new(&c.s3, &s->os, &e), KL_OK, "%s", e.msg);
    kl_config_free(&c);
    return 0;
}

void ht_store_close(ht_store *s)
{
    if (s->os) kl_os_destroy(s->os);
    s->os = NULL;
}

static kl_store_config store_cfg(const char *prefix)
{
    kl_store_config c;
    kl_store_config_init(&c);
    c.object_prefix = (char *)prefix;
    return c;
}

uint64_t ht_store_count(kl_objstore *os, const char *prefix, const char *keyspace)
{
    kl_store_config cfg = store_cfg(prefix);
    kl_reader *r = NULL;
    kl_error e = {0};
    char **keys = NULL;
    size_t n = 0;
    uint64_t total = 0;
    if (kl_list_keys(os, &cfg, keyspace, &keys, &n, &e) != KL_OK) return 0;
    cr_assert_eq(kl_store_reader_new(os, &cfg, &r, &e), KL_OK, "%s", e.msg);
    for (size_t i = 0; i < n; i++) {
        int exists = 0;
        kl_key_meta m;
        if (kl_read_key_metadata(r, keyspace, keys[i], &exists, &m, &e) == KL_OK && exists)
            total += m.next_offset - 1;
    }
    kl_reader_destroy(r);
    kl_strv_free(keys, n);
    return total;
}

uint64_t ht_wait_count(kl_objstore *os, const char *prefix, const char *keyspace, uint64_t want,
                       int timeout_ms)
{
    long long end = ht_now_ms() + timeout_ms;
    uint64_t got = 0;
    while (ht_now_ms() < end) {
        if ((got = ht_store_count(os, prefix, keyspace)) >= want) return got;
        ht_sleep_ms(200);
    }
    return got;
}

/* The topic as kcat reads it: per partition, payloads by offset. */
typedef struct topic_dump {
    char **payload[256];
    long n[256];
    int partitions;
} topic_dump;

static void dump_topic(const ht_mock *m, const char *topic, const char *file, topic_dump *d)
{
    char fmt[] = "%p\t%o\t%s\n";
    const char *argv[] = {KCAT_BIN, "-b", m->bootstrap, "-C", "-t", topic, "-e",
                          "-q",     "-o", "beginning",  "-f", fmt,  NULL};
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    close(fd);
    cr_assert_eq(ht_run(argv, file, 120000), 0, "kcat -C failed");
    memset(d, 0, sizeof *d);
    FILE *f = fopen(file, "r");
    cr_assert_not_null(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long cap_of[256] = {0};
    while ((len = getline(&line, &cap, f)) > 0) {
        int p;
        long off;
        int consumed = 0;
        if (line[len - 1] == '\n') line[--len] = '\0';
        cr_assert_eq(sscanf(line, "%d\t%ld\t%n", &p, &off, &consumed), 2, "bad kcat line: %s",
                     line);
        cr_assert(p >= 0 && p < 256);
        if (off >= cap_of[p]) {
            long nc = cap_of[p] ? cap_of[p] * 2 : 1024;
            while (nc <= off) nc *= 2;
            d->payload[p] = realloc(d->payload[p], (size_t)nc * sizeof(char *));
            memset(d->payload[p] + cap_of[p], 0, (size_t)(nc - cap_of[p]) * sizeof(char *));
            cap_of[p] = nc;
        }
        d->payload[p][off] = strdup(line + consumed);
        if (off + 1 > d->n[p]) d->n[p] = off + 1;
        if (p + 1 > d->partitions) d->partitions = p + 1;
    }
    free(line);
    fclose(f);
}

static void dump_free(topic_dump *d)
{
    for (int p = 0; p < 256; p++) {
        for (long i = 0; i < d->n[p]; i++) free(d->payload[p][i]);
        free(d->payload[p]);
    }
}

/* Reads key `p` and compares it to the partition's records. */
static uint64_t check_partition(kl_reader *r, const char *keyspace, int p, const topic_dump *d)
{
    char key[16], *cont = NULL;
    kl_error e = {0};
    kl_page page;
    kl_start start = {.kind = KL_START_FIRST};
    uint64_t seen = 0;
    snprintf(key, sizeof key, "%d", p);
    cr_assert_eq(kl_read_first_page(r, keyspace, key, KL_FORWARDS, &start, 5000, &page, &e), KL_OK,
                 "%s", e.msg);
    for (;;) {
        for (size_t i = 0; i < page.count; i++) {
            const kl_record *rec = &page.records[i];
            cr_assert(rec->has_nonce, "key %s record %llu has no nonce", key,
                      (unsigned long long)rec->offset);
            cr_assert_eq((uint64_t)rec->nonce, seen,
                         "key %s: record %llu has nonce (Kafka offset) %llu, expected "
                         "%llu (a %s)",
                         key, (unsigned long long)rec->offset, (unsigned long long)rec->nonce,
                         (unsigned long long)seen,
                         (uint64_t)rec->nonce < seen ? "duplicate" : "lost record");
            cr_assert_lt((long)seen, d->n[p],
                         "key %s holds more records than "
                         "partition %d has",
                         key, p);
            const char *want = d->payload[p][seen];
            cr_assert(want && rec->len == strlen(want) && !memcmp(rec->data, want, rec->len),
                      "key %s offset %llu: payload differs from the topic", key,
                      (unsigned long long)seen);
            seen++;
        }
        free(cont);
        cont = page.continuation ? strdup(page.continuation) : NULL;
        size_t got = page.count;
        kl_page_free(&page);
        if (!cont || !got) break;
        cr_assert_eq(kl_read_next_page(r, keyspace, key, cont, 5000, &page, &e), KL_OK, "%s",
                     e.msg);
    }
    free(cont);
    cr_assert_eq((long)seen, d->n[p],
                 "key %s holds %llu records, partition %d has %ld "
                 "(records lost)",
                 key, (unsigned long long)seen, p, d->n[p]);
    return seen;
}

uint64_t ht_check_exactly_once(const ht_mock *m, const char *topic, kl_objstore *os,
                               const char *prefix, const char *keyspace, const char *workdir)
{
    char file[512];
    topic_dump d;
    kl_store_config cfg = store_cfg(prefix);
    kl_reader *r = NULL;
    kl_error e = {0};
    uint64_t total = 0;
    snprintf(file, sizeof file, "%s/topic-dump.txt", workdir);
    dump_topic(m, topic, file, &d);
    cr_assert_eq(kl_store_reader_new(os, &cfg, &r, &e), KL_OK, "%s", e.msg);
    for (int p = 0; p < d.partitions; p++) total += check_partition(r, keyspace, p, &d);
    kl_reader_destroy(r);
    dump_free(&d);
    return total;
}
