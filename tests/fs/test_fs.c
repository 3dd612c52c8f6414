/* test_fs.c -- klstorefs with real mounts: every test starts the daemon
 * (-f, in the background) on a temporary mountpoint over a fresh store (a
 * temporary directory, or S3 with KL_TEST_STORE=s3), drives it with the
 * ordinary shell tools through system(3), then unmounts and waits for the
 * daemon by PID, checking that it exited cleanly (under ASan that includes
 * leaks).  Waits are bounded polls, never fixed sleeps that a slow machine
 * could outrun. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/net.h"
#include "store/test_env.h"

#ifndef KLSTOREFS_BIN
#error "KLSTOREFS_BIN (path of the klstorefs binary) must be defined"
#endif

/* ---- mounts -------------------------------------------------------------- */

typedef struct mnt {
    pid_t pid;
    char dir[300];
    char log[300];
} mnt;

#define MAX_MOUNTS 4
static kt_store T;
static char TMP[256];   /* per-test scratch directory */
static char STORE[512]; /* the URL klstorefs mounts */
static mnt *MOUNTS[MAX_MOUNTS];

static int contains_mount(const char *dir)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[4096];
    int found = 0;
    size_t n = strlen(dir);
    while (f && !found && fgets(line, sizeof line, f)) {
        /* field 5 is the mount point */
        char *p = line;
        for (int i = 0; i < 4 && p; i++) p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL;
        found = p && strncmp(p, dir, n) == 0 && p[n] == ' ';
    }
    if (f) fclose(f);
    return found;
}

/* The end of a daemon's log, for failure messages (the log itself goes
 * with the scratch directory). */
static const char *log_tail(const mnt *m)
{
    static char buf[16384];
    buf[0] = 0;
    FILE *f = fopen(m->log, "r");
    if (!f) return buf;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, n > (long)sizeof buf - 1 ? n - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t r = fread(buf, 1, sizeof buf - 1, f);
    buf[r] = 0;
    fclose(f);
    return buf;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts klstorefs as mount(8) helpers do: SOURCE MOUNTPOINT -o opts. */
static void do_mount(mnt *m, const char *name, const char *opts)
{
    snprintf(m->dir, sizeof m->dir, "%s/%s", TMP, name);
    snprintf(m->log, sizeof m->log, "%s/%s.log", TMP, name);
    mkdir(m->dir, 0755);
    char o[1024];
    snprintf(o, sizeof o, "%s%s", opts ? opts : "", "");
    if (T.is_s3) {
        char s3[512];
        snprintf(s3, sizeof s3, "%sendpoint=%s,path_style,region=%s", o[0] ? "," : "",
                 getenv("KL_S3_ENDPOINT"),
                 getenv("KL_S3_REGION") ? getenv("KL_S3_REGION") : "us-east-1");
        strncat(o, s3, sizeof o - strlen(o) - 1);
    }
    fflush(NULL);
    m->pid = fork();
    cr_assert_neq(m->pid, -1);
    if (m->pid == 0) {
        int fd = open(m->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        if (o[0])
            execl(KLSTOREFS_BIN, "klstorefs", STORE, m->dir, "-o", o, "-f", (char *)NULL);
        else
            execl(KLSTOREFS_BIN, "klstorefs", STORE, m->dir, "-f", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 600 && !contains_mount(m->dir); i++) {
        int status;
        if (waitpid(m->pid, &status, WNOHANG) == m->pid) {
            m->pid = 0;
            cr_assert_fail("klstorefs exited before mounting: %s", log_tail(m));
        }
        sleep_ms(50);
    }
    cr_assert(contains_mount(m->dir), "%s did not appear in mountinfo within 30 s", m->dir);
    for (int i = 0; i < MAX_MOUNTS; i++)
        if (!MOUNTS[i]) {
            MOUNTS[i] = m;
            break;
        }
}

/* Waits (bounded) for the daemon; returns its exit status or -1. */
static int reap(mnt *m, int secs)
{
    for (int i = 0; i < secs * 20; i++) {
        int status;
        if (waitpid(m->pid, &status, WNOHANG) == m->pid) {
            m->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        sleep_ms(50);
    }
    return -1;
}

static void forget_mount(mnt *m)
{
    for (int i = 0; i < MAX_MOUNTS; i++)
        if (MOUNTS[i] == m) MOUNTS[i] = NULL;
}

/* Unmounts (retrying while busy) and checks the daemon's clean exit. */
static void do_umount(mnt *m)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "fusermount3 -u '%s' 2>/dev/null", m->dir);
    for (int i = 0; i < 100 && contains_mount(m->dir) && system(cmd) != 0; i++) sleep_ms(100);
    int rc = reap(m, 60);
    forget_mount(m);
    cr_assert_eq(rc, 0, "klstorefs exit status %d: %s", rc, log_tail(m));
}

/* SIGTERM instead of an unmount: the daemon must flush and unmount. */
static void do_term(mnt *m)
{
    kill(m->pid, SIGTERM);
    int rc = reap(m, 60);
    forget_mount(m);
    cr_assert_eq(rc, 0, "klstorefs exit status %d after SIGTERM: %s", rc, log_tail(m));
    cr_assert(!contains_mount(m->dir), "still mounted after SIGTERM");
}

/* ---- shell helpers -------------------------------------------------------- */

/* Runs `cmd` with bash in TMP (the tests use bash's <(...)); returns its
 * exit status, and its stdout in *out when out is not NULL. */
static int run_bash(const char *cmd, char **out)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(p[0]);
        if (out) dup2(p[1], 1);
        close(p[1]);
        if (chdir(TMP) != 0) _exit(126);
        execl("/bin/bash", "bash", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t cap = 4096, len = 0;
    char *b = malloc(cap);
    ssize_t r;
    while ((r = read(p[0], b + len, cap - len - 1)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0 && (len += (size_t)r) + 1 >= cap) b = realloc(b, cap *= 2);
    close(p[0]);
    b[len] = 0;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (out)
        *out = b;
    else
        free(b);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return run_bash(cmd, NULL);
}

/* The output of a command (malloc'd, NUL-terminated). */
static char *sh_out(const char *fmt, ...)
{
    char cmd[4096], *out;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    run_bash(cmd, &out);
    return out;
}

/* The klstore CLI on the mounts' store: a directory, or the test's RGW. */
static void cli_cmd(char *buf, size_t cap)
{
    if (T.is_s3)
        snprintf(buf, cap, "%s --store '%s' --endpoint %s --path-style --region %s", KLSTORE_BIN,
                 STORE, getenv("KL_S3_ENDPOINT"),
                 getenv("KL_S3_REGION") ? getenv("KL_S3_REGION") : "us-east-1");
    else
        snprintf(buf, cap, "%s --store '%s'", KLSTORE_BIN, STORE);
}

static void write_file(const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", TMP, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Writes a config file; returns its path for -o config=. */
static const char *config(const char *body)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/klstore.ini", TMP);
    write_file("klstore.ini", body, strlen(body));
    return path;
}

/* Lines "line N <padding>" of varying length, as one text. */
static char *make_lines(int n, size_t *len)
{
    size_t cap = (size_t)n * 64 + 1, at = 0;
    char *s = malloc(cap);
    for (int i = 1; i <= n; i++)
        at += (size_t)sprintf(s + at, "line %d %.*s\n", i, (i * 7919) % 40,
                              "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP");
    *len = at;
    return s;
}

/* ---- suite ---------------------------------------------------------------- */

static void setup(void)
{
    kt_open(&T); /* first: it may skip the test (no S3 configured) */
    strcpy(TMP, "/tmp/klfs-test-XXXXXX");
    cr_assert_not_null(mkdtemp(TMP));
    if (T.is_s3) {
        snprintf(STORE, sizeof STORE, "s3://%s/%s", getenv("KL_S3_BUCKET"), T.prefix);
        setenv("AWS_ACCESS_KEY_ID", getenv("KL_S3_ACCESS_KEY"), 1);
        setenv("AWS_SECRET_ACCESS_KEY", getenv("KL_S3_SECRET_KEY"), 1);
    } else {
        snprintf(STORE, sizeof STORE, "%s", T.dir);
    }
}

static void teardown(void)
{
    /* After a failed assertion: never leave a mount or a daemon behind. */
    for (int i = 0; i < MAX_MOUNTS; i++) {
        mnt *m = MOUNTS[i];
        if (!m) continue;
        char cmd[512];
        /* A daemon that already died (a crash under a sanitizer, say):
         * its log says why, and goes with the scratch directory below. */
        int status;
        if (m->pid && waitpid(m->pid, &status, WNOHANG) == m->pid) {
            m->pid = 0;
            int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            fprintf(stderr, "klstorefs %s exited with %d:\n%s\n", m->dir, rc, log_tail(m));
        }
        snprintf(cmd, sizeof cmd, "fusermount3 -u -z '%s' 2>/dev/null", m->dir);
        if (system(cmd) != 0 && m->pid) kill(m->pid, SIGTERM);
        if (m->pid && reap(m, 30) < 0) {
            kill(m->pid, SIGKILL);
            reap(m, 10);
        }
        MOUNTS[i] = NULL;
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "fusermount3 -u -z '%s/d' 2>/dev/null", TMP); /* daemonized test */
    if (system(cmd)) {
    }
    snprintf(cmd, sizeof cmd, "umount -l '%s/full' 2>/dev/null", TMP); /* out-of-space test */
    if (system(cmd)) {
    }
    if (T.os) kt_close(&T);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", TMP);
    if (system(cmd)) {
    }
}

TestSuite(fs, .init = setup, .fini = teardown, .timeout = 300);

/* ---- tests ---------------------------------------------------------------- */

Test(fs, ls_mkdir_cat_and_the_usual_tools)
{
    static mnt m;
    do_mount(&m, "m", NULL);
    cr_assert_eq(sh("mkdir m/app && ls m | grep -qx app"), 0);
    cr_assert_neq(sh("mkdir m/app 2>/dev/null"), 0, "mkdir of an existing keyspace");
    cr_assert_eq(sh("for i in $(seq 1 50); do echo \"event $i\" >> m/app/web-1; done"), 0);
    cr_assert_eq(sh("seq 1 50 | sed 's/^/event /' > exp && cmp exp m/app/web-1"), 0);
    char *o = sh_out("wc -l < m/app/web-1; grep -c 'event 4' m/app/web-1; head -n 2 m/app/web-1;"
                     " tail -n 1 m/app/web-1; stat -c %%s m/app/web-1; ls m/app");
    cr_assert_str_eq(o, "50\n11\nevent 1\nevent 2\nevent 50\n441\nweb-1\n");
    free(o);
    /* A created key is listed at once, before it has data. */
    cr_assert_eq(sh("touch m/app/empty && ls m/app | grep -qx empty && test ! -s m/app/empty"), 0);
    /* cat > new: not O_APPEND, but always at the end. */
    cr_assert_eq(sh("seq 1 20000 > big && cat big > m/app/big && cmp big m/app/big"), 0);
    cr_assert_eq(sh("cat exp >> m/app/empty && cmp exp m/app/empty"), 0);
    do_umount(&m);
    /* Everything is in the store, and a new mount sees it. */
    static mnt m2;
    do_mount(&m2, "m2", "ro");
    cr_assert_eq(sh("cmp big m2/app/big && cmp exp m2/app/web-1 && ls m2/app | wc -l | grep -qx 3"),
                 0);
    do_umount(&m2);
}

/* Many small objects (tiny batches), read back at random positions, with
 * several block sizes, after a remount (cold caches). */
Test(fs, random_reads_and_dd_block_sizes)
{
    size_t len;
    char *text = make_lines(6000, &len);
    write_file("exp", text, len);
    static mnt m;
    const char *cfg = config("[batcher]\nbatch_flush_size_threshold=3000\n");
    char opts[600];
    snprintf(opts, sizeof opts, "config=%s", cfg);
    do_mount(&m, "m", opts);
    cr_assert_eq(
        sh("mkdir m/ks && dd if=exp of=m/ks/k bs=4000 oflag=append conv=notrunc status=none"), 0);
    do_umount(&m);
    do_mount(&m, "m", "cache_mb=1");
    char path[512];
    snprintf(path, sizeof path, "%s/ks/k", m.dir);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    struct stat st;
    fstat(fd, &st);
    cr_assert_eq((size_t)st.st_size, len, "size %lld, want %zu", (long long)st.st_size, len);
    srand(42);
    char buf[70000];
    for (int i = 0; i < 300; i++) {
        size_t off = (size_t)rand() % (len + 100), want = (size_t)rand() % sizeof buf;
        ssize_t r = pread(fd, buf, want, (off_t)off);
        size_t exp = off >= len ? 0 : (len - off < want ? len - off : want);
        cr_assert_eq((size_t)r, exp, "pread(%zu, %zu) = %zd", off, want, r);
        cr_assert(memcmp(buf, text + (off < len ? off : 0), exp) == 0, "bytes at %zu differ", off);
    }
    close(fd);
    const char *bs[] = {"1", "7", "4096", "65536", "1M"};
    for (size_t i = 0; i < sizeof bs / sizeof *bs; i++)
        cr_assert_eq(sh("dd if=m/ks/k bs=%s status=none | cmp - exp", bs[i]), 0, "bs=%s", bs[i]);
    cr_assert_eq(sh("dd if=m/ks/k bs=1000 skip=37 status=none | cmp - <(tail -c +37001 exp)"), 0);
    cr_assert_eq(sh("test \"$(tail -c 5000 m/ks/k | md5sum)\" = \"$(tail -c 5000 exp | md5sum)\""),
                 0);
    do_umount(&m);
    free(text);
}

/* A writer that keeps its file open, with lines split across writes. */
Test(fs, long_running_writer_and_partial_lines)
{
    static mnt m;
    do_mount(&m, "m", NULL);
    cr_assert_eq(sh("mkdir m/ks"), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/ks/log", m.dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    cr_assert_geq(fd, 0);
    const char *parts[] = {"ab", "c\nde", "f\n", "g"};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(write(fd, parts[i], strlen(parts[i])), (ssize_t)strlen(parts[i]));
    /* Complete lines are readable at once; the partial line is held. */
    char *o = sh_out("cat m/ks/log");
    cr_assert_str_eq(o, "abc\ndef\n");
    free(o);
    for (int i = 0; i < 200; i++) {
        char line[64];
        int n = sprintf(line, "%s%d\n", i == 0 ? "h" : "tick ", i);
        cr_assert_eq(write(fd, line, (size_t)n), n);
    }
    cr_assert_eq(fsync(fd), 0);
    cr_assert_eq(write(fd, "tail", 4), 4);
    cr_assert_eq(close(fd), 0);
    o = sh_out("head -n 3 m/ks/log; tail -n 2 m/ks/log; wc -l < m/ks/log");
    cr_assert_str_eq(o, "abc\ndef\ngh0\ntick 199\ntail\n203\n");
    free(o);
    do_umount(&m);
}

/* A writer far past the pending bound (-o pending_mb=1): the file's size
 * and bytes stay exact while the tail is retired by listings and flushes. */
Test(fs, writes_past_the_pending_bound)
{
    static mnt m;
    do_mount(&m, "m", "pending_mb=1");
    cr_assert_eq(sh("mkdir m/ks"), 0);
    size_t len;
    char *text = make_lines(150000, &len); /* ~6 MB */
    write_file("src", text, len);
    char path[512];
    snprintf(path, sizeof path, "%s/ks/big", m.dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    cr_assert_geq(fd, 0);
    for (size_t at = 0; at < len; at += 65536) {
        size_t n = len - at < 65536 ? len - at : 65536;
        cr_assert_eq(write(fd, text + at, n), (ssize_t)n);
        struct stat st;
        cr_assert_eq(fstat(fd, &st), 0);
        /* Whole lines only: the held partial line is not part of the size. */
        const char *nl = memrchr(text, '\n', at + n);
        cr_assert_eq((size_t)st.st_size, (size_t)(nl - text) + 1, "after %zu bytes", at + n);
    }
    cr_assert_eq(close(fd), 0);
    cr_assert_eq(sh("cmp src m/ks/big"), 0);
    /* The batching writer cut it into several objects of about 1 MB. */
    char *o = sh_out("getfattr --only-values -n user.klstore.object_count m/ks/big");
    cr_assert_geq(atoi(o), 3, "%s", o);
    free(o);
    free(text);
    do_umount(&m);
}

/* Every byte but '\n' survives a round trip. */
Test(fs, binary_safe_lines)
{
    size_t cap = 300000, at = 0;
    unsigned char *b = malloc(cap);
    srand(7);
    for (int line = 0; line < 2000; line++) {
        int n = rand() % 200;
        for (int i = 0; i < n; i++) {
            unsigned char c = (unsigned char)(rand() % 256);
            b[at++] = c == '\n' ? 0 : c;
        }
        if (line < 256) b[at++] = (unsigned char)(line == '\n' ? 0xff : line); /* every value */
        b[at++] = '\n';
    }
    write_file("bin", b, at);
    static mnt m;
    do_mount(&m, "m", NULL);
    cr_assert_eq(sh("mkdir m/ks && cat bin >> m/ks/bin && cmp bin m/ks/bin"), 0);
    do_umount(&m);
    do_mount(&m, "m", NULL);
    cr_assert_eq(sh("cmp bin m/ks/bin"), 0);
    do_umount(&m);
    free(b);
}

/* tail -f on a second mount follows lines a writer appends on the first. */
Test(fs, tail_follows_a_writer_on_another_mount)
{
    static mnt a, b;
    const char *cfg = config("[batcher]\nbatch_flush_interval_millis=200\n");
    char opts[600];
    snprintf(opts, sizeof opts, "config=%s", cfg);
    do_mount(&a, "a", opts);
    do_mount(&b, "b", "ro");
    cr_assert_eq(sh("mkdir a/ks && echo start >> a/ks/live"), 0);
    /* tail runs in the background; its PID lets us stop exactly it. */
    cr_assert_eq(sh("(tail -n +1 -f b/ks/live > followed 2>tail.err & echo $! > tail.pid)"), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/ks/live", a.dir);
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    for (int i = 1; i <= 40; i++) {
        char line[32];
        int n = sprintf(line, "line %d\n", i);
        cr_assert_eq(write(fd, line, (size_t)n), n);
        sleep_ms(50);
    }
    /* Lines flushed by the batcher (not by close) must show up. */
    int seen = 0;
    for (int i = 0; i < 300 && !seen; i++) {
        seen = sh("grep -qx 'line 40' followed") == 0;
        if (!seen) sleep_ms(100);
    }
    close(fd);
    sh("kill $(cat tail.pid)");
    cr_assert(seen, "tail -f did not show the last line within 30 s");
    cr_assert_eq(sh("(echo start; seq 1 40 | sed 's/^/line /') | cmp - followed"), 0);
    do_umount(&a);
    do_umount(&b);
}

/* mmap(2) of a key: on a read-only mount (page cache) it maps the log, and
 * a warm second read through the cache is exact; elsewhere direct_io
 * refuses it with ENODEV. */
static int map_and_compare(const char *path, const char *want, size_t len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    int rc = p == MAP_FAILED ? -errno : memcmp(p, want, len) != 0;
    if (p != MAP_FAILED) munmap(p, len);
    close(fd);
    return rc;
}

Test(fs, mmap_works_on_read_only_mounts_only)
{
    static mnt w, r;
    do_mount(&w, "w", NULL);
    size_t len;
    char *text = make_lines(5000, &len);
    write_file("exp", text, len);
    cr_assert_eq(sh("mkdir w/ks && cat exp >> w/ks/k"), 0);
    do_mount(&r, "r", "ro");
    char path[600];
    snprintf(path, sizeof path, "%s/ks/k", r.dir);
    cr_assert_eq(map_and_compare(path, text, len), 0);
    cr_assert_eq(sh("cmp r/ks/k exp && cmp r/ks/k exp"), 0, "cold, then from the page cache");
    /* It grows: the cached pages go, the new end reads exactly. */
    cr_assert_eq(sh("echo one more line >> w/ks/k && echo one more line >> exp"), 0);
    for (int i = 0; i < 50 && sh("cmp -s r/ks/k exp") != 0; i++) sleep_ms(100);
    cr_assert_eq(sh("cmp r/ks/k exp"), 0);
    snprintf(path, sizeof path, "%s/ks/k", w.dir);
    cr_assert_eq(map_and_compare(path, text, len), -ENODEV);
    do_umount(&r);
    do_umount(&w);
    free(text);
}

Test(fs, concurrent_readers)
{
    static mnt m;
    do_mount(&m, "m", "cache_mb=2");
    cr_assert_eq(sh("mkdir m/ks && seq 1 300000 > exp && cat exp >> m/ks/k"), 0);
    do_umount(&m);
    do_mount(&m, "m", "cache_mb=2");
    cr_assert_eq(
        sh("for i in 1 2 3 4 5 6; do (dd if=m/ks/k bs=$((i * 3000)) status=none | cmp -s - exp;"
           " echo $? > r$i) & done; wait; cat r1 r2 r3 r4 r5 r6 | grep -vx 0 | wc -l | grep -qx 0"),
        0);
    do_umount(&m);
}

/* Objects compacted under a reader on another mount: every read returns a
 * prefix of the log, and the whole log at the end. */
Test(fs, reads_during_compaction)
{
    static mnt w, r;
    const char *cfg =
        config("[s3]\ncompact_records_threshold=40\ncompact_objects_threshold=4\n"
               "compact_size_threshold=100000000\n"
               "[batcher]\nbatch_flush_interval_millis=10\nbatch_check_interval_millis=5\n");
    char opts[600];
    snprintf(opts, sizeof opts, "config=%s,refresh_ms=50", cfg);
    do_mount(&w, "w", opts);
    do_mount(&r, "r", "ro,refresh_ms=50,attr_timeout=0.1,cache_mb=1");
    size_t len;
    char *text = make_lines(1500, &len);
    write_file("exp", text, len);
    cr_assert_eq(sh("mkdir w/ks && head -n 1 exp >> w/ks/k"), 0);
    /* Writer: 10 lines per write, one object each (flush on close). */
    cr_assert_eq(sh("(for s in $(seq 2 10 1500); do sed -n \"${s},$((s + 9))p\" exp >> w/ks/k;"
                    " done; touch writer.done) > writer.log 2>&1 &"),
                 0);
    int rounds = 0;
    while (sh("test -e writer.done") != 0 && rounds < 2000) {
        cr_assert_eq(sh("cat r/ks/k > got && cmp -s got <(head -c $(stat -c %%s got) exp)"), 0,
                     "read %d is not a prefix of the log", rounds);
        rounds++;
    }
    cr_assert_eq(sh("test -e writer.done && test ! -s writer.log"), 0, "writer failed");
    for (int i = 0; i < 100 && sh("cmp -s r/ks/k exp") != 0; i++) sleep_ms(100);
    cr_assert_eq(sh("cmp r/ks/k exp"), 0);
    if (!T.is_s3) /* compaction really happened: far fewer objects than writes */
        cr_assert_eq(sh("test $(ls '%s'/ks/k | grep -c '^data_') -lt 60", T.dir), 0);
    do_umount(&w);
    do_umount(&r);
    free(text);
}

/* Everything that would change existing data fails and changes nothing. */
Test(fs, eperm_and_erofs_leave_data_intact)
{
    static mnt m;
    do_mount(&m, "m", NULL);
    cr_assert_eq(sh("mkdir m/ks && seq 1 100 > exp && cat exp >> m/ks/k"), 0);
    const char *denied[] = {
        "truncate -s 0 m/ks/k",
        "truncate -s 5 m/ks/k",
        "echo x > m/ks/k",                                /* O_TRUNC */
        "echo x | dd of=m/ks/k conv=notrunc status=none", /* write at 0 */
        "echo x | dd of=m/ks/k bs=1 seek=10 conv=notrunc status=none",
        "rm m/ks/k",
        "mv m/ks/k m/ks/k2",
        "rmdir m/ks",
        "mkdir m/ks/sub",
        "ln m/ks/k m/ks/k3",
        "ln -s k m/ks/k4",
        "chmod 600 m/ks/k",
        "setfattr -n user.x -v 1 m/ks/k",
        "echo x > m/rootfile",
        "echo x >> 'm/ks/k@o=1'",
    };
    for (size_t i = 0; i < sizeof denied / sizeof *denied; i++) {
        char *err = sh_out("{ %s; } 2>&1; echo rc=$?", denied[i]);
        cr_assert(strstr(err, "rc=0") == NULL, "'%s' succeeded", denied[i]);
        cr_assert(strstr(err, "ermitted") || strstr(err, "ermission"), "'%s': %s", denied[i], err);
        free(err);
        cr_assert_eq(sh("cmp exp m/ks/k"), 0, "data changed by '%s'", denied[i]);
    }
    cr_assert_eq(sh("ls m/ks | wc -l | grep -qx 1"), 0);
    /* Harmless no-ops succeed: touch, truncate to the current size. */
    cr_assert_eq(sh("touch m/ks/k && truncate -s $(stat -c %%s exp) m/ks/k && cmp exp m/ks/k"), 0);
    do_umount(&m);

    do_mount(&m, "m", "ro");
    const char *erofs[] = {"echo x >> m/ks/k", "mkdir m/ks2", "touch m/ks/new",
                           "echo x > m/ks/new"};
    for (size_t i = 0; i < sizeof erofs / sizeof *erofs; i++) {
        char *err = sh_out("{ %s; } 2>&1; echo rc=$?", erofs[i]);
        cr_assert(strstr(err, "Read-only file system") && !strstr(err, "rc=0"), "'%s': %s",
                  erofs[i], err);
        free(err);
    }
    cr_assert_eq(sh("cmp exp m/ks/k && ls m | wc -l | grep -qx 1"), 0);
    do_umount(&m);
}

/* KEY@t=, KEY@o=, KEY@n= read from that record on, and are not listed. */
Test(fs, time_travel_names)
{
    kl_writer *w;
    kl_error err = {0};
    cr_assert_eq(kl_store_writer_new(T.os, &T.cfg, &w, &err), KL_OK, "%s", err.msg);
    int64_t now = kl_now_ms();
    for (int i = 1; i <= 100; i++) {
        char s[32];
        sprintf(s, "rec %d", i);
        kl_insertion in = kt_rec(s);
        in.has_timestamp = 1;
        in.timestamp = 1700000000000 + i * 1000; /* 2023-11-14T22:13:20Z + i s */
        in.has_nonce = 1;
        in.nonce = (kl_u128)i * 10;
        cr_assert_eq(kl_append(w, "ks", "k", &in, 1, &err), KL_OK, "%s", err.msg);
        /* recent records for relative times: 3h ago .. now */
        in.timestamp = now - (100 - i) * 108000;
        in.has_nonce = 0;
        cr_assert_eq(kl_append(w, "ks", "recent", &in, 1, &err), KL_OK, "%s", err.msg);
    }
    kl_writer_destroy(w);
    static mnt m;
    do_mount(&m, "m", NULL);
    cr_assert_eq(sh("cat 'm/ks/k@o=42' | head -n 1 | grep -qx 'rec 42'"), 0);
    cr_assert_eq(sh("cat 'm/ks/k@o=42' | wc -l | grep -qx 59"), 0);
    cr_assert_eq(sh("diff <(cat 'm/ks/k@o=42') <(tail -n +42 m/ks/k)"), 0);
    cr_assert_eq(sh("head -n 1 'm/ks/k@t=1700000050000' | grep -qx 'rec 50'"), 0);
    cr_assert_eq(sh("head -n 1 'm/ks/k@t=1700000050500' | grep -qx 'rec 51'"), 0);
    cr_assert_eq(sh("head -n 1 'm/ks/k@t=2023-11-14T22:14:30Z' | grep -qx 'rec 70'"), 0);
    cr_assert_eq(sh("head -n 1 'm/ks/k@n=255' | grep -qx 'rec 26'"), 0);
    cr_assert_eq(sh("test $(stat -c %%s 'm/ks/k@o=100') = 8 && test ! -s 'm/ks/k@o=101'"), 0);
    cr_assert_eq(sh("test ! -s 'm/ks/k@t=-1h'"), 0);
    /* 3 h of records 108 s apart: the last 15 min hold 9 of them. */
    cr_assert_eq(sh("cat 'm/ks/recent@t=-15m' | wc -l | grep -qx 9"), 0);
    cr_assert_eq(sh("ls m/ks | tr '\\n' ' ' | grep -qx 'k recent '"), 0);
    cr_assert_neq(sh("cat 'm/ks/k@x=1' 2>/dev/null"), 0);
    cr_assert_neq(sh("cat 'm/ks/nokey@o=1' 2>/dev/null"), 0);
    do_umount(&m);
}

Test(fs, xattrs)
{
    static mnt m;
    do_mount(&m, "m", NULL);
    cr_assert_eq(sh("mkdir m/ks && seq 1 10 >> m/ks/k && seq 11 12 >> m/ks/k"), 0);
    char *o = sh_out("getfattr -d --absolute-names m/ks/k | grep -v timestamp");
    char want[512];
    snprintf(want, sizeof want,
             "# file: m/ks/k\nuser.klstore.next_nonce=\"0\"\nuser.klstore.next_offset=\"13\"\n"
             "user.klstore.object_count=\"%s\"\nuser.klstore.record_count=\"12\"\n\n",
             "2");
    cr_assert_str_eq(o, want);
    free(o);
    cr_assert_eq(sh("test $(getfattr --only-values -n user.klstore.last_timestamp m/ks/k) -ge "
                    "$(getfattr --only-values -n user.klstore.first_timestamp m/ks/k)"),
                 0);
    cr_assert_eq(
        sh("test $(getfattr --only-values -n user.klstore.created m/ks) -gt 1600000000000"), 0);
    do_umount(&m);
}

/* Acknowledged lines survive SIGTERM and a remount, and so does the
 * partial line an open file held at SIGTERM. */
Test(fs, restart_keeps_acknowledged_lines)
{
    static mnt m;
    do_mount(&m, "m", NULL);
    cr_assert_eq(sh("mkdir m/ks && for i in $(seq 1 30); do echo \"closed $i\" >> m/ks/k; done"),
                 0);
    char path[512];
    snprintf(path, sizeof path, "%s/ks/k", m.dir);
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    for (int i = 1; i <= 30; i++) {
        char line[32];
        int n = sprintf(line, "synced %d\n", i);
        cr_assert_eq(write(fd, line, (size_t)n), n);
    }
    cr_assert_eq(fsync(fd), 0);
    cr_assert_eq(write(fd, "held", 4), 4);
    do_term(&m); /* with the file still open */
    close(fd);
    do_mount(&m, "m", NULL);
    cr_assert_eq(sh("(seq 1 30 | sed 's/^/closed /'; seq 1 30 | sed 's/^/synced /'; echo held)"
                    " | cmp - m/ks/k"),
                 0);
    do_umount(&m);
}

/* The daemonized mode: no -f, logs to syslog, unmount by name. */
Test(fs, daemonizes_and_unmounts)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/d", TMP);
    mkdir(dir, 0755);
    if (T.is_s3)
        cr_assert_eq(sh("%s '%s' d -o endpoint=%s,path_style", KLSTOREFS_BIN, STORE,
                        getenv("KL_S3_ENDPOINT")),
                     0);
    else
        cr_assert_eq(sh("%s '%s' d", KLSTOREFS_BIN, STORE), 0);
    cr_assert(contains_mount(dir));
    cr_assert_eq(sh("mkdir d/ks && echo hi >> d/ks/k && cat d/ks/k | grep -qx hi"), 0);
    cr_assert_eq(sh("fusermount3 -u d"), 0);
    cr_assert(!contains_mount(dir));
    cr_assert_eq(sh("%s --help | grep -q fstab && %s --version | grep -q klstorefs", KLSTOREFS_BIN,
                    KLSTOREFS_BIN),
                 0);
}

/* Many writers on one key: two mounts and the CLI append to one file at
 * once, each line its own open/append/close (acknowledged when `>>`
 * returned 0), while one daemon is stopped and resumed mid-run.  Every
 * acknowledged line is in the log exactly once, in each writer's order, and
 * both mounts show the log exactly as the store holds it. */
Test(fs, many_writers_one_key)
{
    static mnt a, b;
    do_mount(&a, "a", NULL);
    do_mount(&b, "b", NULL);
    /* the CLI on the same store: a directory, or the test's RGW */
    char cli[1400];
    cli_cmd(cli, sizeof cli);
    cr_assert_eq(sh("mkdir a/ks && touch a/ks/shared"), 0);
    /* writer w appends "w i" and records it in ack.w only once `>>` succeeded */
    cr_assert_eq(
        sh("for w in a b; do (for i in $(seq 1 150); do echo \"$w $i\" >> $w/ks/shared "
           "&& echo \"$w $i\" >> ack.$w; done; echo done > fin.$w) & done; "
           "(for j in $(seq 0 14); do seq $((j*10+1)) $((j*10+10)) | sed 's/^/c /' > c.in; "
           "%s append ks shared < c.in && cat c.in >> ack.c; done; "
           "echo done > fin.c) &",
           cli),
        0);
    sleep_ms(300);
    kill(b.pid, SIGSTOP); /* a writer stopped between any two of its requests */
    sleep_ms(700);
    kill(b.pid, SIGCONT);
    for (int i = 0; i < 1200 && sh("test -f fin.a -a -f fin.b -a -f fin.c") != 0; i++)
        sleep_ms(100);
    cr_assert_eq(sh("test -f fin.a -a -f fin.b -a -f fin.c"), 0, "writers did not finish");
    /* The store: every acknowledged line once, nothing twice, per-writer order. */
    char *log = sh_out("%s read ks shared --limit 100000", cli);
    write_file("log", log, strlen(log));
    free(log);
    cr_assert_eq(sh("sort log | uniq -d | wc -l | grep -qx 0"), 0, "a line is in the log twice");
    cr_assert_eq(sh("cat ack.a ack.b ack.c | sort > acked && sort log > logged && "
                    "comm -23 acked logged | wc -l | grep -qx 0"),
                 0, "an acknowledged line is missing");
    cr_assert_eq(sh("for w in a b c; do grep \"^$w \" log | cut -d' ' -f2 | sort -n -c || exit 1; "
                    "done"),
                 0, "a writer's lines are out of order");
    cr_assert_eq(sh("wc -l < log | grep -qx 450"), 0, "all 450 lines were acknowledged");
    /* Both mounts show the store's log byte for byte (their own lines at
     * their true positions), once their listings are fresh. */
    sleep_ms(700);
    cr_assert_eq(sh("cmp log a/ks/shared && cmp log b/ks/shared"), 0,
                 "a mount shows the log differently from the store");
    do_umount(&a);
    do_umount(&b);
}

/* Inode numbers come from the path: the same in every mount and after a
 * remount, and readdir's d_ino agrees with stat.  Names longer than the
 * store allows are ENAMETOOLONG, not EINVAL or ENOENT. */
Test(fs, stable_inode_numbers_and_long_names)
{
    static mnt a, b;
    do_mount(&a, "a", NULL);
    cr_assert_eq(sh("mkdir a/ks && echo x >> a/ks/k && echo y >> a/ks/k2"), 0);
    char *first = sh_out("stat -c '%%n %%i' a a/ks a/ks/k a/ks/k2 | sed 's|^a|X|'");
    char *listed = sh_out("ls -i a/ks | sort -k2 | awk '{print $1}' | tr '\\n' ' '");
    char *stated = sh_out("stat -c %%i a/ks/k a/ks/k2 | tr '\\n' ' '");
    cr_assert_str_eq(listed, stated, "readdir's d_ino differs from stat");
    do_mount(&b, "b", NULL);
    char *second = sh_out("stat -c '%%n %%i' b b/ks b/ks/k b/ks/k2 | sed 's|^b|X|'");
    cr_assert_str_eq(second, first, "another mount shows other inode numbers");
    do_umount(&b);
    do_umount(&a);
    do_mount(&a, "a", NULL);
    char *again = sh_out("stat -c '%%n %%i' a a/ks a/ks/k a/ks/k2 | sed 's|^a|X|'");
    cr_assert_str_eq(again, first, "a remount shows other inode numbers");
    char long_name[202];
    memset(long_name, 'n', 201);
    long_name[201] = 0;
    const char *cmds[] = {"touch a/ks/%s", "mkdir a/%s", "stat a/ks/%s", "echo x >> a/ks/%s"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, cmds[i], long_name);
        char *out = sh_out("{ %s; } 2>&1; echo rc=$?", cmd);
        cr_assert(strstr(out, "File name too long") && !strstr(out, "rc=0"), "'%.20s...': %s",
                  cmds[i], out);
        free(out);
    }
    cr_assert_eq(sh("ls a/ks | wc -l | grep -qx 2"), 0, "a refused name changed the keyspace");
    do_umount(&a);
    free(first);
    free(listed);
    free(stated);
    free(second);
    free(again);
}

/* Mounted by root with allow_other: another user (nobody) reads by mode,
 * and may neither append, create keys nor create keyspaces -- EACCES, the
 * log unchanged.  With umask=000 the same user may append. */
Test(fs, allow_other_enforces_the_modes_shown)
{
    if (geteuid() != 0 || system("command -v runuser >/dev/null 2>&1") != 0)
        cr_skip_test("needs root and runuser (permission tests run as user nobody)");
    cr_assert_eq(chmod(TMP, 0755), 0);
    static mnt m;
    do_mount(&m, "m", "allow_other");
    cr_assert_eq(sh("mkdir m/ks && seq 1 50 > exp && cat exp >> m/ks/k"), 0);
    cr_assert_eq(sh("runuser -u nobody -- cat m/ks/k | cmp - exp"), 0, "nobody cannot read");
    cr_assert_eq(sh("runuser -u nobody -- ls m/ks | grep -qx k"), 0, "nobody cannot list");
    const char *denied[] = {
        "echo x >> m/ks/k",
        "echo x > m/ks/new",
        "mkdir m/ks2",
        "touch m/ks/new2",
    };
    for (size_t i = 0; i < sizeof denied / sizeof *denied; i++) {
        char *out = sh_out("runuser -u nobody -- sh -c '%s' 2>&1; echo rc=$?", denied[i]);
        cr_assert(strstr(out, "ermission denied") && !strstr(out, "rc=0"), "nobody: '%s': %s",
                  denied[i], out);
        free(out);
    }
    cr_assert_eq(sh("cmp exp m/ks/k && ls m/ks | wc -l | grep -qx 1 && ls m | wc -l | grep -qx 1"),
                 0, "a refused operation changed the store");
    do_umount(&m);
    do_mount(&m, "m", "allow_other,umask=000");
    cr_assert_eq(
        sh("runuser -u nobody -- sh -c 'echo z >> m/ks/k' && tail -n 1 m/ks/k | grep -qx z"), 0,
        "umask=000: nobody may append");
    do_umount(&m);
}

/* A line over the record limit (64 MiB) is refused whole: the writer gets
 * EFBIG, nothing of it is stored (not even at close), and the lines after
 * it are taken. */
Test(fs, an_overlong_line_stores_nothing_of_itself)
{
    static mnt m;
    do_mount(&m, "m", NULL);
    cr_assert_eq(sh("mkdir m/ks && seq 1 3 > exp && cat exp >> m/ks/k"), 0);
    char *out = sh_out("{ head -c 70000001 /dev/zero | tr '\\0' a >> m/ks/k; } 2>&1; echo rc=$?");
    cr_assert(strstr(out, "File too large") && !strstr(out, "rc=0"), "%s", out);
    free(out);
    cr_assert_eq(sh("cmp exp m/ks/k"), 0, "part of the refused line was stored");
    /* Through one open file: the rest of the refused line is dropped up to
     * its newline, the lines after it are stored. */
    out = sh_out("exec 3>>m/ks/k; { head -c 70000001 /dev/zero | tr '\\0' b >&3; } 2>&1; "
                 "printf 'bbbb rest of it\\nafter\\n' >&3; echo rc=$?; exec 3>&-");
    cr_assert(strstr(out, "File too large") && strstr(out, "rc=0"), "%s", out);
    free(out);
    cr_assert_eq(sh("echo ok >> m/ks/k && { cat exp; echo after; echo ok; } | cmp - m/ks/k"), 0);
    cr_assert_eq(sh("! grep -q bbbb m/ks/k"), 0, "part of the second refused line was stored");
    do_umount(&m);
}

/* A full disk under the local store is ENOSPC end to end -- the library's
 * KL_ENOSPC, the CLI's exit code 6, klstorefs' "No space left on device"
 * -- and everything acknowledged before it stays readable. */
Test(fs, a_full_disk_is_enospc_and_keeps_what_was_written)
{
    if (T.is_s3 || geteuid() != 0)
        cr_skip_test("needs root and the local store (a small tmpfs is mounted)");
    char full[400], store[450];
    snprintf(full, sizeof full, "%s/full", TMP);
    snprintf(store, sizeof store, "%s/store", full);
    mkdir(full, 0755);
    if (sh("mount -t tmpfs -o size=4m tmpfs '%s'", full) != 0)
        cr_skip_test("cannot mount a tmpfs here");
    kl_objstore *os;
    kl_writer *w;
    kl_error err = {0};
    cr_assert_eq(kl_objstore_local_new(store, &os, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_store_writer_new(os, &T.cfg, &w, &err), KL_OK, "%s", err.msg);
    static char rec[100000];
    memset(rec, 'r', sizeof rec);
    kl_insertion in = {.data = rec, .len = sizeof rec};
    int acked = 0;
    kl_status st = KL_OK;
    while (acked < 1000 && (st = kl_append(w, "ks", "k", &in, 1, &err)) == KL_OK) acked++;
    cr_assert_eq(st, KL_ENOSPC, "%s", err.msg);
    cr_assert(strstr(err.msg, "No space left"), "%s", err.msg);
    cr_assert_gt(acked, 5);
    kl_writer_destroy(w);
    kl_reader *r;
    cr_assert_eq(kl_store_reader_new(os, &T.cfg, &r, &err), KL_OK, "%s", err.msg);
    kl_key_meta meta;
    int exists = 0;
    cr_assert_eq(kl_read_key_metadata(r, "ks", "k", &exists, &meta, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(meta.next_offset, (uint64_t)acked + 1, "acknowledged records lost or extra");
    kl_reader_destroy(r);
    kl_os_destroy(os);

    char *out = sh_out("head -c 3000000 /dev/zero | tr '\\0' x | fold -w 1000 | %s --store '%s' "
                       "append ks k2 2>&1; echo rc=$?",
                       KLSTORE_BIN, store);
    cr_assert(strstr(out, "rc=6") && strstr(out, "No space left"), "%s", out);
    free(out);

    char saved[sizeof STORE];
    memcpy(saved, STORE, sizeof STORE);
    snprintf(STORE, sizeof STORE, "%s", store);
    static mnt m;
    do_mount(&m, "m", NULL);
    out = sh_out("{ head -c 3000000 /dev/zero | tr '\\0' y | fold -w 1000 >> m/ks/k3; } 2>&1; "
                 "echo rc=$?");
    cr_assert(strstr(out, "No space left on device") && !strstr(out, "rc=0"), "%s", out);
    free(out);
    cr_assert_eq(sh("test $(wc -l < m/ks/k) -eq %d", acked), 0, "the first key changed");
    /* The refused lines are still unwritten at unmount: exit status 1, as
     * SEMANTICS.md says, with the reason in the log. */
    cr_assert_eq(sh("fusermount3 -u '%s'", m.dir), 0);
    int rc = reap(&m, 60);
    forget_mount(&m);
    cr_assert_eq(rc, 1, "klstorefs exit status %d: %s", rc, log_tail(&m));
    cr_assert(strstr(log_tail(&m), "No space left"), "%s", log_tail(&m));
    memcpy(STORE, saved, sizeof STORE);
    cr_assert_eq(sh("umount '%s'", full), 0);
}

/* ---- lost answers -------------------------------------------------------- */

#include "../bridge/proxy.h"

/* A close whose flush failed after its copy took effect (the answers were
 * lost on the way back) reports EIO; the mount's writer retries the lines
 * on its own, and they end up in the store exactly once. */
Test(fs, lines_of_a_failed_close_are_retried_exactly_once)
{
    if (!T.is_s3) cr_skip_test("needs the S3 server (KL_TEST_STORE=s3)");
    const char *ep = getenv("KL_S3_ENDPOINT"), *colon = strrchr(ep, ':');
    ht_proxy *px = ht_proxy_start("127.0.0.1", atoi(colon + 1));
    cr_assert_not_null(px);
    char saved[256], via[64];
    snprintf(saved, sizeof saved, "%s", ep);
    snprintf(via, sizeof via, "http://127.0.0.1:%d", ht_proxy_port(px));
    setenv("KL_S3_ENDPOINT", via, 1);
    char opts[600];
    snprintf(opts, sizeof opts, "config=%s", config("[s3]\nmax_retries=1\n"));
    static mnt m, fresh;
    do_mount(&m, "m", opts);
    setenv("KL_S3_ENDPOINT", saved, 1);
    cr_assert_eq(sh("mkdir m/ks && echo a >> m/ks/k"), 0, "%s", log_tail(&m));
    ht_proxy_deaf(px, "x-amz-copy-source");
    /* cat checks close(2) of its output (a shell redirection does not) */
    cr_assert_neq(sh("printf 'b\\nc\\n' | cat >> m/ks/k"), 0, "the close reports the failure");
    ht_proxy_deaf(px, NULL);
    /* Retried within a flush interval or two; then nothing more comes. */
    do_mount(&fresh, "fresh", NULL);
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) {
        ok = sh("printf 'a\\nb\\nc\\n' | cmp -s - fresh/ks/k") == 0;
        if (!ok) sleep_ms(100);
    }
    cr_assert(ok, "the lines never arrived: %s", log_tail(&m));
    sleep_ms(2500);
    cr_assert_eq(sh("printf 'a\\nb\\nc\\n' | cmp - m/ks/k"), 0, "repeated: %s", log_tail(&m));
    do_umount(&fresh);
    do_mount(&fresh, "fresh", NULL);
    cr_assert_eq(sh("printf 'a\\nb\\nc\\n' | cmp - fresh/ks/k"), 0);
    do_umount(&fresh);
    do_umount(&m);
    ht_proxy_stop(px);
}

/* ---- a hostile S3 server ------------------------------------------------ */
/* ls -l of a keyspace costs one listing per key (the lookup loads the
 * key's index, and the stat that follows uses it), plus two for the
 * keyspace (its lookup -- no marker here, so a listing -- and readdir). */
Test(fs, ls_l_lists_each_key_once)
{
    char cli[1400];
    cli_cmd(cli, sizeof cli);
    cr_assert_eq(sh("for i in $(seq 1 50); do echo v | %s append ks k$i 2>/dev/null || exit 1;"
                    " done",
                    cli),
                 0);
    static mnt m;
    do_mount(&m, "m", "entry_timeout=5"); /* the keyspace stays looked up */
    const char *lists = "grep '^klstore_store_requests_total{op=\"list\"}' m/.klstore/stats"
                        " | cut -d' ' -f2";
    char *o = sh_out("a=$(%s); n=$(ls -l m/ks | grep -c ' k[0-9]*$'); b=$(%s); echo $n $((b - a))",
                     lists, lists);
    cr_assert_str_eq(o, "50 52\n", "%s", log_tail(&m));
    free(o);
    /* Again once the listings are older than refresh_ms (0.5 s): every key
     * is listed again, all in one overlapped batch, plus the readdir. */
    o = sh_out("sleep 0.7; a=$(%s); n=$(ls -l m/ks | grep -c ' k[0-9]*$'); b=$(%s);"
               " echo $n $((b - a))",
               lists, lists);
    cr_assert_str_eq(o, "50 51\n", "%s", log_tail(&m));
    free(o);
    do_umount(&m);
}

/* The mount's counters: in the file /.klstore/stats (cat is all it takes)
 * and at -o metrics=ADDR, with /healthz; the file cannot be written and
 * is not listed; a port in use stops the mount before it mounts. */
Test(fs, stats_file_and_metrics_endpoint_report_the_mount)
{
    int port = kl_free_port();
    char opts[64];
    snprintf(opts, sizeof opts, "metrics=127.0.0.1:%d", port);
    static mnt m;
    do_mount(&m, "m", opts);
    cr_assert_eq(sh("mkdir m/app && for i in 1 2 3; do echo line$i >> m/app/k; done"), 0);
    const char *want = "klstorefs_appended_records_total 3\n"
                       "klstorefs_appended_bytes_total 15\n"
                       "klstorefs_published_records_total 3\n"
                       "klstorefs_objects_written_total 3\n"
                       "klstorefs_pending_records 0\n"
                       "klstorefs_pending_bytes 0\n"
                       "klstorefs_write_errors_total 0\n"
                       "klstorefs_flush_seconds_count 3\n";
    const char *pick = "grep -E '^klstorefs_(appended|published|objects|pending|write_errors|"
                       "flush_seconds_count)'";
    char *o = sh_out("%s m/.klstore/stats", pick);
    cr_assert_str_eq(o, want);
    free(o);
    o = sh_out("curl -s -m 5 http://127.0.0.1:%d/metrics | %s", port, pick);
    cr_assert_str_eq(o, want);
    free(o);
    o = sh_out("curl -s -m 5 http://127.0.0.1:%d/healthz", port);
    cr_assert_str_eq(o, "ok\n");
    free(o);
    /* Every line is a comment or a valid sample; the store's requests are in. */
    cr_assert_neq(sh("grep -vE '^(# (HELP|TYPE) .*|[a-z_]+(\\{[^}]*\\})? "
                     "(-?[0-9.]+(e[-+]?[0-9]+)?|\\+Inf))$' m/.klstore/stats"),
                  0);
    cr_assert_eq(
        sh("grep -q '^klstore_store_requests_total{op=\"claim\"} [1-9]' m/.klstore/stats"
           " || grep -q '^klstore_store_requests_total{op=\"put\"} [1-9]' m/.klstore/stats"),
        0);
    o = sh_out("ls -a m | tr '\\n' ' '; ls m/.klstore; stat -c '%%A %%s' m/.klstore/stats;"
               " { echo x > m/.klstore/stats; } 2>/dev/null || echo refused;"
               " mkdir m/.klstore/x 2>/dev/null || echo refused;"
               " touch m/.klstore/new 2>/dev/null || echo refused");
    cr_assert_str_eq(o, ". .. app stats\n-r--r--r-- 0\nrefused\nrefused\nrefused\n");
    free(o);
    /* The same port again: refused on the terminal, nothing mounted. */
    o = sh_out("mkdir -p m2 && %s %s m2 -o %s -f 2>&1; echo rc=$?", KLSTOREFS_BIN, STORE, opts);
    char expect[256];
    snprintf(expect, sizeof expect,
             "klstorefs: metrics endpoint 127.0.0.1:%d: Address already in use\nrc=2\n", port);
    cr_assert_str_eq(o, expect);
    free(o);
    char m2[600];
    snprintf(m2, sizeof m2, "%s/m2", TMP);
    cr_assert(!contains_mount(m2));
    do_umount(&m);
}

#include "../s3/stub_http.h"

typedef enum { FH_BOMB, FH_ENDLESS_LIST, FH_REPEAT_TOKEN, FH_RESET } fhmode;

static __thread char fh_body[512];

static void fs_hostile(void *ud, int n, const stub_req *rq, stub_resp *rs)
{
    switch (*(fhmode *)ud) {
    case FH_BOMB:
        rs->status = 403;
        rs->body = "<?xml version=\"1.0\"?><!DOCTYPE z [<!ENTITY a \"aaaaaaaaaaaa\">"
                   "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]>"
                   "<Error><Code>AccessDenied</Code><Message>&b;&b;&b;</Message></Error>";
        break;
    case FH_ENDLESS_LIST:
        snprintf(fh_body, sizeof fh_body,
                 "<ListBucketResult><IsTruncated>true</IsTruncated>"
                 "<NextContinuationToken>t%d</NextContinuationToken></ListBucketResult>",
                 n);
        rs->status = 200;
        rs->body = fh_body;
        break;
    case FH_REPEAT_TOKEN:
        rs->status = 200;
        rs->body = "<ListBucketResult><IsTruncated>true</IsTruncated>"
                   "<NextContinuationToken>same</NextContinuationToken></ListBucketResult>";
        break;
    case FH_RESET: rs->status = 0; break;
    }
}

/* A mount against a misbehaving S3 endpoint fails within seconds, with
 * the server's misbehaviour named in the log and a non-zero exit. */
Test(fs, a_hostile_server_fails_the_mount_in_seconds)
{
    if (T.is_s3) cr_skip_test("runs once, against its own stub server");
    const struct {
        fhmode mode;
        const char *needle;
    } cases[] = {
        {FH_BOMB, "403"},
        {FH_ENDLESS_LIST, "never ends"},
        {FH_REPEAT_TOKEN, "continuation token it was given"},
        {FH_RESET, "S3 LIST"},
    };
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/hostile.ini", TMP);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "[s3]\nbucket_name=bkt\nuse_default_credentials=false\naccess_key=AKID\n"
               "secret_key=SECRET\nmax_retries=1\nrequest_timeout_ms=3000\n");
    fclose(f);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fhmode mode = cases[i].mode;
        stub *s = stub_start(fs_hostile, &mode);
        char opts[800], dir[600];
        snprintf(opts, sizeof opts, "config=%s,endpoint=http://127.0.0.1:%d,path_style", cfg,
                 stub_port(s));
        snprintf(dir, sizeof dir, "%s/h%zu", TMP, i);
        mkdir(dir, 0755);
        char *out = sh_out("timeout 60 %s s3://bkt/ %s -o %s -f 2>&1; echo rc=$?", KLSTOREFS_BIN,
                           dir, opts);
        stub_stop(s);
        cr_expect(strstr(out, cases[i].needle) && !strstr(out, "rc=0") && !strstr(out, "rc=124"),
                  "mode %d: %s", (int)mode, out);
        cr_expect(!contains_mount(dir), "mode %d: mounted", (int)mode);
        free(out);
    }
}
