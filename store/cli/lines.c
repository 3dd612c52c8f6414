/* lines.c -- reading stdin line by line for `klstore append`.
 *
 * stdio's getline would buffer a line of any length (a 10 GB line with no
 * newline would exhaust memory) and cannot wait with a timeout; this
 * reader keeps at most max + one chunk in memory, refuses longer lines
 * without reading on, and can return "idle" so that the caller writes its
 * pending batch while a slow producer (tail -f | klstore append) pauses. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define CHUNK ((size_t)64 << 10)

void cli_lines_init(cli_lines *r, int fd, size_t max)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->max = max;
}

void cli_lines_free(cli_lines *r)
{
    free(r->buf);
    r->buf = NULL;
}

/* Makes room for at least CHUNK more bytes after end: moves the unread
 * part to the front, grows the buffer up to max + 1 + CHUNK. */
static int make_room(cli_lines *r)
{
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->end - r->pos);
        r->end -= r->pos;
        r->pos = 0;
    }
    if (r->cap - r->end >= CHUNK) return 0;
    size_t want = r->cap ? r->cap * 2 : 4 * CHUNK;
    size_t limit = r->max + 1 + CHUNK;
    if (want > limit) want = limit;
    if (want < r->end + CHUNK) want = r->end + CHUNK;
    char *b = realloc(r->buf, want);
    if (!b) {
        errno = ENOMEM;
        return -1;
    }
    r->buf = b;
    r->cap = want;
    return 0;
}

/* Waits for input until the deadline (-1 = none): 1 ready, 0 timeout,
 * CLI_LINE_STOPPED or CLI_LINE_ERROR. */
static int wait_input(cli_lines *r, int64_t deadline)
{
    if (deadline < 0) return 1;
    for (;;) {
        if (cli_stop_signal) return CLI_LINE_STOPPED;
        int64_t left = deadline - kl_mono_ms();
        if (left <= 0) return 0;
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        int n = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
        if (n > 0) return 1;
        if (n < 0 && errno != EINTR) return CLI_LINE_ERROR;
    }
}

/* Reads one chunk: 1 data, 0 end of input, or a CLI_LINE_* code. */
static int fill(cli_lines *r, int64_t deadline)
{
    if (make_room(r) != 0) return CLI_LINE_ERROR;
    for (;;) {
        int w = wait_input(r, deadline);
        if (w <= 0) return w == 0 ? CLI_LINE_TIMEOUT : w;
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n > 0) {
            r->end += (size_t)n;
            return 1;
        }
        if (n == 0) return 0;
        if (errno != EINTR) return CLI_LINE_ERROR;
        if (cli_stop_signal) return CLI_LINE_STOPPED;
    }
}

static int take(cli_lines *r, size_t len, size_t skip, const char **line, size_t *out)
{
    *line = r->buf + r->pos;
    *out = len;
    r->pos += len + skip;
    r->scanned = 0;
    return CLI_LINE;
}

int cli_lines_next(cli_lines *r, long timeout_ms, const char **line, size_t *len)
{
    int64_t deadline = timeout_ms < 0 ? -1 : kl_mono_ms() + timeout_ms;
    for (;;) {
        size_t avail = r->end - r->pos;
        char *nl = avail > r->scanned
                       ? memchr(r->buf + r->pos + r->scanned, '\n', avail - r->scanned)
                       : NULL;
        if (nl) {
            size_t n = (size_t)(nl - (r->buf + r->pos));
            if (n > r->max) return CLI_LINE_TOO_LONG;
            return take(r, n, 1, line, len);
        }
        r->scanned = avail;
        if (avail > r->max) return CLI_LINE_TOO_LONG;
        if (r->eof) return avail ? take(r, avail, 0, line, len) : CLI_LINE_EOF;
        int f = fill(r, deadline);
        if (f == 0)
            r->eof = 1;
        else if (f < 0)
            return f;
    }
}
