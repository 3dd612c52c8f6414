/* s3_proc.c -- runs a profile's credential_process and reads its JSON
 * (see s3_proc.h).
 *
 * The AWS CLI hands the split command to subprocess.Popen without a
 * shell; so does this, with posix_spawnp: no shell, the PATH lookup of
 * execvp, the caller's environment.  Unlike the AWS CLI the program gets
 * /dev/null as stdin (klstore runs in daemons: a prompt would only wait
 * for the timeout), a deadline (the AWS CLI waits forever) and a cap on
 * its output; it runs in a process group of its own with default signal
 * dispositions, so that on a timeout it is killed along with anything it
 * started (a program that exits normally is waited for; what it leaves
 * running is its own business, as with the AWS CLI).  Its stderr is kept (the first KiB) for the
 * error message, as the AWS CLI shows it; stdout, which holds the secrets, never appears in a
 * message and is wiped.  JSON is read with jansson, as in s3_meta.c.
 */
#define _GNU_SOURCE
#include "s3/s3_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "clock.h"
#include "s3/s3_meta.h"

extern char **environ;

#define STDERR_KEEP 1024

/* ------------------------------------------------------------------ */
/* the command line: shlex.split                                       */
/* ------------------------------------------------------------------ */

void Kl_s3_proc_argv_free(char **argv)
{
    if (!argv) return;
    for (char **a = argv; *a; a++) free(*a);
    free(argv);
}

/* Python's shlex in POSIX mode with whitespace_split and no comments,
 * state for state: ' ' between words, 'a' in a word, a quote character
 * inside quotes, '\\' after a backslash (esc: the state to go back to). */
int Kl_s3_proc_split(const char *cmd, char ***argv_out, char *why, size_t whycap)
{
    *argv_out = NULL;
    size_t n = strlen(cmd), argc = 0;
    /* At most n/2 + 1 words, each at most n bytes: one buffer for all. */
    char **argv = calloc(n / 2 + 2, sizeof *argv);
    char *tok = malloc(n + 1);
    if (!argv || !tok) {
        free(argv);
        free(tok);
        return -2;
    }
    size_t tl = 0;
    char state = ' ', esc = ' ';
    int quoted = 0;
    for (size_t i = 0;; i++) {
        char c = i < n ? cmd[i] : '\0';
        int end = i >= n, blank = c == ' ' || c == '\t' || c == '\r' || c == '\n';
        int emit = 0;
        if (state == '\'' || state == '"') {
            quoted = 1;
            if (end) {
                snprintf(why, whycap, "a %s quote is not closed",
                         state == '"' ? "double" : "single");
                goto fail;
            }
            if (c == state)
                state = 'a';
            else if (c == '\\' && state == '"')
                esc = state, state = '\\';
            else
                tok[tl++] = c;
        } else if (state == '\\') {
            if (end) {
                snprintf(why, whycap, "it ends with a backslash");
                goto fail;
            }
            if ((esc == '\'' || esc == '"') && c != '\\' && c != esc) tok[tl++] = '\\';
            tok[tl++] = c;
            state = esc;
        } else if (end) {
            emit = state == 'a';
        } else if (blank) {
            emit = state == 'a' && (tl || quoted);
            if (state == 'a' && !emit) quoted = 0;
            state = ' ';
        } else if (c == '\'' || c == '"') {
            state = c;
        } else if (c == '\\') {
            esc = 'a', state = '\\';
        } else {
            tok[tl++] = c;
            state = 'a';
        }
        if (emit && (tl || quoted)) {
            if (!(argv[argc] = strndup(tok, tl))) {
                Kl_s3_proc_argv_free(argv);
                free(tok);
                return -2;
            }
            argc++;
            tl = 0;
            quoted = 0;
        }
        if (end) break;
    }
    free(tok);
    if (argc == 0) {
        snprintf(why, whycap, "it is empty");
        free(argv);
        return -1;
    }
    *argv_out = argv;
    return 0;
fail:
    Kl_s3_proc_argv_free(argv);
    free(tok);
    return -1;
}

/* ------------------------------------------------------------------ */
/* running it                                                          */
/* ------------------------------------------------------------------ */

/* The first line of what the program said on stderr, printable ASCII. */
static void first_line(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0, i = 0;
    while (i < n && (s[i] == '\n' || s[i] == '\r' || s[i] == ' ')) i++;
    for (; i < n && s[i] != '\n' && s[i] != '\r' && o + 1 < cap; i++)
        out[o++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[o] = '\0';
}

typedef struct proc_io {
    char *out;
    size_t len, cap, max;
    char err[STDERR_KEEP];
    size_t err_len;
    int too_much;
} proc_io;

/* Reads what is there on fd; 1 at end of file, -1 out of memory. */
static int drain(int fd, proc_io *io, int is_err)
{
    char buf[4096];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0) return 1;
        if (r < 0) return errno == EINTR ? drain(fd, io, is_err) : 0;
        if (is_err) {
            size_t k =
                (size_t)r < STDERR_KEEP - io->err_len ? (size_t)r : STDERR_KEEP - io->err_len;
            memcpy(io->err + io->err_len, buf, k);
            io->err_len += k;
            continue;
        }
        if (io->len + (size_t)r > io->max) {
            io->too_much = 1;
            OPENSSL_cleanse(buf, sizeof buf);
            return 1;
        }
        if (io->len + (size_t)r + 1 > io->cap) {
            size_t nc = (io->len + (size_t)r + 1) * 2;
            char *d = malloc(nc);
            if (!d) return -1;
            if (io->out) {
                memcpy(d, io->out, io->len);
                OPENSSL_cleanse(io->out, io->len);
                free(io->out);
            }
            io->out = d;
            io->cap = nc;
        }
        memcpy(io->out + io->len, buf, (size_t)r);
        io->len += (size_t)r;
        io->out[io->len] = '\0';
        OPENSSL_cleanse(buf, (size_t)r);
    }
}

static void io_wipe(proc_io *io)
{
    if (io->out) OPENSSL_cleanse(io->out, io->len);
    free(io->out);
    io->out = NULL;
}

static pid_t spawn(char **argv, int out_fd, int err_fd, int *errnum)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    pid_t pid = -1;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&fa, 3); /* none of our descriptors */
#endif
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    *errnum = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return *errnum ? -1 : pid;
}

kl_status Kl_s3_proc_run(const char *cmd, const char *what, long timeout_ms, size_t max_out,
                         char **out, size_t *len, kl_error *err)
{
    *out = NULL;
    *len = 0;
    char why[120];
    char **argv;
    int r = Kl_s3_proc_split(cmd, &argv, why, sizeof why);
    if (r == -2) return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
    if (r)
        return kl_seterr(err, KL_EINVAL, "S3 credentials: %s cannot be split into words: %s", what,
                         why);
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC)) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0) close(po[i]);
            if (pe[i] >= 0) close(pe[i]);
        }
        Kl_s3_proc_argv_free(argv);
        return kl_seterr(err, KL_EIO, "S3 credentials: %s: pipe: %s", what, strerror(e));
    }
    fcntl(po[0], F_SETFL, O_NONBLOCK);
    fcntl(pe[0], F_SETFL, O_NONBLOCK);
    int errnum;
    pid_t pid = spawn(argv, po[1], pe[1], &errnum);
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(po[0]);
        close(pe[0]);
        kl_status st = kl_seterr(err, KL_EINVAL, "S3 credentials: %s: cannot run '%.200s': %s",
                                 what, argv[0], strerror(errnum));
        Kl_s3_proc_argv_free(argv);
        return st;
    }
    Kl_s3_proc_argv_free(argv);

    proc_io io = {.max = max_out};
    /* Nanoseconds, so that the deadline is never cut short by rounding;
     * poll waits rounded up to whole milliseconds for the same reason. */
    uint64_t deadline = Kl_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    int open_out = 1, open_err = 1, reaped = 0, status = 0, timed_out = 0, oom = 0;
    while ((open_out || open_err || !reaped) && !io.too_much && !oom) {
        uint64_t now = Kl_mono_ns();
        if (now >= deadline) {
            timed_out = 1;
            break;
        }
        int64_t left = (int64_t)((deadline - now + 999999u) / 1000000u);
        struct pollfd pf[2] = {{open_out ? po[0] : -1, POLLIN, 0},
                               {open_err ? pe[0] : -1, POLLIN, 0}};
        /* Short waits while the child lives: it may exit with a
         * grandchild still holding the pipes. */
        poll(pf, 2, (int)(left < 50 ? left : 50));
        if (open_out && pf[0].revents) {
            int d = drain(po[0], &io, 0);
            oom = d < 0;
            open_out = d == 0;
        }
        if (open_err && pf[1].revents) open_err = drain(pe[0], &io, 1) == 0;
        if (!reaped) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid || (w < 0 && errno == ECHILD)) {
                reaped = w == pid ? 1 : -1;
                /* What it wrote before it exited is in the pipes. */
                if (open_out) oom |= drain(po[0], &io, 0) < 0;
                if (open_err) drain(pe[0], &io, 1);
                open_out = open_err = 0;
            }
        }
    }
    close(po[0]);
    close(pe[0]);
    if (!reaped) {
        /* Not reaped, so the group is still ours: it and all it started. */
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    char line[200];
    first_line(io.err, io.err_len, line, sizeof line);
    kl_status st = KL_OK;
    if (oom)
        st = kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
    else if (timed_out)
        st = kl_seterr(err, KL_EIO, "S3 credentials: %s did not finish within %ld ms; killed it",
                       what, timeout_ms);
    else if (io.too_much)
        st = kl_seterr(err, KL_EINVAL, "S3 credentials: %s printed more than %zu bytes; killed it",
                       what, max_out);
    else if (reaped < 0)
        st = kl_seterr(err, KL_EIO,
                       "S3 credentials: %s: its exit status is lost (is SIGCHLD ignored?)", what);
    else if (WIFSIGNALED(status))
        st = kl_seterr(err, KL_EINVAL, "S3 credentials: %s was killed by signal %d%s%s", what,
                       WTERMSIG(status), line[0] ? ": " : "", line);
    else if (WEXITSTATUS(status) != 0)
        st = kl_seterr(err, KL_EINVAL, "S3 credentials: %s exited with status %d%s%s", what,
                       WEXITSTATUS(status), line[0] ? ": " : "", line);
    if (st != KL_OK) {
        io_wipe(&io);
        return st;
    }
    if (!io.out && !(io.out = strdup("")))
        return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
    *out = io.out;
    *len = io.len;
    return KL_OK;
}

/* ------------------------------------------------------------------ */
/* its answer                                                          */
/* ------------------------------------------------------------------ */

static const char *member(json_t *o, const char *key, int *bad)
{
    json_t *v = json_object_get(o, key);
    if (v && !json_is_string(v) && !json_is_null(v)) *bad = 1;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

kl_status Kl_s3_proc_parse(const char *json, size_t len, const char *what, kl_s3_creds *out,
                           kl_error *err)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *o = json_loadb(json ? json : "", json ? len : 0, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        if (json_error_code(&je) == json_error_out_of_memory)
            return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: %s printed malformed JSON (%s at line %d, column %d)",
                         what, Kl_s3_meta_json_problem(json_error_code(&je)), je.line, je.column);
    }
    kl_status st = KL_OK;
    int bad = 0;
    json_t *ver = json_object_get(o, "Version");
    const char *ak = member(o, "AccessKeyId", &bad), *sk = member(o, "SecretAccessKey", &bad);
    const char *tok = member(o, "SessionToken", &bad), *exp = member(o, "Expiration", &bad);
    int64_t exp_ms = 0;
    if (!json_is_object(o))
        st = kl_seterr(err, KL_EINVAL, "S3 credentials: %s printed JSON that is not an object",
                       what);
    else if (!ver)
        st =
            kl_seterr(err, KL_EINVAL, "S3 credentials: %s printed no Version (it must be 1)", what);
    else if (!(json_is_integer(ver) && json_integer_value(ver) == 1) &&
             !(json_is_real(ver) && json_real_value(ver) == 1.0))
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: %s printed an unsupported Version (only 1 is)", what);
    else if (bad)
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: %s printed a non-string AccessKeyId, SecretAccessKey, "
                       "SessionToken or Expiration",
                       what);
    else if (!ak || !*ak || !sk || !*sk)
        st = kl_seterr(err, KL_EINVAL, "S3 credentials: %s printed no %s", what,
                       !ak || !*ak ? "AccessKeyId" : "SecretAccessKey");
    else if (exp && kl_parse_time(exp, &exp_ms, NULL) != KL_OK)
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: %s printed an Expiration that is not an ISO 8601 time "
                       "('%.40s')",
                       what, exp);
    else
        st = Kl_s3_creds_set(out, ak, sk, tok, exp ? exp_ms : 0, "credential process", err);
    const char *k;
    json_t *v;
    if (json_is_object(o)) json_object_foreach(o, k, v)
        {
            if (json_is_string(v))
                OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
        }
    json_decref(o);
    return st;
}

kl_status Kl_s3_proc_creds(const char *cmd, const char *what, long timeout_ms, kl_s3_creds *out,
                           kl_error *err)
{
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    kl_status st = Kl_s3_proc_run(cmd, what, timeout_ms, KL_S3_PROC_MAX_OUTPUT, &text, &len, err);
    if (st != KL_OK) return st;
    st = Kl_s3_proc_parse(text, len, what, out, err);
    OPENSSL_cleanse(text, len);
    free(text);
    return st;
}
