/* test_cli.c -- the klstore CLI, end to end: runs the built binary
 * (KLSTORE_BIN, set by CMake) with posix_spawn on a fresh temporary store
 * directory per test, feeding stdin from a file and capturing stdout,
 * stderr and the exit code, and checks what a user would see: outputs
 * byte for byte, exit codes, one-line error messages.  With KL_S3_ENDPOINT
 * set (scripts/test.sh), one test also runs the CLI against S3. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef KLSTORE_BIN
#error "KLSTORE_BIN must name the klstore binary"
#endif

extern char **environ;

static char tmp[256];   /* per-test directory */
static char store[300]; /* tmp/store */

typedef struct result {
    int code; /* exit code, or 128 + signal */
    char *out, *err;
    size_t out_len, err_len;
} result;

/* ---- helpers ------------------------------------------------------------- */

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void setup(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/kl-cli-test-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
    snprintf(store, sizeof store, "%s/store", tmp);
}

static void teardown(void) { nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

typedef struct tpath {
    char p[400];
} tpath;

/* TMP/name, in storage the caller owns. */
static tpath in_tmp(const char *name)
{
    tpath t;
    snprintf(t.p, sizeof t.p, "%s/%s", tmp, name);
    return t;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    size_t got;
    while ((got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) b = realloc(b, (cap *= 2) + 1);
    }
    fclose(f);
    b[n] = 0;
    *len = n;
    return b;
}

static int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Spawns KLSTORE_BIN with argv (NULL-terminated) and the given stdin/out/err
 * paths (NULL = /dev/null for stdin; out/err must be given). */
static pid_t spawn_files(char **argv, const char *in, const char *out, const char *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in ? in : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, KLSTORE_BIN, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "posix_spawn %s: %s", KLSTORE_BIN, strerror(rc));
    return pid;
}

/* Appends the NULL-terminated va_list words to argv[n...]; returns argv. */
static char **add_args(char **argv, int n, va_list ap)
{
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 63) argv[n++] = (char *)a;
    argv[n] = NULL;
    return argv;
}

static result run_argv(char **argv, const void *input, size_t in_len)
{
    tpath in = in_tmp("stdin"), out = in_tmp("stdout"), err = in_tmp("stderr");
    if (input) write_file(in.p, input, in_len);
    pid_t pid = spawn_files(argv, input ? in.p : NULL, out.p, err.p);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    result r = {.code = exit_code(status)};
    r.out = slurp(out.p, &r.out_len);
    r.err = slurp(err.p, &r.err_len);
    return r;
}

/* klstore --store STORE ARGS... < input */
static result run_in(const void *input, size_t len, ...)
{
    char *argv[64] = {KLSTORE_BIN, "--store", store};
    va_list ap;
    va_start(ap, len);
    add_args(argv, 3, ap);
    va_end(ap);
    return run_argv(argv, input, len);
}
#define run(...)          run_in(NULL, 0, __VA_ARGS__, NULL)
#define run_stdin(s, ...) run_in((s), strlen(s), __VA_ARGS__, NULL)

/* klstore ARGS... (no --store) */
static result run_bare_v(const char *first, ...)
{
    char *argv[64] = {KLSTORE_BIN, (char *)first};
    va_list ap;
    va_start(ap, first);
    add_args(argv, 2, ap);
    va_end(ap);
    return run_argv(argv, NULL, 0);
}
#define run_bare(...) run_bare_v(__VA_ARGS__, NULL)

static void result_free(result *r)
{
    free(r->out);
    free(r->err);
}

/* Exit code `code`, and stderr exactly one line "klstore: ...". */
static void expect_error(result r, int code, const char *prefix, const char *needle)
{
    cr_expect_eq(r.code, code, "exit %d, want %d; stderr: %s", r.code, code, r.err);
    cr_expect(strncmp(r.err, prefix, strlen(prefix)) == 0, "stderr '%s' lacks prefix '%s'", r.err,
              prefix);
    cr_expect(r.err_len > 0 && r.err[r.err_len - 1] == '\n' &&
                  strchr(r.err, '\n') == r.err + r.err_len - 1,
              "stderr is not one line: '%s'", r.err);
    if (needle) cr_expect(strstr(r.err, needle), "stderr '%s' lacks '%s'", r.err, needle);
    cr_expect_eq(r.out_len, 0, "stdout not empty: '%s'", r.out);
    result_free(&r);
}

static void expect_ok(result r, const char *out)
{
    cr_expect_eq(r.code, 0, "exit %d; stderr: %s", r.code, r.err);
    if (out) cr_expect_str_eq(r.out, out);
    result_free(&r);
}

/* create-keyspace ks, then append `lines` to ks/key at fixed timestamp ts. */
static void seed(const char *key, const char *lines, const char *ts)
{
    result r = run("create-keyspace", "--if-not-exists", "ks");
    cr_assert_eq(r.code, 0, "%s", r.err);
    result_free(&r);
    r = run_stdin(lines, "append", "ks", key, "--timestamp", ts);
    cr_assert_eq(r.code, 0, "%s", r.err);
    result_free(&r);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to ms for `path` to contain `needle`. */
static int wait_for(const char *path, const char *needle, int ms)
{
    int64_t end = mono_ms() + ms;
    do {
        size_t n;
        char *s = slurp(path, &n);
        int found = strstr(s, needle) != NULL;
        free(s);
        if (found) return 1;
        usleep(50 * 1000);
    } while (mono_ms() < end);
    return 0;
}

/* Waits up to ms for pid to exit; returns its exit code or -1. */
static int wait_exit(pid_t pid, int ms)
{
    int64_t end = mono_ms() + ms;
    do {
        int status;
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) return exit_code(status);
        usleep(20 * 1000);
    } while (mono_ms() < end);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* ---- keyspaces ---------------------------------------------------------- */

Test(cli, create_keyspace_and_exists)
{
    result r = run("create-keyspace", "ks");
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.err, "created keyspace 'ks'"), "%s", r.err);
    result_free(&r);
    expect_error(run("create-keyspace", "ks"), 5,
                 "klstore: create-keyspace: ", "keyspace 'ks' already exists");
    expect_ok(run("create-keyspace", "--if-not-exists", "ks"), "");
    expect_ok(run("ls"), "ks\n");
}

/* ---- append and read ----------------------------------------------------- */

Test(cli, append_then_read_text)
{
    result r = run_stdin("a\nb\n\nlast without newline", "append", "ks", "k");
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.err, "4 lines read, 4 records appended (offsets 1-4)"), "%s", r.err);
    result_free(&r);
    expect_ok(run("read", "ks", "k"), "a\nb\n\nlast without newline\n");
}

Test(cli, read_json_exact)
{
    seed("k", "x\ny\n", "1700000000000");
    expect_ok(run("read", "ks", "k", "--format", "json"),
              "{\"offset\":1,\"timestamp\":1700000000000,\"nonce\":null,\"value\":\"x\"}\n"
              "{\"offset\":2,\"timestamp\":1700000000000,\"nonce\":null,\"value\":\"y\"}\n");
    expect_ok(
        run("read", "ks", "k", "--format", "json", "--value-encoding", "base64", "--limit", "1"),
        "{\"offset\":1,\"timestamp\":1700000000000,\"nonce\":null,\"value\":\"eA==\"}\n");
}

Test(cli, json_escaping)
{
    /* quote, backslash, tab, DEL, valid UTF-8 (e-acute), invalid byte 0xff */
    seed("k", "q\"b\\t\tz\x7f\xc3\xa9\xff\n", "5");
    expect_ok(run("read", "ks", "k", "--format", "json"),
              "{\"offset\":1,\"timestamp\":5,\"nonce\":null,"
              "\"value\":\"q\\\"b\\\\t\\tz\\u007f\xc3\xa9\\u00ff\"}\n");
}

Test(cli, binary_safe_lines)
{
    char line[257];
    size_t n = 0;
    for (int b = 0; b <= 0xff; b++)
        if (b != '\n') line[n++] = (char)b;
    line[n++] = '\n';
    result r = run_in(line, n, "append", "ks", "bin", NULL);
    cr_assert_eq(r.code, 0, "%s", r.err);
    result_free(&r);
    r = run("read", "ks", "bin");
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect_eq(r.out_len, n);
    cr_expect(memcmp(r.out, line, n) == 0, "bytes differ after a round trip");
    result_free(&r);
    r = run("read", "ks", "bin", "--format", "json");
    cr_expect(strstr(r.out, "\"value\":\"\\u0000\\u0001\\u0002"), "%s", r.out);
    cr_expect(strstr(r.out, "\\u00fe\\u00ff\"}\n"), "%s", r.out);
    result_free(&r);
}

Test(cli, read_from_every_kind)
{
    seed("k", "t100\n", "100");
    seed("k", "t200\n", "200");
    seed("k", "t300\n", "300");
    expect_ok(run("read", "ks", "k", "--from", "first"), "t100\nt200\nt300\n");
    expect_ok(run("read", "ks", "k", "--from", "last"), "t300\n");
    expect_ok(run("read", "ks", "k", "--from", "offset:2"), "t200\nt300\n");
    expect_ok(run("read", "ks", "k", "--from", "offset:99"), "");
    expect_ok(run("read", "ks", "k", "--from", "timestamp:150"), "t200\nt300\n");
    expect_ok(run("read", "ks", "k", "--from", "timestamp:1970-01-01T00:00:00.200Z"),
              "t200\nt300\n");
    expect_ok(run("read", "ks", "k", "--from", "timestamp:250", "--backwards"), "t200\nt100\n");

    result r = run_stdin("n5\nn6\nn7\n", "append", "ks", "n", "--nonce", "5");
    cr_assert_eq(r.code, 0, "%s", r.err);
    result_free(&r);
    expect_ok(run("read", "ks", "n", "--from", "nonce:6"), "n6\nn7\n");
    expect_ok(run("read", "ks", "n", "--from", "nonce:6", "--backwards"), "n6\nn5\n");
    result j = run("read", "ks", "n", "--format", "json", "--from", "nonce:7");
    cr_expect(strstr(j.out, "\"offset\":3,") && strstr(j.out, "\"nonce\":\"7\""), "%s", j.out);
    result_free(&j);
}

Test(cli, backwards_limit_page_size)
{
    seed("k", "1\n2\n3\n4\n5\n", "1");
    expect_ok(run("read", "ks", "k", "--backwards"), "5\n4\n3\n2\n1\n");
    expect_ok(run("read", "ks", "k", "--backwards", "--from", "offset:2"), "2\n1\n");
    expect_ok(run("read", "ks", "k", "--backwards", "--limit", "2"), "5\n4\n");
    expect_ok(run("read", "ks", "k", "--limit", "3", "--page-size", "1"), "1\n2\n3\n");
    expect_ok(run("read", "ks", "k", "--page-size", "2"), "1\n2\n3\n4\n5\n");
    expect_ok(run("read", "ks", "k", "--backwards", "--page-size", "2"), "5\n4\n3\n2\n1\n");
    expect_ok(run("read", "ks", "k", "--limit", "0"), "");
    expect_ok(run("read", "ks", "k", "--limit", "18446744073709551615"), "1\n2\n3\n4\n5\n");
    expect_error(run("read", "ks", "k", "--limit", "18446744073709551616"), 2,
                 "klstore: read: ", "--limit");
}

Test(cli, batching_writes_few_objects)
{
    result r = run_stdin("1\n2\n3\n4\n5\n", "append", "ks", "k", "--batch-records", "2");
    cr_assert_eq(r.code, 0, "%s", r.err);
    result_free(&r);
    r = run("meta", "ks", "k", "--count");
    cr_expect(strstr(r.out, "records: 5\n"), "%s", r.out);
    cr_expect(strstr(r.out, "objects: 3\n"), "%s", r.out);
    result_free(&r);
    r = run_stdin("6\n7\n8\n", "append", "ks", "k");
    result_free(&r);
    r = run("meta", "ks", "k", "--count");
    cr_expect(strstr(r.out, "objects: 4\n"), "one batch, one object: %s", r.out);
    result_free(&r);
}

/* ---- nonces -------------------------------------------------------------- */

Test(cli, nonce_sequence_dedups_replay)
{
    result r = run_stdin("a\nb\nc\n", "append", "ks", "k", "--nonce", "10");
    cr_expect(strstr(r.err, "3 records appended (offsets 1-3)"), "%s", r.err);
    result_free(&r);
    r = run_stdin("a\nb\nc\nd\n", "append", "ks", "k", "--nonce", "10");
    cr_expect_eq(r.code, 0);
    cr_expect(strstr(r.err, "4 lines read, 1 record appended (offset 4), 3 dropped as "
                            "duplicates"),
              "%s", r.err);
    result_free(&r);
    expect_ok(run("read", "ks", "k"), "a\nb\nc\nd\n");
    r = run("meta", "ks", "k", "--format", "json");
    cr_expect(strstr(r.out, "\"next_offset\":5,\"next_nonce\":\"14\",\"records\":4"), "%s", r.out);
    result_free(&r);
}

Test(cli, nonce_prefix_lines)
{
    result r =
        run_stdin("5\tfive\n3\tdup\n\tno nonce\n340282366920938463463374607431768211454\tmax\n",
                  "append", "ks", "k", "--nonce-prefix");
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.err, "3 records appended (offsets 1-3), 1 dropped"), "%s", r.err);
    result_free(&r);
    r = run("read", "ks", "k", "--format", "json");
    cr_expect(strstr(r.out, "\"nonce\":\"5\",\"value\":\"five\""), "%s", r.out);
    cr_expect(strstr(r.out, "\"nonce\":null,\"value\":\"no nonce\""), "%s", r.out);
    cr_expect(strstr(r.out, "\"nonce\":\"340282366920938463463374607431768211454\""), "%s", r.out);
    result_free(&r);
}

Test(cli, nonce_prefix_bad_line_writes_what_came_before)
{
    result r =
        run_stdin("1\tone\n2\ttwo\nno tab here\n3\tthree\n", "append", "ks", "k", "--nonce-prefix");
    expect_error(r, 4, "klstore: append: ks/k: line 3: no TAB", "2 records appended (offsets 1-2)");
    expect_ok(run("read", "ks", "k"), "one\ntwo\n");
    expect_error(run_stdin("x\tone\n", "append", "ks", "k2", "--nonce-prefix"), 4,
                 "klstore: append: ", "bad nonce 'x'");
    expect_error(run_stdin("340282366920938463463374607431768211455\tx\n", "append", "ks", "k2",
                           "--nonce-prefix"),
                 4, "klstore: append: ", "reserved");
    expect_error(run_stdin("a\n", "append", "ks", "k2", "--nonce", "1", "--nonce-prefix"), 2,
                 "klstore: append: ", "cannot be combined");
    expect_error(run_stdin("a\n", "append", "ks", "k2", "--nonce", "-1"), 2,
                 "klstore: append: ", "--nonce");
}

/* ---- input edge cases ------------------------------------------------------ */

Test(cli, empty_stdin)
{
    result r = run_stdin("", "append", "ks", "k");
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.err, "0 lines read, no records appended"), "%s", r.err);
    result_free(&r);
    expect_error(run("read", "ks", "k"), 3, "klstore: read: ", "not found");
}

Test(cli, record_too_large)
{
    size_t big = (size_t)70 << 20;
    char *in = malloc(big + 64);
    size_t n = 0;
    n += (size_t)sprintf(in, "ok1\nok2\n");
    memset(in + n, 'x', big);
    n += big;
    n += (size_t)sprintf(in + n, "\nafter\n");
    result r = run_in(in, n, "append", "ks", "k", NULL);
    free(in);
    cr_expect(strstr(r.err, "line 3: record too large"), "%s", r.err);
    expect_error(r, 4, "klstore: append: ks/k: ", "2 records appended (offsets 1-2)");
    expect_ok(run("read", "ks", "k"), "ok1\nok2\n");
}

Test(cli, fixed_and_parsed_timestamps)
{
    seed("k", "a\n", "2024-05-01T12:00:00Z");
    expect_ok(run("read", "ks", "k", "--format", "json"),
              "{\"offset\":1,\"timestamp\":1714564800000,\"nonce\":null,\"value\":\"a\"}\n");
    expect_error(run_stdin("a\n", "append", "ks", "k", "--timestamp", "yesterday"), 2,
                 "klstore: append: ", "invalid --timestamp 'yesterday'");
    seed("r", "a\n", "-1h");
    result r = run("read", "ks", "r", "--from", "timestamp:-2h");
    cr_expect_str_eq(r.out, "a\n");
    result_free(&r);
}

/* ---- tail ------------------------------------------------------------------- */

Test(cli, tail_last_n)
{
    seed("k", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "1");
    expect_ok(run("tail", "ks", "k"), "3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n");
    expect_ok(run("tail", "ks", "k", "-n", "2"), "11\n12\n");
    expect_ok(run("tail", "ks", "k", "--lines", "100"), "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n");
    expect_ok(run("tail", "ks", "k", "-n", "0"), "");
    expect_ok(run("tail", "ks", "k", "-n", "1", "--format", "json"),
              "{\"offset\":12,\"timestamp\":1,\"nonce\":null,\"value\":\"12\"}\n");
    expect_error(run("tail", "ks", "nokey"), 3, "klstore: tail: ", "key 'nokey' not found");
    expect_error(run("tail", "ks", "k", "-n", "x"), 2, "klstore: tail: ", "invalid -n 'x'");
}

Test(cli, tail_follow_sees_other_process)
{
    seed("k", "old1\nold2\n", "1");
    char *argv[] = {KLSTORE_BIN, "--store", store, "tail",       "ks", "k",
                    "-n",        "1",       "-f",  "--interval", "50", NULL};
    tpath outp = in_tmp("follow.out"), errp = in_tmp("follow.err");
    char *out = outp.p, *err = errp.p;
    pid_t pid = spawn_files(argv, NULL, out, err);
    cr_expect(wait_for(out, "old2\n", 5000), "tail -f never printed the last record");
    result r = run_stdin("new1\nnew2\n", "append", "ks", "k");
    cr_expect_eq(r.code, 0, "%s", r.err);
    result_free(&r);
    int seen = wait_for(out, "old2\nnew1\nnew2\n", 5000);
    kill(pid, SIGINT);
    int code = wait_exit(pid, 5000);
    size_t n;
    char *s = slurp(out, &n);
    cr_expect(seen, "tail -f did not pick up the new records: '%s'", s);
    cr_expect_str_eq(s, "old2\nnew1\nnew2\n");
    free(s);
    cr_expect_eq(code, 0, "tail -f exit %d after SIGINT", code);
}

Test(cli, tail_follow_waits_for_new_key_and_stops_on_sigterm)
{
    result r = run("create-keyspace", "ks");
    result_free(&r);
    char *argv[] = {KLSTORE_BIN, "--store", store,        "tail", "ks",
                    "later",     "-f",      "--interval", "50",   NULL};
    tpath outp = in_tmp("follow.out"), errp = in_tmp("follow.err");
    char *out = outp.p, *err = errp.p;
    pid_t pid = spawn_files(argv, NULL, out, err);
    usleep(200 * 1000);
    r = run_stdin("born\n", "append", "ks", "later");
    result_free(&r);
    cr_expect(wait_for(out, "born\n", 5000), "tail -f missed the first record of a new key");
    kill(pid, SIGTERM);
    cr_expect_eq(wait_exit(pid, 5000), 0);
    expect_error(run("tail", "nosuchks", "k", "-f"), 3,
                 "klstore: tail: ", "keyspace 'nosuchks' not found");
}

Test(cli, tail_follow_ends_when_pipe_closes)
{
    seed("k", "a\n", "1");
    int p[2];
    cr_assert_eq(pipe(p), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    char *argv[] = {KLSTORE_BIN, "--store", store,        "tail", "ks",
                    "k",         "-f",      "--interval", "50",   NULL};
    pid_t pid;
    cr_assert_eq(posix_spawn(&pid, KLSTORE_BIN, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    char buf[8];
    cr_expect_eq(read(p[0], buf, 2), 2);
    close(p[0]);
    cr_expect_eq(wait_exit(pid, 5000), 0, "tail -f did not end quietly on a closed pipe");
}

/* ---- append from a live pipe ------------------------------------------------- */

/* Spawns `klstore append ks k ARGS` reading from a pipe; returns the
 * write end. */
static int spawn_append(pid_t *pid, char **extra)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[0], 0);
    posix_spawn_file_actions_addclose(&fa, p[1]);
    tpath errp = in_tmp("append.err");
    posix_spawn_file_actions_addopen(&fa, 2, errp.p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char *argv[16] = {KLSTORE_BIN, "--store", store, "append", "ks", "k"};
    for (int i = 0; extra[i]; i++) argv[6 + i] = extra[i];
    cr_assert_eq(posix_spawn(pid, KLSTORE_BIN, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(p[0]);
    return p[1];
}

static int read_shows(const char *want, int ms)
{
    int64_t end = mono_ms() + ms;
    do {
        result r = run("read", "ks", "k");
        int ok = r.code == 0 && strcmp(r.out, want) == 0;
        result_free(&r);
        if (ok) return 1;
        usleep(100 * 1000);
    } while (mono_ms() < end);
    return 0;
}

Test(cli, append_flushes_when_stdin_idle)
{
    pid_t pid;
    char *extra[] = {"--batch-ms", "100", NULL};
    int fd = spawn_append(&pid, extra);
    cr_assert_eq(write(fd, "idle1\nidle2\n", 12), 12);
    cr_expect(read_shows("idle1\nidle2\n", 5000), "a pending batch was not written while "
                                                  "stdin stayed open");
    close(fd);
    cr_expect_eq(wait_exit(pid, 5000), 0);
}

Test(cli, append_interrupted_writes_what_it_read)
{
    pid_t pid;
    char *extra[] = {"--batch-ms", "0", NULL};
    int fd = spawn_append(&pid, extra);
    cr_assert_eq(write(fd, "r1\nr2\n", 6), 6);
    usleep(500 * 1000);
    kill(pid, SIGINT);
    int code = wait_exit(pid, 5000);
    close(fd);
    cr_expect_eq(code, 130);
    size_t n;
    tpath errp = in_tmp("append.err");
    char *err = slurp(errp.p, &n);
    cr_expect(strstr(err, "interrupted") && strstr(err, "2 records appended (offsets 1-2)"), "%s",
              err);
    free(err);
    expect_ok(run("read", "ks", "k"), "r1\nr2\n");
}

/* ---- meta and ls -------------------------------------------------------------- */

Test(cli, meta_keyspace_and_key)
{
    seed("k", "a\nbb\n", "1000");
    result r = run("meta", "ks");
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strncmp(r.out, "keyspace: ks\ncreated: ", 22) == 0, "%s", r.out);
    cr_expect(strstr(r.out, "Z)\n"), "no ISO-8601 time: %s", r.out);
    result_free(&r);
    r = run("meta", "ks", "--format", "json");
    cr_expect(strncmp(r.out, "{\"keyspace\":\"ks\",\"created\":", 27) == 0, "%s", r.out);
    cr_expect(strstr(r.out, "\"created_iso\":\""), "%s", r.out);
    result_free(&r);
    seed("k", "ccc\n", "900"); /* an older timestamp in a newer object */
    expect_ok(run("meta", "ks", "k"),
              "keyspace: ks\nkey: k\nnext_offset: 4\nnext_nonce: 0\nrecords: 3\n"
              "first_timestamp: 1000 (1970-01-01T00:00:01.000Z)\n"
              "last_timestamp: 900 (1970-01-01T00:00:00.900Z)\n");
    expect_ok(run("meta", "ks", "k", "--count"),
              "keyspace: ks\nkey: k\nnext_offset: 4\nnext_nonce: 0\nrecords: 3\n"
              "first_timestamp: 1000 (1970-01-01T00:00:01.000Z)\n"
              "last_timestamp: 900 (1970-01-01T00:00:00.900Z)\n"
              "objects: 2\nbytes: 126\nmin_timestamp: 900 (1970-01-01T00:00:00.900Z)\n"
              "max_timestamp: 1000 (1970-01-01T00:00:01.000Z)\n");
    expect_ok(run("meta", "ks", "k", "--format", "json"),
              "{\"keyspace\":\"ks\",\"key\":\"k\",\"next_offset\":4,\"next_nonce\":\"0\","
              "\"records\":3,\"first_timestamp\":1000,\"last_timestamp\":900}\n");
    expect_ok(run("meta", "ks", "k", "--format", "json", "--count"),
              "{\"keyspace\":\"ks\",\"key\":\"k\",\"next_offset\":4,\"next_nonce\":\"0\","
              "\"records\":3,\"first_timestamp\":1000,\"last_timestamp\":900,\"objects\":2,"
              "\"bytes\":126,\"min_timestamp\":900,\"max_timestamp\":1000}\n");
    expect_error(run("meta", "nope"), 3, "klstore: meta: ", "keyspace 'nope' not found");
    expect_error(run("meta", "ks", "nokey"), 3,
                 "klstore: meta: ", "key 'nokey' not found in keyspace 'ks'");
    expect_error(run("meta", "ks", "k", "--format", "xml"), 2,
                 "klstore: meta: ", "invalid --format 'xml'");
}

Test(cli, ls_keyspaces_and_keys)
{
    expect_error(run("ls"), 3, "klstore: ls: ", "does not exist");
    seed("b", "x\n", "1");
    seed("a", "x\n", "1");
    result r = run("create-keyspace", "empty");
    result_free(&r);
    expect_ok(run("ls"), "empty\nks\n");
    expect_ok(run("ls", "ks"), "a\nb\n");
    expect_ok(run("ls", "--format", "json"), "[\"empty\",\"ks\"]\n");
    expect_ok(run("ls", "ks", "--format", "json"), "[\"a\",\"b\"]\n");
    expect_ok(run("ls", "empty"), "");
    expect_error(run("ls", "nope"), 3, "klstore: ls: ", "keyspace 'nope' not found");
    expect_error(run("ls", "a", "b"), 2, "klstore: ls: ", "unexpected argument 'b'");
}

/* ---- usage errors -------------------------------------------------------------- */

Test(cli, usage_errors)
{
    expect_error(run("frobnicate"), 2, "klstore: unknown command 'frobnicate'", NULL);
    expect_error(run("read", "ks"), 2, "klstore: read: missing argument", NULL);
    expect_error(run("read", "ks", "k", "extra"), 2, "klstore: read: unexpected argument", NULL);
    expect_error(run("read", "ks", "k", "--bogus"), 2, "klstore: read: unknown", "'--bogus'");
    expect_error(run("read", "ks", "k", "-x"), 2, "klstore: read: unknown option '-x'", NULL);
    expect_error(run("read", "ks", "k", "--limit"), 2, "klstore: read: ", "needs a value");
    expect_error(run("read", "ks", "k", "--limit", "-5"), 2, "klstore: read: ", "--limit");
    expect_error(run("read", "ks", "k", "--limit", "12abc"), 2, "klstore: read: ", "--limit");
    expect_error(run("read", "ks", "k", "--page-size", "0"), 2, "klstore: read: ", "--page-size");
    expect_error(run("read", "ks", "k", "--backwards=yes"), 2,
                 "klstore: read: ", "does not take a value");
    expect_error(run("read", "ks", "k", "--format", "yaml"), 2, "klstore: read: ", "yaml");
    expect_error(run("read", "ks", "k", "--value-encoding", "hex"), 2, "klstore: read: ", "hex");
    expect_error(run("tail", "ks", "k", "--interval", "0"), 2, "klstore: tail: ", "--interval");
    expect_error(run_stdin("a\n", "append", "ks", "k", "--batch-records", "0"), 2,
                 "klstore: append: ", "--batch-records");
    expect_error(run_bare("--nope"), 2, "klstore: unknown option '--nope'", NULL);
    expect_error(run_bare("--store"), 2, "klstore: option '--store' needs a value", NULL);
    result r = run_bare("--store", store);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "usage: klstore"), "%s", r.err);
    result_free(&r);
}

Test(cli, bad_from)
{
    seed("k", "a\n", "1");
    const char *bad[] = {"",
                         "middle",
                         "offset:",
                         "offset:0",
                         "offset:x",
                         "offset:-1",
                         "timestamp:",
                         "timestamp:tomorrow",
                         "nonce:",
                         "nonce:-3",
                         "nonce:340282366920938463463374607431768211456",
                         "first:1",
                         "last:2",
                         "OFFSET:1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_error(run("read", "ks", "k", "--from", bad[i]), 2, "klstore: read: ", "--from");
}

Test(cli, bad_names)
{
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    const char *bad[] = {"a/b", "", ".hidden", "..", "x_config.ini", "tab\there", longname};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        expect_error(run("create-keyspace", bad[i]), 2, "klstore: create-keyspace: ", NULL);
        expect_error(run_stdin("a\n", "append", "ks", bad[i]), 2, "klstore: append: ", NULL);
        expect_error(run("read", bad[i], "k"), 2, "klstore: read: ", NULL);
        expect_error(run("meta", "ks", bad[i]), 2, "klstore: meta: ", NULL);
    }
    expect_error(run("read", "ks", "a/b"), 2, "klstore: read: ", "'/'");
}

/* ---- the store ----------------------------------------------------------------- */

Test(cli, store_problems)
{
    /* a read-only command on a store that does not exist */
    char missing[400];
    snprintf(missing, sizeof missing, "%s/missing", tmp);
    expect_error(run_bare("--store", missing, "ls"), 3, "klstore: ls: ", "does not exist");
    struct stat sb;
    cr_expect(stat(missing, &sb) != 0, "ls created the store directory");
    /* a store that is a regular file */
    tpath filep = in_tmp("plainfile");
    char *file = filep.p;
    write_file(file, "x", 1);
    expect_error(run_bare("--store", file, "create-keyspace", "ks"), 1,
                 "klstore: create-keyspace: ", NULL);
    char under[450];
    snprintf(under, sizeof under, "%s/sub", file);
    expect_error(run_bare("--store", under, "create-keyspace", "ks"), 1,
                 "klstore: create-keyspace: ", NULL);
    /* file:// URLs */
    char url[420];
    snprintf(url, sizeof url, "file://%s", store);
    expect_ok(run_bare("--store", url, "create-keyspace", "viaurl"), "");
    expect_ok(run("ls"), "viaurl\n");
}

/* Runs argv as user `nobody` (for a root test run, where permissions do
 * not apply); stdin/stdout/stderr are opened before dropping privileges. */
static result run_as_nobody(char **argv, const char *input)
{
    tpath in = in_tmp("stdin"), out = in_tmp("stdout"), err = in_tmp("stderr");
    write_file(in.p, input, strlen(input));
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int fds[3] = {open(in.p, O_RDONLY), open(out.p, O_WRONLY | O_CREAT | O_TRUNC, 0644),
                      open(err.p, O_WRONLY | O_CREAT | O_TRUNC, 0644)};
        for (int i = 0; i < 3; i++)
            if (fds[i] < 0 || dup2(fds[i], i) < 0) _exit(99);
        if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(98);
        execv(KLSTORE_BIN, argv);
        _exit(97);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    result r = {.code = exit_code(status)};
    r.out = slurp(out.p, &r.out_len);
    r.err = slurp(err.p, &r.err_len);
    return r;
}

Test(cli, store_without_permission)
{
    result r = run("create-keyspace", "ks");
    result_free(&r);
    cr_assert_eq(chmod(store, 0), 0);
    char *ls[] = {KLSTORE_BIN, "--store", store, "ls", NULL};
    char *append[] = {KLSTORE_BIN, "--store", store, "append", "ks", "k", NULL};
    if (geteuid() == 0) {
        cr_assert_eq(chmod(tmp, 0755), 0); /* nobody may enter tmp, not the store */
        expect_error(run_as_nobody(ls, ""), 1, "klstore: ls: ", "Permission denied");
        expect_error(run_as_nobody(append, "a\n"), 1, "klstore: append: ", "Permission denied");
    } else {
        expect_error(run_argv(ls, NULL, 0), 1, "klstore: ls: ", "Permission denied");
        expect_error(run_argv(append, "a\n", 2), 1, "klstore: append: ", "Permission denied");
    }
    chmod(store, 0755);
}

Test(cli, config_file)
{
    tpath inip = in_tmp("klstore.ini"), badp = in_tmp("bad.ini"), absent = in_tmp("absent.ini");
    char *ini = inip.p;
    char text[600];
    snprintf(text, sizeof text, "[local]\nroot=%s\ndefault_page_size=2\n", store);
    write_file(ini, text, strlen(text));
    expect_ok(run_bare("--config", ini, "create-keyspace", "fromini"), "");
    expect_ok(run_bare("ls", "--config", ini), "fromini\n");
    char *bad = badp.p;
    write_file(bad, "[local]\nnonsense=1\n", 19);
    expect_error(run_bare("--config", bad, "ls"), 2, "klstore: ls: ", "nonsense");
    expect_error(run_bare("--config", absent.p, "ls"), 2, "klstore: ls: ", NULL);
}

/* ---- help ------------------------------------------------------------------------ */

Test(cli, help_and_version)
{
    result r = run_bare("help");
    cr_expect_eq(r.code, 0);
    const char *cmds[] = {"create-keyspace", "append", "read", "tail", "meta", "ls", "Exit codes"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        cr_expect(strstr(r.out, cmds[i]), "help lacks %s", cmds[i]);
    result_free(&r);
    const char *names[] = {"create-keyspace", "append", "read", "tail", "meta", "ls", "help"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char want[64];
        snprintf(want, sizeof want, "usage: klstore %s ", names[i]);
        r = run_bare(names[i], "--help");
        cr_expect_eq(r.code, 0, "%s --help", names[i]);
        cr_expect(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
        result_free(&r);
        r = run_bare("help", names[i]);
        cr_expect(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
        result_free(&r);
    }
    expect_ok(run_bare("--version"), "klstore 0.2.0\n");
    expect_error(run_bare("help", "nope"), 2, "klstore: help: unknown command 'nope'", NULL);
}

/* ---- S3 (when scripts/test.sh provides a server) ------------------------------------ */

Test(cli, s3_roundtrip)
{
    const char *ep = getenv("KL_S3_ENDPOINT"), *bucket = getenv("KL_S3_BUCKET");
    if (!ep || !bucket) {
        teardown(); /* .fini does not run after a skip */
        cr_skip_test("KL_S3_ENDPOINT/KL_S3_BUCKET unset (scripts/test.sh starts Ceph RGW)");
    }
    tpath inip = in_tmp("s3.ini");
    char *ini = inip.p;
    char text[1024], url[300];
    snprintf(text, sizeof text,
             "[s3]\nbucket_name=%s\npath_style=true\nuse_default_credentials=false\n"
             "access_key=%s\nsecret_key=%s\nregion=%s\n",
             bucket, getenv("KL_S3_ACCESS_KEY"), getenv("KL_S3_SECRET_KEY"),
             getenv("KL_S3_REGION") ? getenv("KL_S3_REGION") : "us-east-1");
    write_file(ini, text, strlen(text));
    snprintf(url, sizeof url, "s3://%s/cli-%d-%ld/", bucket, (int)getpid(), (long)time(NULL));
    char *base[] = {KLSTORE_BIN, "--config", ini, "--endpoint", (char *)ep, "--store", url};
    char *create[16], *append[16], *read[16], *ls[16], *meta[16];
    size_t nb = sizeof base / sizeof *base;
    const char *words[][6] = {{"create-keyspace", "ks"},
                              {"append", "ks", "k"},
                              {"read", "ks", "k", "--backwards"},
                              {"ls", "ks"},
                              {"meta", "ks", "k", "--format", "json"}};
    char **argvs[] = {create, append, read, ls, meta};
    for (size_t i = 0; i < 5; i++) {
        memcpy(argvs[i], base, sizeof base);
        size_t n = nb;
        for (size_t j = 0; j < 6 && words[i][j]; j++) argvs[i][n++] = (char *)words[i][j];
        argvs[i][n] = NULL;
    }
    expect_ok(run_argv(create, NULL, 0), "");
    expect_ok(run_argv(append, "s3a\ns3b\n", 8), "");
    expect_ok(run_argv(read, NULL, 0), "s3b\ns3a\n");
    expect_ok(run_argv(ls, NULL, 0), "k\n");
    result r = run_argv(meta, NULL, 0);
    cr_expect(strstr(r.out, "\"next_offset\":3,"), "%s%s", r.out, r.err);
    result_free(&r);
}

/* ---- a hostile S3 server ------------------------------------------------ */
/* Each mode misbehaves one way; the CLI must end within seconds with a
 * clear one-line error and a non-zero exit, whatever the server does. */
#include "../s3/stub_http.h"

typedef enum {
    H_BOMB,
    H_ENDLESS_LIST,
    H_REPEAT_TOKEN,
    H_BACKWARDS,
    H_ENDLESS_BODY,
    H_RESET,
    H_DRIP,
    H_BAD_ENCODING
} hmode;

#define H_BOMB_BODY                                                                                \
    "<?xml version=\"1.0\"?><!DOCTYPE z [<!ENTITY a \"aaaaaaaaaaaaaaaa\">"                         \
    "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"                             \
    "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"                             \
    "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">"                             \
    "<!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">]>"                           \
    "<Error><Code>AccessDenied</Code><Message>&e;&e;&e;&e;&e;&e;</Message></Error>"
#define H_DATA "ks/k/data_o00000000000000000001-o1_t1-t1_n0-n0_s45_p0.bin"

static __thread char h_body[1024];

static void hostile(void *ud, int n, const stub_req *rq, stub_resp *rs)
{
    hmode m = *(hmode *)ud;
    int list = strstr(rq->target, "list-type=2") != NULL;
    rs->status = 200;
    switch (m) {
    case H_BOMB:
        rs->status = 403;
        rs->body = H_BOMB_BODY;
        break;
    case H_ENDLESS_LIST:
        snprintf(h_body, sizeof h_body,
                 "<ListBucketResult><IsTruncated>true</IsTruncated>"
                 "<NextContinuationToken>t%d</NextContinuationToken></ListBucketResult>",
                 n);
        rs->body = h_body;
        break;
    case H_REPEAT_TOKEN:
        rs->body = "<ListBucketResult><IsTruncated>true</IsTruncated>"
                   "<NextContinuationToken>same</NextContinuationToken></ListBucketResult>";
        break;
    case H_BACKWARDS:
        snprintf(h_body, sizeof h_body,
                 "<ListBucketResult><IsTruncated>true</IsTruncated>"
                 "<CommonPrefixes><Prefix>a%d/</Prefix></CommonPrefixes>"
                 "<NextContinuationToken>t%d</NextContinuationToken></ListBucketResult>",
                 9 - n, n);
        rs->body = h_body;
        break;
    case H_ENDLESS_BODY:
        if (list) {
            rs->body = "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>" H_DATA
                       "</Key><Size>45</Size></Contents></ListBucketResult>";
        } else if (strstr(rq->target, "watermark")) {
            rs->status = 404;
            rs->body = "<Error><Code>NoSuchKey</Code></Error>";
        } else {
            rs->body = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
            rs->endless = 1;
        }
        break;
    case H_RESET: rs->status = 0; break;
    case H_BAD_ENCODING: /* libxml2 must not print its complaint */
        rs->body = "<?xml version=\"1.0\" encoding=\"EUC-JP\"?><ListBucketResult>\xff\xfe\x80"
                   "\x81"
                   "FBuc</ListBucketResult>";
        break;
    case H_DRIP:
        rs->body = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
        rs->drip_ms = 200;
        break;
    }
}

static void expect_bounded(hmode mode, const char *cmd1, const char *cmd2, const char *cmd3,
                           int code, const char *needle)
{
    stub *s = stub_start(hostile, &mode);
    char ep[64], st[80];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", stub_port(s));
    snprintf(st, sizeof st, "s3://bkt/");
    tpath cfg = in_tmp("hostile.ini");
    FILE *f = fopen(cfg.p, "w");
    fprintf(f, "[s3]\nbucket_name=bkt\nuse_default_credentials=false\naccess_key=AKID\n"
               "secret_key=SECRET\nmax_retries=2\nrequest_timeout_ms=3000\n");
    fclose(f);
    time_t t0 = time(NULL);
    char *argv[16] = {KLSTORE_BIN,    "--config",   cfg.p,        "--store",   st, "--endpoint", ep,
                      "--path-style", (char *)cmd1, (char *)cmd2, (char *)cmd3};
    result r = run_argv(argv, NULL, 0);
    time_t took = time(NULL) - t0;
    stub_stop(s);
    cr_expect_lt(took, 30, "mode %d: took %ld s", mode, (long)took);
    expect_error(r, code, "klstore: ", needle);
}

Test(cli, hostile_servers_end_in_seconds_with_a_clear_error)
{
    expect_bounded(H_BOMB, "ls", NULL, NULL, 2,
                   "403"); /* 403: credentials, a configuration error */
    expect_bounded(H_ENDLESS_LIST, "ls", NULL, NULL, 4, "never ends");
    expect_bounded(H_REPEAT_TOKEN, "ls", NULL, NULL, 4, "continuation token it was given");
    expect_bounded(H_BACKWARDS, "ls", NULL, NULL, 4, "does not advance");
    expect_bounded(H_ENDLESS_BODY, "read", "ks", "k", 4, "45");
    expect_bounded(H_RESET, "ls", NULL, NULL, 1, NULL);
    expect_bounded(H_DRIP, "ls", NULL, NULL, 1, "timed out");
    expect_bounded(H_BAD_ENCODING, "ls", NULL, NULL, 1, "S3 LIST");
}
