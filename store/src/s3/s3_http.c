/* s3_http.c -- the S3 HTTP transport (see s3_http.h).
 *
 * Every S3 request klstore makes is idempotent, so transport failures,
 * timeouts, 5xx, 429 and SlowDown are retried (max_retries times,
 * exponential backoff with jitter) before giving up with KL_EIO.  Answers
 * that retrying cannot change -- wrong credentials, a missing bucket,
 * access denied -- fail at once with KL_EINVAL and a message naming the
 * bucket, the object, the server's error code and its request id, which
 * is what an operator needs to act or to ask the provider.
 *
 * Connections: a pool of curl easy handles, one taken per request, so that
 * threads never share a handle while a handle's keep-alive connection is
 * reused by whichever request takes it next.  DNS and TLS sessions are
 * shared across the pool through a CURLSH.
 */
#define _GNU_SOURCE
#include "s3/s3_http.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "buf.h"
#include "s3/s3_retry.h"
#include "s3/s3_xml.h"

/* Caps on response bodies (see on_body): a LIST page of 1000 keys of
 * 1024 bytes with their fields fits well in S3_MAX_DOC. */
#define S3_MAX_DOC        (32u << 20)
#define S3_MAX_ERROR_BODY (64u << 10)

/* A pooled curl handle and the socket of its kept-alive connection (see
 * quickack). */
typedef struct conn {
    CURL *h;
    curl_socket_t fd;
} conn;

/* Idle handles, taken and given back under mu; the CURLSH's own locks
 * are share_mu, one per kind of shared data. */
struct kl_s3_pool {
    pthread_mutex_t mu;
    conn **v;
    size_t n, cap;
    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
};

/* ------------------------------------------------------------------ */
/* curl callbacks                                                      */
/* ------------------------------------------------------------------ */

/* A PUT's body as curl reads it: piece i, `off` bytes into it. */
typedef struct upload {
    const kl_body *b;
    size_t i, off;
} upload;

/* Every body is bounded, so a broken or hostile server (an endless body,
 * an error document of gigabytes) costs bounded memory and time: a 2xx
 * body by what the request can legitimately get back (a GET: the bytes
 * asked for, after which it stops reading: callers ask for one byte more
 * than an object should hold, so a longer one shows as corrupt), any
 * other by S3_MAX_ERROR_BODY.  Either is kept up to its cap. */
static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    s3_resp *r = ud;
    size_t n = sz * nm;
    long code = 0;
    if (r->conn) curl_easy_getinfo(r->conn->h, CURLINFO_RESPONSE_CODE, &code);
    uint64_t cap = code >= 200 && code < 300 ? r->max_body : S3_MAX_ERROR_BODY;
    if (r->body.len + n > cap) {
        size_t room = r->body.len < cap ? (size_t)(cap - r->body.len) : 0;
        if (room) Kl_buf_append(&r->body, p, room);
        r->overflow = 1;
        return 0; /* curl stops the transfer: CURLE_WRITE_ERROR */
    }
    return Kl_buf_append(&r->body, p, n) == 0 ? n : 0;
}

/* Copies a header's value (trimmed) when its name matches. */
static void grab_header(const char *line, size_t n, const char *name, char *dst, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':') return;
    const char *v = line + nl + 1, *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ')) e--;
    snprintf(dst, cap, "%.*s", (int)(e - v), v);
}

/* Some servers (Ceph RGW's beast frontend among them) write a response's
 * headers and body separately without TCP_NODELAY; on a kept-alive
 * connection Nagle then holds the body back until our delayed ACK, adding
 * ~40 ms to every GET.  Setting TCP_QUICKACK once the headers are in sends
 * that ACK at once (Linux flushes a pending ACK on this call).  Advisory:
 * failures are ignored. */
static void quickack(const conn *c)
{
#ifdef TCP_QUICKACK
    if (c->fd != CURL_SOCKET_BAD) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
#else
    (void)c;
#endif
}

/* curl does not report the socket while a transfer runs (ACTIVESOCKET is
 * -1 in callbacks), so the pool entry tracks it from creation to close. */
static int on_sockopt(void *ud, curl_socket_t fd, curlsocktype purpose)
{
    conn *c = ud;
    if (purpose == CURLSOCKTYPE_IPCXN) c->fd = fd;
    return CURL_SOCKOPT_OK;
}

static int on_closesocket(void *ud, curl_socket_t fd)
{
    conn *c = ud;
    if (c->fd == fd) c->fd = CURL_SOCKET_BAD;
    return close(fd);
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    s3_resp *r = ud;
    size_t n = sz * nm;
    grab_header(p, n, "x-amz-request-id", r->request_id, sizeof r->request_id);
    grab_header(p, n, "x-amz-bucket-region", r->bucket_region, sizeof r->bucket_region);
    grab_header(p, n, "x-amz-meta-kl-object", r->claim_object, sizeof r->claim_object);
    grab_header(p, n, "etag", r->etag, sizeof r->etag);
    char cl[32] = "";
    grab_header(p, n, "content-length", cl, sizeof cl);
    if (cl[0]) r->content_length = strtoull(cl, NULL, 10);
    if (r->conn && n == 2 && p[0] == '\r') quickack(r->conn);
    return n;
}

static size_t on_read(char *p, size_t sz, size_t nm, void *ud)
{
    upload *u = ud;
    size_t want = sz * nm, n = 0;
    while (n < want && u->b && u->i < u->b->n) {
        const struct iovec *v = &u->b->v[u->i];
        size_t k = v->iov_len - u->off < want - n ? v->iov_len - u->off : want - n;
        memcpy(p + n, (const char *)v->iov_base + u->off, k);
        n += k;
        if ((u->off += k) == v->iov_len) {
            u->i++;
            u->off = 0;
        }
    }
    return n;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
    upload *u = ud;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > (u->b ? u->b->len : 0))
        return CURL_SEEKFUNC_CANTSEEK;
    if (!u->b) return CURL_SEEKFUNC_OK; /* a PUT without a body (a copy), rewound */
    size_t left = (size_t)off;
    for (u->i = 0; u->i < u->b->n && left >= u->b->v[u->i].iov_len; u->i++)
        left -= u->b->v[u->i].iov_len;
    u->off = left;
    return CURL_SEEKFUNC_OK;
}

/* ------------------------------------------------------------------ */
/* the handle pool                                                     */
/* ------------------------------------------------------------------ */

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ud)
{
    struct kl_s3_pool *p = ud;
    pthread_mutex_lock(&p->share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *ud)
{
    struct kl_s3_pool *p = ud;
    pthread_mutex_unlock(&p->share_mu[d]);
}

static conn *conn_take(struct kl_s3_pool *p)
{
    conn *c = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->n) c = p->v[--p->n];
    pthread_mutex_unlock(&p->mu);
    if (c) return c;
    if (!(c = malloc(sizeof *c))) return NULL;
    c->fd = CURL_SOCKET_BAD;
    if (!(c->h = curl_easy_init())) {
        free(c);
        return NULL;
    }
    return c;
}

static void conn_free(conn *c)
{
    curl_easy_cleanup(c->h); /* may call on_closesocket(c): free after */
    free(c);
}

static void conn_give(struct kl_s3_pool *p, conn *c)
{
    pthread_mutex_lock(&p->mu);
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 8;
        conn **v = realloc(p->v, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&p->mu);
            conn_free(c);
            return;
        }
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = c;
    pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------------ */
/* one attempt                                                         */
/* ------------------------------------------------------------------ */

/* Performs rq once with creds.  Returns the curl result; on CURLE_OK the
 * status and body are in rs.  errbuf receives curl's details. */
static CURLcode attempt_once(kl_s3_http *s, conn *cn, const s3_req *rq, const kl_s3_creds *cr,
                             const char *payload_hash, s3_resp *rs, char *errbuf)
{
    CURL *h = cn->h;
    CURLcode cc = CURLE_OUT_OF_MEMORY;
    char *path = NULL, *url = NULL;
    struct curl_slist *hl = NULL;
    kl_sigv4_result sig = {0};
    char amz_date[17];
    Kl_sigv4_amz_date((int64_t)time(NULL), amz_date);

    /* Raw path: what is signed; the URL carries its encoding. */
    if (Kl_s3_addr_request(&s->addr, rq->key, rq->query, rq->n_query, &path, &url)) goto done;

    kl_sigv4_kv hv[12];
    size_t nh = 0;
    hv[nh++] = (kl_sigv4_kv){"host", s->addr.host};
    hv[nh++] = (kl_sigv4_kv){"x-amz-content-sha256", payload_hash};
    hv[nh++] = (kl_sigv4_kv){"x-amz-date", amz_date};
    if (cr->token) hv[nh++] = (kl_sigv4_kv){"x-amz-security-token", cr->token};
    for (size_t i = 0; i < rq->n_hdrs; i++) hv[nh++] = rq->hdrs[i];
    kl_sigv4_kv qv[8];
    for (size_t i = 0; i < rq->n_query; i++)
        qv[i] = (kl_sigv4_kv){rq->query[i].name, rq->query[i].value ? rq->query[i].value : ""};
    kl_sigv4_req sr = {.method = rq->method,
                       .path = path,
                       .query = qv,
                       .n_query = rq->n_query,
                       .headers = hv,
                       .n_headers = nh,
                       .payload_hash = payload_hash,
                       .amz_date = amz_date,
                       .region = s->region,
                       .service = "s3"};
    if (Kl_sigv4_sign(&sr, cr->access_key, cr->secret_key, &sig) != 0) goto done;

    for (size_t i = 0; i < nh; i++) {
        char *line = NULL;
        if (asprintf(&line, "%s: %s", hv[i].name, hv[i].value) < 0) goto done;
        struct curl_slist *n = curl_slist_append(hl, line);
        explicit_bzero(line, strlen(line)); /* may hold the session token */
        free(line);
        if (!n) goto done;
        hl = n;
    }
    {
        char *auth = NULL;
        if (asprintf(&auth, "Authorization: %s", sig.authorization) < 0) goto done;
        struct curl_slist *n = curl_slist_append(hl, auth);
        free(auth);
        if (!n) goto done;
        hl = n;
        /* No "Expect: 100-continue" round trip; bodies are small enough. */
        if (!(n = curl_slist_append(hl, "Expect:"))) goto done;
        hl = n;
    }

    curl_easy_reset(h);
    errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->request_timeout_ms);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, s->verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, s->verify_tls ? 2L : 0L);
    if (s->ca_bundle) curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_bundle);
    if (s->pool->share) curl_easy_setopt(h, CURLOPT_SHARE, s->pool->share);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "klstore/" KL_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, rs);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, rs);
    curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, cn);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, cn);

    upload up = {rq->body, 0, 0};
    size_t body_len = rq->body ? rq->body->len : 0;
    if (rq->head) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(rq->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &up);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, &up);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(rq->method, "POST") == 0) { /* one piece (s3_http.h) */
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body_len ? rq->body->v[0].iov_base : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(rq->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    }

    rs->conn = cn;
    cc = curl_easy_perform(h);
    rs->conn = NULL;
    if (cc == CURLE_OK || (cc == CURLE_WRITE_ERROR && rs->overflow))
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rs->status);
    /* The pooled handle must not keep pointers into this frame. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);

done:
    curl_slist_free_all(hl);
    Kl_sigv4_result_free(&sig);
    free(path);
    free(url);
    return cc;
}

/* ------------------------------------------------------------------ */
/* the request, with retries                                           */
/* ------------------------------------------------------------------ */

static int accepted(const s3_req *rq, long status)
{
    if (status >= 200 && status < 300) return 1;
    for (size_t i = 0; i < sizeof rq->accept / sizeof *rq->accept; i++)
        if (rq->accept[i] && rq->accept[i] == status) return 1;
    return 0;
}

kl_status Kl_s3_http_do(kl_s3_http *s, const s3_req *rq, s3_resp *rs, kl_error *err)
{
    memset(rs, 0, sizeof *rs);
    if (rq->body && rq->body->n > 1 && strcmp(rq->method, "PUT") != 0)
        return kl_seterr(err, KL_EINVAL, "S3 %s: a body in pieces can only be PUT", rq->op);
    char payload_hash[65] = "UNSIGNED-PAYLOAD";
    if (s->sign_payload) Kl_sha256_hex_body(rq->body ? rq->body : KL_BODY_ONE("", 0), payload_hash);
    conn *h = conn_take(s->pool);
    if (!h) return kl_seterr(err, KL_ENOMEM, "S3: cannot create a curl handle");
    char errbuf[CURL_ERROR_SIZE];
    int refreshed = 0;
    kl_status st = KL_OK;
    for (int attempt = 0;; attempt++) {
        Kl_buf_free(&rs->body);
        rs->status = 0;
        rs->request_id[0] = rs->bucket_region[0] = '\0';
        rs->content_length = 0;
        rs->attempts = attempt + 1;
        rs->overflow = 0;
        rs->max_body = rq->max_body ? rq->max_body : S3_MAX_DOC;
        kl_s3_creds cr;
        if ((st = Kl_s3_credprov_get(s->creds, &cr, err))) break;
        CURLcode cc = attempt_once(s, h, rq, &cr, payload_hash, rs, errbuf);
        int last = attempt >= s->max_retries;
        if (cc == CURLE_WRITE_ERROR && rs->overflow) {
            if (rs->status >= 200 && rs->status < 300 && !rq->enough_at_max) {
                /* More than the request can get back: the server is
                 * broken or hostile, and asking again will not help. */
                Kl_s3_creds_clear(&cr);
                char what[300];
                Kl_s3_what(s, rq, what, sizeof what);
                st = kl_seterr(err, KL_EBADDATA,
                               "%s at %s: the server sent more than the %" PRIu64
                               " bytes this request can get back; stopped reading (request id %s)",
                               what, s->addr.endpoint_desc, rs->max_body,
                               rs->request_id[0] ? rs->request_id : "none");
                break;
            }
            /* A GET that has every byte it asked for, or an error answer cut
             * at its cap: go on with what came. */
            cc = CURLE_OK;
        }
        if (cc != CURLE_OK) {
            Kl_s3_creds_clear(&cr);
            if (cc == CURLE_OUT_OF_MEMORY) {
                st = kl_seterr(err, KL_ENOMEM, "S3 %s: out of memory", rq->op);
                break;
            }
            if (Kl_s3_retry_curl(cc) && !last) {
                rs->ambiguous = 1;
                Kl_s3_backoff(attempt, 0);
                continue;
            }
            char what[300];
            Kl_s3_what(s, rq, what, sizeof what);
            /* curl's error buffer is the more specific text when set. */
            st = kl_seterr(err, Kl_s3_retry_curl(cc) ? KL_EIO : KL_EINVAL, "%s at %s: %s", what,
                           s->addr.endpoint_desc, errbuf[0] ? errbuf : curl_easy_strerror(cc));
            if (Kl_s3_retry_curl(cc) && err) {
                size_t n = strlen(err->msg);
                snprintf(err->msg + n, sizeof err->msg - n, "; gave up after %d attempts",
                         attempt + 1);
            }
            break;
        }
        if (accepted(rq, rs->status)) {
            Kl_s3_creds_clear(&cr);
            break;
        }
        kl_s3_xml_error x;
        int has = Kl_s3_xml_parse_error((const char *)rs->body.data, rs->body.len, &x);
        const char *code = has && x.code[0] ? x.code : NULL;
        int throttled;
        if (Kl_s3_token_expired(code) && !refreshed) {
            /* Temporary credentials rotated under us: fetch new ones. */
            refreshed = 1;
            Kl_s3_creds_clear(&cr);
            Kl_s3_credprov_invalidate(s->creds);
            continue;
        }
        if (Kl_s3_retry_http(rs, code, &throttled) && !last) {
            Kl_s3_creds_clear(&cr);
            if (rs->status >= 500) rs->ambiguous = 1;
            Kl_s3_backoff(attempt, throttled);
            continue;
        }
        st = Kl_s3_http_error(s, rq, rs, &cr, err);
        Kl_s3_creds_clear(&cr);
        break;
    }
    conn_give(s->pool, h);
    if (st) Kl_buf_free(&rs->body);
    return st;
}

/* ------------------------------------------------------------------ */
/* setting up                                                          */
/* ------------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

kl_status Kl_s3_http_init(kl_s3_http *s, const kl_s3_config *c, kl_error *err)
{
    memset(s, 0, sizeof *s);
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return kl_seterr(err, KL_EIO, "S3: libcurl initialisation failed: %s",
                         curl_easy_strerror(curl_init_rc));
    s->connect_timeout_ms = c->connect_timeout_ms;
    s->request_timeout_ms = c->request_timeout_ms;
    s->max_retries = c->max_retries;
    s->verify_tls = c->verify_tls;

    kl_status st;
    s->bucket = strdup(c->bucket_name);
    s->region = strdup(c->region && *c->region ? c->region : "us-east-1");
    if (c->ca_bundle && *c->ca_bundle) s->ca_bundle = strdup(c->ca_bundle);
    if (!s->bucket || !s->region || (c->ca_bundle && *c->ca_bundle && !s->ca_bundle)) {
        st = kl_seterr(err, KL_ENOMEM, "S3: out of memory");
        goto fail;
    }
    if ((st = Kl_s3_addr_init(&s->addr, c, s->bucket, s->region, err))) goto fail;
    s->sign_payload = c->sign_payload == KL_SIGN_PAYLOAD_ON ||
                      (c->sign_payload == KL_SIGN_PAYLOAD_AUTO && !s->addr.https);
    if ((st = Kl_s3_credprov_new(c, &s->creds, err))) goto fail;
    struct kl_s3_pool *p = s->pool = calloc(1, sizeof *s->pool);
    if (!p) {
        st = kl_seterr(err, KL_ENOMEM, "S3: out of memory");
        goto fail;
    }
    pthread_mutex_init(&p->mu, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_init(&p->share_mu[i], NULL);
    /* Without a share each handle resolves and handshakes on its own:
     * slower, not wrong. */
    if ((p->share = curl_share_init())) {
        curl_share_setopt(p->share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(p->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(p->share, CURLSHOPT_USERDATA, p);
        curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
    return KL_OK;
fail:
    Kl_s3_http_free(s);
    return st;
}

void Kl_s3_http_free(kl_s3_http *s)
{
    struct kl_s3_pool *p = s->pool;
    if (p) {
        for (size_t i = 0; i < p->n; i++) conn_free(p->v[i]);
        free(p->v);
        if (p->share) curl_share_cleanup(p->share);
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_destroy(&p->share_mu[i]);
        pthread_mutex_destroy(&p->mu);
        free(p);
    }
    Kl_s3_credprov_free(s->creds);
    Kl_s3_addr_free(&s->addr);
    free(s->bucket);
    free(s->region);
    free(s->ca_bundle);
    memset(s, 0, sizeof *s);
}
