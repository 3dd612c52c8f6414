/* proxy.c -- see proxy.h.  One thread accepts; each connection gets a
 * thread copying both ways with poll(), checking the cut flag every
 * 50 ms. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

struct ht_proxy {
    int listen_fd;
    int port;
    struct sockaddr_in target;
    atomic_int cut;
    _Atomic(const char *) deaf; /* ht_proxy_deaf's needle, or NULL */
    atomic_int delay_ms;        /* ht_proxy_delay */
    atomic_int stopping;
    pthread_t acceptor;
};

typedef struct conn {
    ht_proxy *p;
    int client, server;
} conn;

/* Copies what `from` has to `to`; with a needle, *seen is set when the
 * bytes hold it (a needle split across two reads is missed: tests use
 * short ones that sit in a request's first bytes, its request line or
 * headers). */
static int pump(int from, int to, const char *needle, int *seen)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof buf);
    if (n <= 0) return -1;
    if (needle && memmem(buf, (size_t)n, needle, strlen(needle))) *seen = 1;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w <= 0) return -1;
        off += w;
    }
    return 0;
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    struct pollfd fds[2] = {{c->client, POLLIN, 0}, {c->server, POLLIN, 0}};
    int seen = 0; /* the request being answered held the deaf needle */
    while (!atomic_load(&c->p->cut) && !atomic_load(&c->p->stopping)) {
        int r = poll(fds, 2, 50);
        if (r < 0) break;
        const char *needle = atomic_load(&c->p->deaf);
        if (fds[0].revents && pump(c->client, c->server, needle, &seen)) break;
        if (fds[1].revents) {
            int ms = atomic_load(&c->p->delay_ms);
            if (ms) usleep((useconds_t)ms * 1000u);
            if ((needle && seen) || pump(c->server, c->client, NULL, NULL)) break;
            seen = 0; /* answered: the next request starts afresh */
        }
    }
    close(c->client);
    close(c->server);
    free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    ht_proxy *p = arg;
    while (!atomic_load(&p->stopping)) {
        struct pollfd pf = {p->listen_fd, POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0) continue;
        int fd = accept(p->listen_fd, NULL, NULL);
        if (fd < 0) continue;
        int s = -1;
        if (!atomic_load(&p->cut)) {
            s = socket(AF_INET, SOCK_STREAM, 0);
            if (s >= 0 && connect(s, (struct sockaddr *)&p->target, sizeof p->target)) {
                close(s);
                s = -1;
            }
        }
        conn *c = s >= 0 ? malloc(sizeof *c) : NULL;
        pthread_t t;
        if (!c) {
            close(fd);
            if (s >= 0) close(s);
            continue;
        }
        *c = (conn){p, fd, s};
        if (pthread_create(&t, NULL, conn_main, c) == 0)
            pthread_detach(t);
        else {
            close(fd);
            close(s);
            free(c);
        }
    }
    return NULL;
}

ht_proxy *ht_proxy_start(const char *host, int port)
{
    ht_proxy *p = calloc(1, sizeof *p);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int one = 1;
    if (!p) return NULL;
    p->target.sin_family = AF_INET;
    p->target.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &p->target.sin_addr);
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) ||
        listen(p->listen_fd, 64) || getsockname(p->listen_fd, (struct sockaddr *)&a, &len)) {
        free(p);
        return NULL;
    }
    p->port = ntohs(a.sin_port);
    pthread_create(&p->acceptor, NULL, accept_main, p);
    return p;
}

int ht_proxy_port(const ht_proxy *p) { return p->port; }

void ht_proxy_cut(ht_proxy *p, int cut) { atomic_store(&p->cut, cut); }

void ht_proxy_deaf(ht_proxy *p, const char *needle) { atomic_store(&p->deaf, needle); }

void ht_proxy_delay(ht_proxy *p, int ms) { atomic_store(&p->delay_ms, ms); }

void ht_proxy_stop(ht_proxy *p)
{
    if (!p) return;
    atomic_store(&p->stopping, 1);
    pthread_join(p->acceptor, NULL);
    close(p->listen_fd);
    usleep(200000); /* connection threads notice and exit */
    free(p);
}
