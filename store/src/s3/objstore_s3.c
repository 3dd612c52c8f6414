/* objstore_s3.c -- the S3 object store: kl_objstore_ops over libcurl.
 *
 * Every operation is one S3 request (PutObject, GetObject, HeadObject,
 * ListObjectsV2, DeleteObject(s)), signed with SigV4 (sigv4.c) using
 * credentials from the AWS chain (s3_creds.c).  All of them are idempotent,
 * so transport failures, timeouts, 5xx, 429 and SlowDown are retried
 * (max_retries times, exponential backoff with jitter) before giving up
 * with KL_EIO.  Answers that retrying cannot change -- wrong credentials, a
 * missing bucket, access denied -- fail at once with KL_EINVAL and a
 * message naming the bucket, the object, the server's error code and its
 * request id, which is what an operator needs to act or to ask the
 * provider.
 *
 * Connections: a pool of curl easy handles, one taken per request, so that
 * threads never share a handle while a handle's keep-alive connection is
 * reused by whichever request takes it next.  DNS and TLS sessions are
 * shared across the pool through a CURLSH.
 *
 * Addressing: virtual-hosted style (https://BUCKET.host/key) unless
 * path_style is set, the endpoint is an IP address, or the bucket name
 * cannot be a DNS label (or, over https, contains a dot, which no wildcard
 * certificate covers); then https://host/BUCKET/key, as the AWS SDKs do.  Object names are sent
 * percent-encoded exactly as they are signed (RFC 3986, '/' kept).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
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
#include <openssl/evp.h>

#include "buf.h"
#include "klstore.h"
#include "s3/s3_creds.h"
#include "s3/s3_listpage.h"
#include "s3/s3_xml.h"
#include "s3/sigv4.h"

/* S3 limits: a single PUT holds up to 5 GiB, a key up to 1024 bytes. */
#define S3_MAX_PUT ((uint64_t)5 << 30)
#define S3_MAX_KEY 1024
/* Backoff: base delays per attempt, doubled each time, capped. */
#define BACKOFF_BASE_MS 100
#define BACKOFF_THROTTLE_MS 500
#define BACKOFF_CAP_MS 10000

/* A pooled curl handle and the socket of its kept-alive connection (see
 * quickack). */
typedef struct conn {
    CURL *h;
    curl_socket_t fd;
} conn;

typedef struct s3_os {
    kl_objstore base;
    char *bucket;
    char *scheme;          /* "http" or "https" */
    char *host;            /* Host header: [bucket.]host[:port] */
    char *path_base;       /* raw path before the key: "/" or "/bucket/" (plus any endpoint path) */
    char *endpoint_desc;   /* for messages: "http://127.0.0.1:7480" */
    char *region;
    char *ca_bundle;
    char *desc;            /* "s3://bucket" */
    long connect_timeout_ms, request_timeout_ms;
    int max_retries, verify_tls;
    int sign_payload;      /* x-amz-content-sha256 is the body's hash, not UNSIGNED-PAYLOAD */
    kl_s3_credprov *creds;

    pthread_mutex_t pool_mu;
    conn **pool;
    size_t n_pool, cap_pool;

    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

    pthread_mutex_t probe_mu;
    atomic_int copy_mode;  /* 0 unknown, 1 copies honour a copy condition, 2 not */
} s3_os;

static s3_os *S(kl_objstore *os) { return (s3_os *)os; }

/* ------------------------------------------------------------------ */
/* requests and responses                                              */
/* ------------------------------------------------------------------ */

/* Caps on response bodies (see on_body): a LIST page of 1000 keys of
 * 1024 bytes with their fields fits well in S3_MAX_DOC. */
#define S3_MAX_DOC (32u << 20)
#define S3_MAX_ERROR_BODY (64u << 10)
/* A whole-object GET without a length: S3's largest single PUT. */
#define S3_MAX_OBJECT (5ull << 30)

typedef struct s3_req {
    const char *op;             /* for messages: "GET", "PUT", "LIST", ... */
    const char *method;
    const char *key;            /* object name, or NULL for the bucket */
    const char *shown;          /* name for messages when key is NULL */
    kl_sigv4_kv query[8];       /* raw; value NULL = valueless ("?delete") */
    size_t n_query;
    kl_sigv4_kv hdrs[6];        /* extra headers, all signed */
    size_t n_hdrs;
    const void *body;
    size_t body_len;
    int head;                   /* HEAD: no response body */
    long accept[4];             /* non-2xx statuses the caller handles */
    uint64_t max_body;          /* most bytes a 2xx body may have; 0 = S3_MAX_DOC */
    int enough_at_max;          /* a 2xx body reaching max_body is complete
                                   for this request (a GET of a range) */
} s3_req;

typedef struct s3_resp {
    long status;
    kl_buf body;
    char request_id[128];
    char bucket_region[64];
    uint64_t content_length;    /* from the Content-Length header */
    char claim_object[256];     /* x-amz-meta-kl-object (slot claims) */
    char etag[128];             /* ETag (slot claims' tags) */
    int ambiguous;              /* an earlier attempt may have been applied */
    conn *conn;                 /* during the transfer, for on_header */
    int attempts;
    uint64_t max_body;          /* rq->max_body, resolved */
    int overflow;               /* the body went past its cap: transfer cut */
} s3_resp;

typedef struct upload {
    const uint8_t *p;
    size_t len, pos;
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
    if (r->conn)
        curl_easy_getinfo(r->conn->h, CURLINFO_RESPONSE_CODE, &code);
    uint64_t cap = code >= 200 && code < 300 ? r->max_body : S3_MAX_ERROR_BODY;
    if (r->body.len + n > cap) {
        size_t room = r->body.len < cap ? (size_t)(cap - r->body.len) : 0;
        if (room)
            Kl_buf_append(&r->body, p, room);
        r->overflow = 1;
        return 0; /* curl stops the transfer: CURLE_WRITE_ERROR */
    }
    return Kl_buf_append(&r->body, p, n) == 0 ? n : 0;
}

/* Copies a header's value (trimmed) when its name matches. */
static void grab_header(const char *line, size_t n, const char *name, char *dst, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1, *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
        e--;
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
    if (purpose == CURLSOCKTYPE_IPCXN)
        c->fd = fd;
    return CURL_SOCKOPT_OK;
}

static int on_closesocket(void *ud, curl_socket_t fd)
{
    conn *c = ud;
    if (c->fd == fd)
        c->fd = CURL_SOCKET_BAD;
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
    if (cl[0])
        r->content_length = strtoull(cl, NULL, 10);
    if (r->conn && n == 2 && p[0] == '\r')
        quickack(r->conn);
    return n;
}

static size_t on_read(char *p, size_t sz, size_t nm, void *ud)
{
    upload *u = ud;
    size_t n = sz * nm, left = u->len - u->pos;
    if (n > left)
        n = left;
    memcpy(p, u->p + u->pos, n);
    u->pos += n;
    return n;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
    upload *u = ud;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > u->len)
        return CURL_SEEKFUNC_CANTSEEK;
    u->pos = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

/* ------------------------------------------------------------------ */
/* the handle pool                                                     */
/* ------------------------------------------------------------------ */

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ud)
{
    s3_os *s = ud;
    pthread_mutex_lock(&s->share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *ud)
{
    s3_os *s = ud;
    pthread_mutex_unlock(&s->share_mu[d]);
}

static conn *conn_take(s3_os *s)
{
    conn *c = NULL;
    pthread_mutex_lock(&s->pool_mu);
    if (s->n_pool)
        c = s->pool[--s->n_pool];
    pthread_mutex_unlock(&s->pool_mu);
    if (c)
        return c;
    if (!(c = malloc(sizeof *c)))
        return NULL;
    c->fd = CURL_SOCKET_BAD;
    if (!(c->h = curl_easy_init())) {
        free(c);
        return NULL;
    }
    return c;
}

static void conn_free(conn *c)
{
    curl_easy_cleanup(c->h);   /* may call on_closesocket(c): free after */
    free(c);
}

static void conn_give(s3_os *s, conn *c)
{
    pthread_mutex_lock(&s->pool_mu);
    if (s->n_pool == s->cap_pool) {
        size_t cap = s->cap_pool ? 2 * s->cap_pool : 8;
        conn **p = realloc(s->pool, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&s->pool_mu);
            conn_free(c);
            return;
        }
        s->pool = p;
        s->cap_pool = cap;
    }
    s->pool[s->n_pool++] = c;
    pthread_mutex_unlock(&s->pool_mu);
}

/* ------------------------------------------------------------------ */
/* one attempt                                                         */
/* ------------------------------------------------------------------ */

/* Appends the percent-encoding of s (raw) to f. */
static int put_encoded(FILE *f, const char *s, int keep_slash)
{
    char *e = Kl_sigv4_uri_encode(s, strlen(s), keep_slash);
    if (!e)
        return -1;
    fputs(e, f);
    free(e);
    return 0;
}

/* Performs rq once with creds.  Returns the curl result; on CURLE_OK the
 * status and body are in rs.  errbuf receives curl's details. */
static CURLcode attempt_once(s3_os *s, conn *cn, const s3_req *rq, const kl_s3_creds *cr,
                             const char *payload_hash, s3_resp *rs, char *errbuf)
{
    CURL *h = cn->h;
    CURLcode cc = CURLE_OUT_OF_MEMORY;
    char *path = NULL, *url = NULL;
    size_t ulen = 0;
    struct curl_slist *hl = NULL;
    kl_sigv4_result sig = {0};
    char amz_date[17];
    Kl_sigv4_amz_date((int64_t)time(NULL), amz_date);

    /* Raw path: what is signed; the URL carries its encoding. */
    if (asprintf(&path, "%s%s", s->path_base, rq->key ? rq->key : "") < 0) {
        path = NULL;
        goto done;
    }
    FILE *f = open_memstream(&url, &ulen);
    if (!f)
        goto done;
    fprintf(f, "%s://%s", s->scheme, s->host);
    int bad = put_encoded(f, path, 1);
    for (size_t i = 0; i < rq->n_query && !bad; i++) {
        fputc(i ? '&' : '?', f);
        bad |= put_encoded(f, rq->query[i].name, 0);
        if (rq->query[i].value) {
            fputc('=', f);
            bad |= put_encoded(f, rq->query[i].value, 0);
        }
    }
    if (fclose(f) || bad)
        goto done;

    kl_sigv4_kv hv[12];
    size_t nh = 0;
    hv[nh++] = (kl_sigv4_kv){"host", s->host};
    hv[nh++] = (kl_sigv4_kv){"x-amz-content-sha256", payload_hash};
    hv[nh++] = (kl_sigv4_kv){"x-amz-date", amz_date};
    if (cr->token)
        hv[nh++] = (kl_sigv4_kv){"x-amz-security-token", cr->token};
    for (size_t i = 0; i < rq->n_hdrs; i++)
        hv[nh++] = rq->hdrs[i];
    kl_sigv4_kv qv[8];
    for (size_t i = 0; i < rq->n_query; i++)
        qv[i] = (kl_sigv4_kv){rq->query[i].name, rq->query[i].value ? rq->query[i].value : ""};
    kl_sigv4_req sr = {.method = rq->method, .path = path, .query = qv,
                       .n_query = rq->n_query, .headers = hv, .n_headers = nh,
                       .payload_hash = payload_hash, .amz_date = amz_date,
                       .region = s->region, .service = "s3"};
    if (Kl_sigv4_sign(&sr, cr->access_key, cr->secret_key, &sig) != 0)
        goto done;

    for (size_t i = 0; i < nh; i++) {
        char *line = NULL;
        if (asprintf(&line, "%s: %s", hv[i].name, hv[i].value) < 0)
            goto done;
        struct curl_slist *n = curl_slist_append(hl, line);
        explicit_bzero(line, strlen(line));   /* may hold the session token */
        free(line);
        if (!n)
            goto done;
        hl = n;
    }
    {
        char *auth = NULL;
        if (asprintf(&auth, "Authorization: %s", sig.authorization) < 0)
            goto done;
        struct curl_slist *n = curl_slist_append(hl, auth);
        free(auth);
        if (!n)
            goto done;
        hl = n;
        /* No "Expect: 100-continue" round trip; bodies are small enough. */
        if (!(n = curl_slist_append(hl, "Expect:")))
            goto done;
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
    if (s->ca_bundle)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_bundle);
    if (s->share)
        curl_easy_setopt(h, CURLOPT_SHARE, s->share);
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

    upload up = {rq->body, rq->body_len, 0};
    if (rq->head) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(rq->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &up);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, &up);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
    } else if (strcmp(rq->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
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
/* retries and error messages                                          */
/* ------------------------------------------------------------------ */

static int curl_retryable(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        return 1;
    default:
        return 0;
    }
}

/* Is this answer worth the same request again?  *throttled for SlowDown-
 * like answers, which deserve a longer pause. */
static int http_retryable(const s3_resp *rs, const char *code, int *throttled)
{
    *throttled = rs->status == 429 || rs->status == 503 ||
                 (code && (strcmp(code, "SlowDown") == 0 || strcmp(code, "Throttling") == 0 ||
                           strcmp(code, "ThrottlingException") == 0 ||
                           strcmp(code, "RequestLimitExceeded") == 0));
    if (rs->status == 501)   /* NotImplemented: asking again will not help */
        return 0;
    if (*throttled || rs->status >= 500)
        return 1;
    return code && (strcmp(code, "RequestTimeout") == 0 || strcmp(code, "InternalError") == 0 ||
                    strcmp(code, "ConditionalRequestConflict") == 0 ||
                    strcmp(code, "OperationAborted") == 0);
}

static int token_expired(const char *code)
{
    return code && (strcmp(code, "ExpiredToken") == 0 || strcmp(code, "TokenRefreshRequired") == 0 ||
                    strcmp(code, "InvalidToken") == 0);
}

static void backoff(int attempt, int throttled)
{
    static __thread unsigned seed;
    if (!seed)
        seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&seed;
    long base = throttled ? BACKOFF_THROTTLE_MS : BACKOFF_BASE_MS;
    long d = base << (attempt < 16 ? attempt : 16);
    if (d > BACKOFF_CAP_MS || d <= 0)
        d = BACKOFF_CAP_MS;
    /* "Equal jitter": at least half the delay, so that a throttled server
     * really gets a pause, and spread so that clients desynchronise. */
    long ms = d / 2 + (long)(rand_r(&seed) % (unsigned)(d / 2 + 1));
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* "GET s3://bucket/name" for messages, names cut to keep the message. */
static void what_of(const s3_os *s, const s3_req *rq, char *buf, size_t cap)
{
    snprintf(buf, cap, "S3 %s s3://%s/%.200s", rq->op, s->bucket,
             rq->key ? rq->key : rq->shown ? rq->shown : "");
}

/* Builds the final error of a request that got an HTTP answer. */
static kl_status http_error(const s3_os *s, const s3_req *rq, const s3_resp *rs,
                            const kl_s3_creds *cr, kl_error *err)
{
    kl_s3_xml_error x;
    int has = Kl_s3_xml_parse_error((const char *)rs->body.data, rs->body.len, &x);
    const char *code = has && x.code[0] ? x.code : NULL;
    const char *rid = has && x.request_id[0] ? x.request_id : rs->request_id;
    const char *src = cr && cr->source ? cr->source : "?";
    const char *ak = cr && cr->access_key ? cr->access_key : "?";
    char what[300], hint[300] = "", server[300] = "";
    what_of(s, rq, what, sizeof what);
    if (has && x.message[0])
        snprintf(server, sizeof server, ": %.250s", x.message);
    kl_status st = (rs->status >= 500 && rs->status != 501) || rs->status == 429 ? KL_EIO : KL_EINVAL;
    int throttled = 0;
    http_retryable(rs, code, &throttled);

    if (throttled) {
        snprintf(hint, sizeof hint, "the server is throttling requests (%s); gave up after %d attempts",
                 code ? code : "HTTP 503/429", rs->attempts);
        st = KL_EIO;
    } else if (code && strcmp(code, "NoSuchBucket") == 0) {
        snprintf(hint, sizeof hint, "bucket '%s' does not exist at %s", s->bucket, s->endpoint_desc);
    } else if (code && strcmp(code, "InvalidAccessKeyId") == 0) {
        snprintf(hint, sizeof hint,
                 "the server does not know access key '%.40s' (credentials from %s): wrong credentials",
                 ak, src);
    } else if (code && strcmp(code, "SignatureDoesNotMatch") == 0) {
        snprintf(hint, sizeof hint,
                 "the signature does not match: the secret key (credentials from %s) is wrong "
                 "for access key '%.40s', or something altered the request",
                 src, ak);
    } else if (code && strcmp(code, "AccessDenied") == 0) {
        snprintf(hint, sizeof hint, "access denied for access key '%.40s' (credentials from %s)", ak,
                 src);
    } else if (token_expired(code)) {
        snprintf(hint, sizeof hint, "the session token (credentials from %s) is expired or invalid",
                 src);
    } else if (code && strcmp(code, "RequestTimeTooSkewed") == 0) {
        snprintf(hint, sizeof hint, "this machine's clock is too far from the server's: fix the time");
    } else if (rs->status == 301 || (code && strcmp(code, "PermanentRedirect") == 0)) {
        snprintf(hint, sizeof hint, "bucket '%s' is in another region%s%s%s: set region", s->bucket,
                 rs->bucket_region[0] ? " (" : "", rs->bucket_region,
                 rs->bucket_region[0] ? ")" : "");
    } else if (!code && rs->status == 403) {
        snprintf(hint, sizeof hint,
                 "HTTP 403 Forbidden: wrong credentials (from %s, access key '%.40s') or no permission",
                 src, ak);
    } else if (!code && rs->status == 404) {
        snprintf(hint, sizeof hint, "not found (no such bucket '%s' at %s?)", s->bucket,
                 s->endpoint_desc);
    } else if (rs->status >= 500) {
        snprintf(hint, sizeof hint, "server error %s; gave up after %d attempts", code ? code : "",
                 rs->attempts);
    } else {
        snprintf(hint, sizeof hint, "%s", code ? code : "the server refused the request");
    }
    char tag[80] = "";
    if (code && !strstr(hint, code))
        snprintf(tag, sizeof tag, " [%s]", code);
    /* Request id before the server's text, which may be long: the id is
     * what the provider's support asks for. */
    return kl_seterr(err, st, "%s: %s%s (HTTP %ld%s%s)%s", what, hint, tag, rs->status,
                     rid[0] ? ", request id " : "", rid, server);
}

static int accepted(const s3_req *rq, long status)
{
    if (status >= 200 && status < 300)
        return 1;
    for (size_t i = 0; i < sizeof rq->accept / sizeof *rq->accept; i++)
        if (rq->accept[i] && rq->accept[i] == status)
            return 1;
    return 0;
}

/* Runs rq with retries.  KL_OK when the final answer is 2xx or one of
 * rq->accept (the caller reads rs->status); otherwise the error. */
static kl_status s3_do(s3_os *s, const s3_req *rq, s3_resp *rs, kl_error *err)
{
    memset(rs, 0, sizeof *rs);
    char payload_hash[65] = "UNSIGNED-PAYLOAD";
    if (s->sign_payload)
        Kl_sha256_hex(rq->body ? rq->body : "", rq->body_len, payload_hash);
    conn *h = conn_take(s);
    if (!h)
        return kl_seterr(err, KL_ENOMEM, "S3: cannot create a curl handle");
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
        if ((st = Kl_s3_credprov_get(s->creds, &cr, err)))
            break;
        CURLcode cc = attempt_once(s, h, rq, &cr, payload_hash, rs, errbuf);
        int last = attempt >= s->max_retries;
        if (cc == CURLE_WRITE_ERROR && rs->overflow) {
            if (rs->status >= 200 && rs->status < 300 && !rq->enough_at_max) {
                /* More than the request can get back: the server is
                 * broken or hostile, and asking again will not help. */
                Kl_s3_creds_clear(&cr);
                char what[300];
                what_of(s, rq, what, sizeof what);
                st = kl_seterr(err, KL_EBADDATA, "%s at %s: the server sent more than the %" PRIu64
                               " bytes this request can get back; stopped reading (request id %s)",
                               what, s->endpoint_desc, rs->max_body,
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
            if (curl_retryable(cc) && !last) {
                rs->ambiguous = 1;
                backoff(attempt, 0);
                continue;
            }
            char what[300];
            what_of(s, rq, what, sizeof what);
            /* curl's error buffer is the more specific text when set. */
            st = kl_seterr(err, curl_retryable(cc) ? KL_EIO : KL_EINVAL, "%s at %s: %s", what,
                           s->endpoint_desc, errbuf[0] ? errbuf : curl_easy_strerror(cc));
            if (curl_retryable(cc) && err) {
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
        if (token_expired(code) && !refreshed) {
            /* Temporary credentials rotated under us: fetch new ones. */
            refreshed = 1;
            Kl_s3_creds_clear(&cr);
            Kl_s3_credprov_invalidate(s->creds);
            continue;
        }
        if (http_retryable(rs, code, &throttled) && !last) {
            Kl_s3_creds_clear(&cr);
            if (rs->status >= 500)
                rs->ambiguous = 1;
            backoff(attempt, throttled);
            continue;
        }
        st = http_error(s, rq, rs, &cr, err);
        Kl_s3_creds_clear(&cr);
        break;
    }
    conn_give(s, h);
    if (st)
        Kl_buf_free(&rs->body);
    return st;
}

static kl_status check_key(const s3_os *s, const char *op, const char *name, kl_error *err)
{
    if (!name || !*name)
        return kl_seterr(err, KL_EINVAL, "S3 %s s3://%s: empty object name", op, s->bucket);
    if (strlen(name) > S3_MAX_KEY)
        return kl_seterr(err, KL_EINVAL, "S3 %s s3://%s/%.100s...: object name longer than %d bytes",
                         op, s->bucket, name, S3_MAX_KEY);
    return KL_OK;
}

static kl_status not_found(const s3_os *s, const char *op, const char *name, const s3_resp *rs,
                           kl_error *err)
{
    kl_s3_xml_error x;
    if (Kl_s3_xml_parse_error((const char *)rs->body.data, rs->body.len, &x) &&
        strcmp(x.code, "NoSuchBucket") == 0)
        return kl_seterr(err, KL_EINVAL, "S3 %s s3://%s/%.200s: bucket '%s' does not exist at %s "
                         "(NoSuchBucket, request id %s)",
                         op, s->bucket, name, s->bucket, s->endpoint_desc,
                         x.request_id[0] ? x.request_id : rs->request_id);
    return kl_seterr(err, KL_ENOTFOUND, "S3 %s s3://%s/%.200s: no such object", op, s->bucket, name);
}

/* ------------------------------------------------------------------ */
/* operations                                                          */
/* ------------------------------------------------------------------ */

static kl_status s3_get(kl_objstore *os, const char *name, uint64_t off, uint64_t len,
                        uint8_t **data, size_t *out_len, kl_error *err);
static kl_status s3_del(kl_objstore *os, const char *const *names, size_t n, kl_error *err);

/* PUT, optionally create-only (If-None-Match: *) and carrying a claim's
 * object name as user metadata. */
static kl_status put_object(kl_objstore *os, const char *name, const void *data, size_t len,
                            int flags, const char *claim_object, char **etag, kl_error *err)
{
    s3_os *s = S(os);
    kl_status st = check_key(s, "PUT", name, err);
    if (st)
        return st;
    if ((uint64_t)len > S3_MAX_PUT)
        return kl_seterr(err, KL_EINVAL, "S3 PUT s3://%s/%.200s: %zu bytes exceed S3's 5 GiB limit",
                         s->bucket, name, len);
    s3_req rq = {.op = "PUT", .method = "PUT", .key = name, .body = data, .body_len = len};
    if (flags & KL_PUT_IF_ABSENT) {
        rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"If-None-Match", "*"};
        rq.accept[0] = 412;
    }
    if (claim_object)
        rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"x-amz-meta-kl-object", claim_object};
    s3_resp rs;
    if ((st = s3_do(s, &rq, &rs, err)))
        return st;
    Kl_buf_free(&rs.body);
    if (rs.status != 412) {
        if (etag && rs.etag[0] && !(*etag = strdup(rs.etag)))
            return kl_seterr(err, KL_ENOMEM, "out of memory");
        return KL_OK;
    }
    if (rs.ambiguous) {
        /* An earlier attempt may have created the object and lost the
         * answer: if what is there is exactly what we wrote, it was us. */
        uint8_t *have = NULL;
        size_t have_len = 0;
        if (s3_get(os, name, 0, UINT64_MAX, &have, &have_len, NULL) == KL_OK) {
            int same = have_len == len && (len == 0 || memcmp(have, data, len) == 0);
            free(have);
            if (same)
                return KL_OK;
        }
    }
    return kl_seterr(err, KL_EEXIST, "S3 PUT s3://%s/%.200s: the object already exists", s->bucket,
                     name);
}

static kl_status s3_put(kl_objstore *os, const char *name, const void *data, size_t len,
                        int flags, kl_error *err)
{
    return put_object(os, name, data, len, flags, NULL, NULL, err);
}

/* ---- slot claims (klstore.h "Slot claims") ------------------------ *
 * A claim is an object created with If-None-Match: * whose body is the
 * data object's body and whose metadata x-amz-meta-kl-object names the
 * data object (its last path component: metadata must be ASCII, names
 * of keys need not be).  Publishing is a server-side CopyObject, so the
 * body crosses the network once.  Deleting a claim before the data object
 * it published makes a late copy fail (404) instead of bringing a
 * compacted-away object back. */

static const char *last_component(const char *name)
{
    const char *sl = strrchr(name, '/');
    return sl ? sl + 1 : name;
}

static kl_status head_claim(s3_os *s, const char *claim, s3_resp *rs, kl_error *err)
{
    kl_status st = check_key(s, "HEAD", claim, err);
    if (st)
        return st;
    s3_req rq = {.op = "HEAD", .method = "HEAD", .key = claim, .head = 1, .accept = {404}};
    if ((st = s3_do(s, &rq, rs, err)))
        return st;
    Kl_buf_free(&rs->body);
    if (rs->status == 404)
        return kl_seterr(err, KL_ENOTFOUND, "S3 HEAD s3://%s/%.200s: no such claim", s->bucket,
                         claim);
    return KL_OK;
}

static kl_status s3_claim(kl_objstore *os, const char *claim, const char *object,
                          const void *data, size_t len, char **tag, kl_error *err)
{
    kl_status st = put_object(os, claim, data, len, KL_PUT_IF_ABSENT, last_component(object),
                              tag, err);
    if (st == KL_OK && !*tag) { /* created by an earlier attempt: ask for its tag */
        s3_resp rs;
        if ((st = head_claim(S(os), claim, &rs, err)))
            return st;
        if (!rs.etag[0] || !(*tag = strdup(rs.etag)))
            return kl_seterr(err, KL_EIO, "S3 HEAD s3://%s/%.200s: no ETag", S(os)->bucket, claim);
    }
    return st;
}

static kl_status s3_claim_target(kl_objstore *os, const char *claim, char **object,
                                 char **tag, kl_error *err)
{
    s3_os *s = S(os);
    s3_resp rs;
    kl_status st = head_claim(s, claim, &rs, err);
    if (st)
        return st;
    if (!rs.claim_object[0] || strchr(rs.claim_object, '/') || !rs.etag[0])
        return kl_seterr(err, KL_EBADDATA, "S3 HEAD s3://%s/%.200s: a claim without a body "
                         "(emptied, or not written by klstore)", s->bucket, claim);
    size_t dl = (size_t)(last_component(claim) - claim);
    if (asprintf(object, "%.*s%s", (int)dl, claim, rs.claim_object) < 0 ||
        !(*tag = strdup(rs.etag)))
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    return KL_OK;
}

/* CopyObject of claim to object, conditional on the claim's ETag when tag
 * is given: a claim deleted and made again by another writer (another
 * body) then fails with 412 and nothing is copied.  *status: the HTTP
 * status (200, 404, 412). */
static kl_status copy_object(s3_os *s, const char *claim, const char *object, const char *tag,
                             long *status, kl_error *err)
{
    kl_status st = check_key(s, "COPY", object, err);
    if (st || (st = check_key(s, "COPY", claim, err)))
        return st;
    char *enc = Kl_sigv4_uri_encode(claim, strlen(claim), 1);
    char *src = NULL;
    if (!enc || asprintf(&src, "/%s/%s", s->bucket, enc) < 0) {
        free(enc);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    free(enc);
    s3_req rq = {.op = "COPY", .method = "PUT", .key = object, .accept = {404, 412}};
    rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"x-amz-copy-source", src};
    rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"x-amz-metadata-directive", "REPLACE"};
    /* AWS's name for the condition, and the one Ceph RGW reads (at least
     * up to 16.2, which ignores AWS's): a server honours one of them, and
     * an unknown x-amz- header is ignored.  The probe below tells whether
     * either was honoured. */
    if (tag) {
        rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"x-amz-copy-source-if-match", tag};
        rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"x-amz-copy-if-match", tag};
    }
    s3_resp rs;
    st = s3_do(s, &rq, &rs, err);
    free(src);
    if (st)
        return st;
    *status = rs.status;
    if (rs.status == 404) {
        st = not_found(s, "COPY", claim, &rs, err);
    } else if (rs.status == 412) {
        st = kl_seterr(err, KL_ENOTFOUND, "S3 COPY s3://%s/%.200s: the claim no longer holds "
                       "that body", s->bucket, claim);
    } else {
        /* CopyObject may fail after its 200 went out: the error is the body. */
        kl_s3_xml_error x;
        if (Kl_s3_xml_parse_error((const char *)rs.body.data, rs.body.len, &x))
            st = kl_seterr(err, KL_EIO, "S3 COPY s3://%s/%.200s: %s: %s (request id %s)",
                           s->bucket, object, x.code, x.message, rs.request_id);
    }
    Kl_buf_free(&rs.body);
    return st;
}

/* Once per store, at the first publish: does the server honour a copy
 * condition (x-amz-copy-source-if-match, or Ceph RGW's x-amz-copy-if-match)?
 * A copy with a
 * tag that cannot match must fail with 412.  The probe objects sit next to
 * `claim` (within whatever prefix the credentials allow); if the probe
 * cannot run, copies are not trusted. */
static int copy_conditional(s3_os *s, const char *claim)
{
    int mode = atomic_load(&s->copy_mode);
    if (mode)
        return mode == 1;
    pthread_mutex_lock(&s->probe_mu);
    if (!(mode = atomic_load(&s->copy_mode))) {
        char *src = NULL, *dst = NULL;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long status = 0;
        if (asprintf(&src, "%s.copy-probe-%d-%lx%lx", claim, (int)getpid(),
                     (unsigned long)ts.tv_sec, (unsigned long)ts.tv_nsec) >= 0 &&
            asprintf(&dst, "%s-to", src) >= 0 &&
            put_object(&s->base, src, "p", 1, 0, NULL, NULL, NULL) == KL_OK) {
            copy_object(s, src, dst, "\"00000000000000000000000000000000\"", &status, NULL);
            const char *v[2] = {src, dst};
            s3_del(&s->base, v, 2, NULL);
        }
        free(src);
        free(dst);
        mode = status == 412 ? 1 : 2;
        atomic_store(&s->copy_mode, mode);
    }
    pthread_mutex_unlock(&s->probe_mu);
    return mode == 1;
}

/* Reads a claim's body and object name in one GET (they cannot disagree). */
static kl_status get_claim(s3_os *s, const char *claim, const char *object, kl_buf *body,
                           kl_error *err)
{
    s3_req rq = {.op = "GET", .method = "GET", .key = claim, .accept = {404}};
    s3_resp rs;
    kl_status st = s3_do(s, &rq, &rs, err);
    if (st)
        return st;
    if (rs.status == 404) {
        st = not_found(s, "GET", claim, &rs, err);
        Kl_buf_free(&rs.body);
        return st;
    }
    if (strcmp(rs.claim_object, last_component(object)) != 0) {
        Kl_buf_free(&rs.body);
        return kl_seterr(err, KL_ENOTFOUND, "S3 GET s3://%s/%.200s: the claim now holds "
                         "another object", s->bucket, claim);
    }
    *body = rs.body;
    return KL_OK;
}

static kl_status s3_publish(kl_objstore *os, const char *claim, const char *object,
                            const char *tag, const void *data, size_t len, kl_error *err)
{
    s3_os *s = S(os);
    if (copy_conditional(s, claim)) {
        long status;
        return copy_object(s, claim, object, tag, &status, err);
    }
    /* Without copy conditions a copy could take a body from a claim made
     * again by another writer after this one's was deleted: send the bytes
     * whose name we know instead. */
    kl_buf body = {0};
    if (!data) {
        kl_status st = get_claim(s, claim, object, &body, err);
        if (st)
            return st;
        data = body.data;
        len = body.len;
    }
    kl_status st = put_object(os, object, data, len, 0, NULL, NULL, err);
    Kl_buf_free(&body);
    return st;
}

static kl_status s3_head(kl_objstore *os, const char *name, uint64_t *size, kl_error *err)
{
    s3_os *s = S(os);
    kl_status st = check_key(s, "HEAD", name, err);
    if (st)
        return st;
    s3_req rq = {.op = "HEAD", .method = "HEAD", .key = name, .head = 1, .accept = {404}};
    s3_resp rs;
    if ((st = s3_do(s, &rq, &rs, err)))
        return st;
    Kl_buf_free(&rs.body);
    if (rs.status == 404)
        return kl_seterr(err, KL_ENOTFOUND, "S3 HEAD s3://%s/%.200s: no such object", s->bucket,
                         name);
    if (size)
        *size = rs.content_length;   /* HEAD's Content-Length is the object's */
    return KL_OK;
}

static kl_status s3_get(kl_objstore *os, const char *name, uint64_t off, uint64_t len,
                        uint8_t **data, size_t *out_len, kl_error *err)
{
    s3_os *s = S(os);
    *data = NULL;
    *out_len = 0;
    kl_status st = check_key(s, "GET", name, err);
    if (st)
        return st;
    if (len == 0) {
        /* Nothing to read, but a missing object must still say so. */
        if ((st = s3_head(os, name, NULL, err)))
            return st;
        if (!(*data = malloc(1)))
            return kl_seterr(err, KL_ENOMEM, "S3 GET: out of memory");
        return KL_OK;
    }
    char range[64];
    s3_req rq = {.op = "GET", .method = "GET", .key = name, .accept = {404, 416}};
    int ranged = off > 0 || len != UINT64_MAX;
    /* off + len bytes at most, even from a server that ignores Range
     * (then everything from 0 comes and is cut below). */
    rq.max_body = len == UINT64_MAX || off + len < off ? S3_MAX_OBJECT : off + len;
    rq.enough_at_max = rq.max_body != S3_MAX_OBJECT;
    if (ranged) {
        if (len == UINT64_MAX || off + len - 1 < off)
            snprintf(range, sizeof range, "bytes=%" PRIu64 "-", off);
        else
            snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
        rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"Range", range};
    }
    s3_resp rs;
    if ((st = s3_do(s, &rq, &rs, err)))
        return st;
    if (rs.status == 404) {
        st = not_found(s, "GET", name, &rs, err);
        Kl_buf_free(&rs.body);
        return st;
    }
    size_t n = 0;
    uint8_t *b = NULL;
    if (rs.status == 416) {
        /* The range starts at or past the end: nothing there to read. */
        Kl_buf_free(&rs.body);
    } else {
        b = Kl_buf_steal(&rs.body, &n);
        if (ranged && rs.status == 200) {
            /* A server that ignored Range sent everything: cut it here. */
            size_t start = off < n ? (size_t)off : n;
            size_t take = n - start;
            if (len < take)
                take = (size_t)len;
            memmove(b, b + start, take);
            n = take;
        } else if (n > len) {
            n = (size_t)len; /* a range answer longer than the range: no more than asked */
        }
    }
    if (!b && !(b = malloc(1)))
        return kl_seterr(err, KL_ENOMEM, "S3 GET: out of memory");
    *data = b;
    *out_len = n;
    return KL_OK;
}

static kl_status s3_list(kl_objstore *os, const kl_list_req *req, kl_listing *out, kl_error *err)
{
    s3_os *s = S(os);
    memset(out, 0, sizeof *out);
    kl_s3_list_pos pos;
    kl_status st = Kl_s3_list_pos_parse(req->continuation, &pos, err);
    if (st)
        return st;
    char delim[2] = {(char)req->delimiter, 0}, maxk[24];
    snprintf(maxk, sizeof maxk, "%zu", req->max_keys ? req->max_keys : 1000);
    const char *prefix = req->prefix ? req->prefix : "";
    s3_req rq = {.op = "LIST", .method = "GET", .key = NULL};
    rq.query[rq.n_query++] = (kl_sigv4_kv){"list-type", "2"};
    rq.query[rq.n_query++] = (kl_sigv4_kv){"prefix", prefix};
    rq.query[rq.n_query++] = (kl_sigv4_kv){"max-keys", maxk};
    if (req->delimiter)
        rq.query[rq.n_query++] = (kl_sigv4_kv){"delimiter", delim};
    if (req->start_after && *req->start_after)
        rq.query[rq.n_query++] = (kl_sigv4_kv){"start-after", req->start_after};
    if (pos.server_token)
        rq.query[rq.n_query++] = (kl_sigv4_kv){"continuation-token", pos.server_token};
    char shown[256];
    snprintf(shown, sizeof shown, "%.200s*", prefix);
    rq.shown = shown;
    s3_resp rs;
    if (!(st = s3_do(s, &rq, &rs, err))) {
        st = Kl_s3_xml_parse_list((const char *)rs.body.data, rs.body.len, out, err);
        Kl_buf_free(&rs.body);
    }
    if (!st) {
        char what[300];
        what_of(s, &rq, what, sizeof what);
        if ((st = Kl_s3_list_page_check(&pos, req->start_after, out, what, err)))
            kl_listing_free(out);
    }
    Kl_s3_list_pos_free(&pos);
    return st;
}

static kl_status s3_del(kl_objstore *os, const char *const *names, size_t n, kl_error *err)
{
    s3_os *s = S(os);
    kl_status st;
    if (n == 0)
        return KL_OK;
    if (n > 1000)
        return kl_seterr(err, KL_EINVAL, "S3 DELETE s3://%s: %zu names, at most 1000 per call",
                         s->bucket, n);
    for (size_t i = 0; i < n; i++)
        if ((st = check_key(s, "DELETE", names[i], err)))
            return st;
    s3_resp rs;
    if (n == 1) {
        s3_req rq = {.op = "DELETE", .method = "DELETE", .key = names[0], .accept = {404}};
        if ((st = s3_do(s, &rq, &rs, err)))
            return st;
        if (rs.status == 404) {
            st = not_found(s, "DELETE", names[0], &rs, err);
            Kl_buf_free(&rs.body);
            return st == KL_ENOTFOUND ? KL_OK : st;   /* already gone: fine */
        }
        Kl_buf_free(&rs.body);
        return KL_OK;
    }

    size_t blen;
    char *body = Kl_s3_xml_delete_body(names, n, &blen, err);
    if (!body)
        return err ? err->code : KL_EINVAL;
    /* DeleteObjects requires Content-MD5 (AWS also takes x-amz-checksum-*,
     * Ceph RGW only Content-MD5). */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char md5[64];
    if (!EVP_Digest(body, blen, md, &mdlen, EVP_md5(), NULL)) {
        free(body);
        return kl_seterr(err, KL_EIO, "S3 DELETE: MD5 is not available in this OpenSSL");
    }
    EVP_EncodeBlock((unsigned char *)md5, md, (int)mdlen);
    s3_req rq = {.op = "DELETE", .method = "POST", .key = NULL, .body = body, .body_len = blen};
    rq.query[rq.n_query++] = (kl_sigv4_kv){"delete", NULL};
    rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"Content-MD5", md5};
    rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"Content-Type", "application/xml"};
    st = s3_do(s, &rq, &rs, err);
    free(body);
    if (st)
        return st;
    size_t failed;
    kl_s3_xml_error first;
    st = Kl_s3_xml_parse_delete((const char *)rs.body.data, rs.body.len, &failed, &first, err);
    Kl_buf_free(&rs.body);
    if (st)
        return st;
    if (failed) {
        int transient = strcmp(first.code, "InternalError") == 0 ||
                        strcmp(first.code, "SlowDown") == 0 ||
                        strcmp(first.code, "ServiceUnavailable") == 0;
        return kl_seterr(err, transient ? KL_EIO : KL_EINVAL,
                         "S3 DELETE s3://%s: %zu of %zu objects not deleted, first "
                         "'%.200s': %s: %s (request id %s)",
                         s->bucket, failed, n, first.key, first.code, first.message,
                         rs.request_id);
    }
    return KL_OK;
}

static const char *s3_describe(kl_objstore *os) { return S(os)->desc; }

static void s3_destroy(kl_objstore *os)
{
    s3_os *s = S(os);
    if (!s)
        return;
    for (size_t i = 0; i < s->n_pool; i++)
        conn_free(s->pool[i]);
    free(s->pool);
    if (s->share)
        curl_share_cleanup(s->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&s->share_mu[i]);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_mutex_destroy(&s->probe_mu);
    Kl_s3_credprov_free(s->creds);
    free(s->bucket);
    free(s->scheme);
    free(s->host);
    free(s->path_base);
    free(s->endpoint_desc);
    free(s->region);
    free(s->ca_bundle);
    free(s->desc);
    free(s);
}

static const kl_objstore_ops s3_ops = {
    .put = s3_put,
    .get = s3_get,
    .head = s3_head,
    .list = s3_list,
    .del = s3_del,
    .describe = s3_describe,
    .destroy = s3_destroy,
    .claim = s3_claim,
    .claim_target = s3_claim_target,
    .publish = s3_publish,
    .unclaim = s3_del,
};

/* ------------------------------------------------------------------ */
/* construction                                                        */
/* ------------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* Can the bucket be the first label of a host name (virtual-hosted)? */
static int dns_compatible(const char *b, int https)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63 || !isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
        return 0;
    for (const char *p = b; *p; p++) {
        if (*p == '.' && (https || p[1] == '.'))
            return 0;
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' || *p == '.'))
            return 0;
    }
    return 1;
}

/* Parses the endpoint into scheme, host[:port] and a raw base path. */
static kl_status parse_endpoint(s3_os *s, const kl_s3_config *c, char **host, char **base,
                                kl_error *err)
{
    if (!c->endpoint || !*c->endpoint) {
        s->scheme = strdup("https");
        if (asprintf(host, "s3.%s.amazonaws.com", s->region) < 0)
            *host = NULL;
        *base = strdup("");
        return s->scheme && *host && *base ? KL_OK
                                           : kl_seterr(err, KL_ENOMEM, "S3: out of memory");
    }
    if (strncmp(c->endpoint, "http://", 7) != 0 && strncmp(c->endpoint, "https://", 8) != 0)
        return kl_seterr(err, KL_EINVAL,
                         "S3 endpoint '%.200s' must start with http:// or https://", c->endpoint);
    CURLU *u = curl_url();
    char *sch = NULL, *hst = NULL, *port = NULL, *path = NULL, *q = NULL;
    kl_status st = KL_OK;
    if (!u)
        return kl_seterr(err, KL_ENOMEM, "S3: out of memory");
    if (curl_url_set(u, CURLUPART_URL, c->endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &sch, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &hst, 0) != CURLUE_OK) {
        st = kl_seterr(err, KL_EINVAL, "S3 endpoint '%.200s' is not a valid URL", c->endpoint);
        goto done;
    }
    if (curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OK && q) {
        st = kl_seterr(err, KL_EINVAL, "S3 endpoint '%.200s' must not have a query", c->endpoint);
        goto done;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE);
    s->scheme = strdup(sch);
    if (port)
        st = asprintf(host, "%s:%s", hst, port) < 0 ? KL_ENOMEM : KL_OK;
    else
        *host = strdup(hst);
    /* Raw base path without its trailing '/': "" or "/s3". */
    size_t pl = path ? strlen(path) : 0;
    while (pl && path[pl - 1] == '/')
        pl--;
    *base = strndup(path ? path : "", pl);
    if (st || !s->scheme || !*host || !*base)
        st = kl_seterr(err, KL_ENOMEM, "S3: out of memory");
done:
    curl_free(sch);
    curl_free(hst);
    curl_free(port);
    curl_free(path);
    curl_free(q);
    curl_url_cleanup(u);
    return st;
}

kl_status kl_objstore_s3_new(const kl_s3_config *c, kl_objstore **out, kl_error *err)
{
    *out = NULL;
    if (!c || !c->bucket_name || !*c->bucket_name)
        return kl_seterr(err, KL_EINVAL, "S3: bucket_name is required");
    if (strchr(c->bucket_name, '/') || strlen(c->bucket_name) > 255)
        return kl_seterr(err, KL_EINVAL, "S3: '%.100s' is not a bucket name", c->bucket_name);
    if (c->connect_timeout_ms <= 0 || c->request_timeout_ms <= 0 || c->max_retries < 0)
        return kl_seterr(err, KL_EINVAL,
                         "S3: connect_timeout_ms and request_timeout_ms must be positive and "
                         "max_retries not negative");
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return kl_seterr(err, KL_EIO, "S3: libcurl initialisation failed: %s",
                         curl_easy_strerror(curl_init_rc));
    Kl_s3_xml_init();

    s3_os *s = calloc(1, sizeof *s);
    if (!s)
        return kl_seterr(err, KL_ENOMEM, "S3: out of memory");
    s->base.ops = &s3_ops;
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_mutex_init(&s->probe_mu, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&s->share_mu[i], NULL);
    s->connect_timeout_ms = c->connect_timeout_ms;
    s->request_timeout_ms = c->request_timeout_ms;
    s->max_retries = c->max_retries;
    s->verify_tls = c->verify_tls;

    char *host = NULL, *base = NULL;
    kl_status st;
    s->bucket = strdup(c->bucket_name);
    s->region = strdup(c->region && *c->region ? c->region : "us-east-1");
    if (c->ca_bundle && *c->ca_bundle)
        s->ca_bundle = strdup(c->ca_bundle);
    if (!s->bucket || !s->region || (c->ca_bundle && *c->ca_bundle && !s->ca_bundle)) {
        st = kl_seterr(err, KL_ENOMEM, "S3: out of memory");
        goto fail;
    }
    if ((st = parse_endpoint(s, c, &host, &base, err)))
        goto fail;
    int https = strcmp(s->scheme, "https") == 0;
    s->sign_payload = c->sign_payload == KL_SIGN_PAYLOAD_ON ||
                      (c->sign_payload == KL_SIGN_PAYLOAD_AUTO && !https);
    /* An IP address cannot take a bucket label in front of it. */
    size_t hl = strcspn(host, ":");
    int ip_host = host[0] == '[' || strspn(host, "0123456789.") == hl;
    int path_style = c->path_style || ip_host || !dns_compatible(s->bucket, https);
    int rc1 = asprintf(&s->endpoint_desc, "%s://%s%s", s->scheme, host, base);
    int rc2 = path_style ? asprintf(&s->path_base, "%s/%s/", base, s->bucket)
                         : asprintf(&s->path_base, "%s/", base);
    if (!path_style) {
        char *vh = NULL;
        if (asprintf(&vh, "%s.%s", s->bucket, host) < 0)
            vh = NULL;
        free(host);
        host = vh;
    }
    s->host = host;
    host = NULL;
    int rc3 = asprintf(&s->desc, "s3://%s", s->bucket);
    if (rc1 < 0 || rc2 < 0 || rc3 < 0 || !s->host) {
        if (rc1 < 0) s->endpoint_desc = NULL;
        if (rc2 < 0) s->path_base = NULL;
        if (rc3 < 0) s->desc = NULL;
        st = kl_seterr(err, KL_ENOMEM, "S3: out of memory");
        goto fail;
    }
    if ((st = Kl_s3_credprov_new(c, &s->creds, err)))
        goto fail;
    if ((s->share = curl_share_init())) {
        curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(s->share, CURLSHOPT_USERDATA, s);
        curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
    free(base);
    *out = &s->base;
    return KL_OK;
fail:
    free(host);
    free(base);
    s3_destroy(&s->base);
    return st;
}
