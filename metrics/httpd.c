/* httpd.c -- the /metrics and /healthz endpoint (see metrics.h), served by
 * libmicrohttpd on one internal thread.
 *
 * We bind the listening socket ourselves and hand it to libmicrohttpd: a
 * port in use or an address not on this host then fails with the system's
 * own reason ("Address already in use"), where MHD_start_daemon would only
 * return NULL.  One polling thread serves one request at a time, so the
 * render callbacks never run concurrently with each other; connections
 * are capped and time out, so a slow or idle scraper cannot pin it. */
#define _GNU_SOURCE
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"

struct km_server {
    struct MHD_Daemon *d;
    km_render_fn render;
    km_health_fn health;
    void *ctx;
    int fd, port, ipv6;
};

/* Splits "HOST:PORT" / "[V6]:PORT" and resolves it (numeric port only). */
static struct addrinfo *resolve(const char *addr, char *err, size_t errlen)
{
    char host[256];
    const char *port;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof host) goto bad;
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host) goto bad;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 0 || p > 65535) goto bad;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE | AI_ADDRCONFIG};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc) {
        snprintf(err, errlen, "metrics listen address '%s': %s", addr, gai_strerror(rc));
        return NULL;
    }
    return ai;
bad:
    snprintf(err, errlen, "metrics listen address '%s' is not HOST:PORT or [IPV6]:PORT", addr);
    return NULL;
}

int km_listen_check(const char *addr, char *err, size_t errlen)
{
    struct addrinfo *ai = resolve(addr, err, errlen);
    if (!ai) return -1;
    freeaddrinfo(ai);
    return 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                             const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    char *body = strdup(text);
    if (!body) return MHD_NO;
    return reply(c, status, body, strlen(body), "text/plain; charset=utf-8");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    km_server *s = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
    if (!strcmp(url, "/metrics")) {
        char *body = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&body, &len);
        if (!f) return MHD_NO;
        s->render(f, s->ctx);
        if (fclose(f)) {
            free(body);
            return MHD_NO;
        }
        return reply(c, MHD_HTTP_OK, body, len, "text/plain; version=0.0.4; charset=utf-8");
    }
    if (!strcmp(url, "/healthz")) {
        char why[512] = "";
        if (!s->health || s->health(why, sizeof why - 1, s->ctx) == 0)
            return reply_text(c, MHD_HTTP_OK, "ok\n");
        strcat(why, "\n");
        return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, why);
    }
    return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics or /healthz\n");
}

km_server *km_server_bind(const char *addr, char *err, size_t errlen)
{
    struct addrinfo *ai = resolve(addr, err, errlen);
    if (!ai) return NULL;
    km_server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    s->ipv6 = ai->ai_family == AF_INET6;
    int one = 1;
    if (s->fd < 0 || setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(s->fd, ai->ai_addr, ai->ai_addrlen) || listen(s->fd, 16)) {
        snprintf(err, errlen, "metrics endpoint %s: %s", addr, strerror(errno));
        freeaddrinfo(ai);
        if (s->fd >= 0) close(s->fd);
        free(s);
        return NULL;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(s->fd, (struct sockaddr *)&bound, &blen);
    s->port = ntohs(s->ipv6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                            : ((struct sockaddr_in *)&bound)->sin_port);
    return s;
}

int km_server_run(km_server *s, km_render_fn render, km_health_fn health, void *ctx, char *err,
                  size_t errlen)
{
    s->render = render;
    s->health = health;
    s->ctx = ctx;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (s->ipv6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, s, MHD_OPTION_LISTEN_SOCKET, s->fd,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!s->d) {
        /* libmicrohttpd may have closed the socket it was given already:
         * closing it again could close a descriptor reused meanwhile, so
         * it is left (a leak at worst, in a failure that ends the endpoint). */
        s->fd = -1;
        snprintf(err, errlen, "metrics endpoint on port %d: libmicrohttpd could not start",
                 s->port);
        return -1;
    }
    return 0;
}

km_server *km_server_start(const char *addr, km_render_fn render, km_health_fn health, void *ctx,
                           char *err, size_t errlen)
{
    km_server *s = km_server_bind(addr, err, errlen);
    if (s && km_server_run(s, render, health, ctx, err, errlen)) {
        km_server_stop(s);
        return NULL;
    }
    return s;
}

int km_server_port(const km_server *s) { return s->port; }

void km_server_stop(km_server *s)
{
    if (!s) return;
    if (s->d)
        MHD_stop_daemon(s->d); /* closes the listening socket it was given */
    else if (s->fd >= 0)
        close(s->fd);
    free(s);
}
