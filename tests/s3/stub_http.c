/* stub_http.c -- the loopback HTTP server of stub_http.h.  Deliberately
 * minimal: it trusts its client (our own code under test), reads one
 * request per connection and closes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "stub_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct stub {
    int fd, port;
    pthread_t th;
    pthread_mutex_t mu;
    int count, stop;
    stub_handler h;
    void *ud;
};

static int stopping(stub *s)
{
    pthread_mutex_lock(&s->mu);
    int v = s->stop;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* Reads one request; -1 if the client went away first. */
static int read_request(int c, stub_req *rq)
{
    char buf[65536];
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        if (len == sizeof buf - 1) return -1;
        ssize_t r = recv(c, buf + len, sizeof buf - 1 - len, 0);
        if (r <= 0) return -1;
        len += (size_t)r;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    *end = '\0';
    char *line_end = strstr(buf, "\r\n");
    if (line_end) *line_end = '\0';
    if (sscanf(buf, "%15s %4095s", rq->method, rq->target) != 2) return -1;
    snprintf(rq->headers, sizeof rq->headers, "%s", line_end ? line_end + 2 : "");
    char cl[32];
    size_t want = stub_header(rq, "Content-Length", cl, sizeof cl) ? strtoul(cl, NULL, 10) : 0;
    rq->body = malloc(want + 1);
    size_t have = len - (size_t)(end + 4 - buf);
    if (have > want) have = want;
    memcpy(rq->body, end + 4, have);
    while (have < want) {
        ssize_t r = recv(c, rq->body + have, want - have, 0);
        if (r <= 0) {
            free(rq->body);
            rq->body = NULL;
            return -1;
        }
        have += (size_t)r;
    }
    rq->body[want] = '\0';
    rq->body_len = want;
    return 0;
}

/* 0 when all was sent, -1 when the client went away. */
static int send_all(int c, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(c, p, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *serve(void *arg)
{
    stub *s = arg;
    while (!stopping(s)) {
        struct pollfd pf = {s->fd, POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0) continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) continue;
        stub_req *rq = calloc(1, sizeof *rq);
        if (read_request(c, rq) == 0) {
            pthread_mutex_lock(&s->mu);
            int n = s->count;
            pthread_mutex_unlock(&s->mu);
            stub_resp rs = {0};
            s->h(s->ud, n, rq, &rs);
            /* Sleep in slices so that stub_stop is never held up long. */
            for (int waited = 0; waited < rs.delay_ms && !stopping(s); waited += 10) usleep(10000);
            /* Counted before answering, so a client that got its answer
             * always sees its request counted. */
            pthread_mutex_lock(&s->mu);
            s->count++;
            pthread_mutex_unlock(&s->mu);
            if (rs.status && rs.endless) {
                size_t blen = rs.body ? (rs.body_len ? rs.body_len : strlen(rs.body)) : 0;
                char head[1024];
                int hn = snprintf(head, sizeof head,
                                  "HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n"
                                  "Connection: close\r\n%s\r\n",
                                  rs.status, rs.headers ? rs.headers : "");
                char size_line[32];
                int sn = snprintf(size_line, sizeof size_line, "%zx\r\n", blen);
                int ok = send_all(c, head, (size_t)hn) == 0;
                for (long sent = 0; ok && blen && !stopping(s) && sent < (8L << 30);
                     sent += (long)blen)
                    ok = send_all(c, size_line, (size_t)sn) == 0 &&
                         send_all(c, rs.body, blen) == 0 && send_all(c, "\r\n", 2) == 0;
            } else if (rs.status && rs.drip_ms) {
                size_t blen = rs.body ? (rs.body_len ? rs.body_len : strlen(rs.body)) : 0;
                char head[1024];
                int hn =
                    snprintf(head, sizeof head,
                             "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
                             rs.status, blen, rs.headers ? rs.headers : "");
                int ok = 1;
                for (int i = 0; ok && i < hn + (int)blen && !stopping(s); i++) {
                    ok = send_all(c, i < hn ? head + i : rs.body + (i - hn), 1) == 0;
                    for (int w = 0; ok && w < rs.drip_ms && !stopping(s); w += 10) usleep(10000);
                }
            } else if (rs.status) {
                size_t blen = rs.body ? (rs.body_len ? rs.body_len : strlen(rs.body)) : 0;
                char head[1024];
                int hn =
                    snprintf(head, sizeof head,
                             "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
                             rs.status, strcmp(rq->method, "HEAD") == 0 ? 0 : blen,
                             rs.headers ? rs.headers : "");
                send_all(c, head, (size_t)hn);
                if (strcmp(rq->method, "HEAD") != 0 && blen) send_all(c, rs.body, blen);
            }
        }
        free(rq->body);
        free(rq);
        close(c);
    }
    return NULL;
}

stub *stub_start(stub_handler h, void *ud)
{
    stub *s = calloc(1, sizeof *s);
    s->h = h;
    s->ud = ud;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) || listen(s->fd, 16) ||
        getsockname(s->fd, (struct sockaddr *)&a, &al)) {
        close(s->fd);
        free(s);
        return NULL;
    }
    s->port = ntohs(a.sin_port);
    pthread_create(&s->th, NULL, serve, s);
    return s;
}

int stub_port(const stub *s) { return s->port; }

int stub_count(stub *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void stub_stop(stub *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    close(s->fd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const char *stub_header(const stub_req *rq, const char *name, char *buf, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = rq->headers; *p;) {
        const char *e = strstr(p, "\r\n");
        size_t ll = e ? (size_t)(e - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') v++;
            snprintf(buf, cap, "%.*s", (int)(ll - (size_t)(v - p)), v);
            return buf;
        }
        p += ll + (e ? 2 : 0);
    }
    return NULL;
}
