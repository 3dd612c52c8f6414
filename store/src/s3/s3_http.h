/* s3_http.h -- the S3 HTTP transport: one request, signed, sent over a
 * pooled connection and retried until it has an answer worth acting on.
 *
 * The S3 operations (objstore_s3.c) describe a request (s3_req) and read
 * the answer (s3_resp); everything between -- the URL, SigV4, curl,
 * bounded bodies, retry and backoff, turning a final failure into a
 * message an operator can act on -- is here, so that the operations read
 * as the S3 API and the transport can be reasoned about on its own. */
#ifndef KL_S3_HTTP_H
#define KL_S3_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "klstore.h"
#include "s3/s3_addr.h"
#include "s3/s3_creds.h"
#include "s3/sigv4.h"

/* A request.  All pointers are borrowed for the duration of the call. */
typedef struct s3_req {
    const char *op; /* for messages: "GET", "PUT", "LIST", ... */
    const char *method;
    const char *key;      /* object name, or NULL for the bucket */
    const char *shown;    /* name for messages when key is NULL */
    kl_sigv4_kv query[8]; /* raw; value NULL = valueless ("?delete") */
    size_t n_query;
    kl_sigv4_kv hdrs[6]; /* extra headers, all signed */
    size_t n_hdrs;
    const kl_body *body; /* PUT: in pieces; POST: one piece; NULL: none */
    int head;            /* HEAD: no response body */
    long accept[4];      /* non-2xx statuses the caller handles */
    uint64_t max_body;   /* most bytes a 2xx body may have; 0 = S3_MAX_DOC
                            (32 MiB, s3_http.c) */
    int enough_at_max;   /* a 2xx body reaching max_body is complete
                            for this request (a GET of a range) */
} s3_req;

/* An answer.  The caller owns body (Kl_buf_free) once Kl_s3_http_do
 * returned KL_OK; on an error there is nothing to free. */
typedef struct s3_resp {
    long status;
    kl_buf body;
    char request_id[128];
    char bucket_region[64];
    uint64_t content_length; /* from the Content-Length header */
    char claim_object[256];  /* x-amz-meta-kl-object (slot claims) */
    char etag[128];          /* ETag (slot claims' tags) */
    int ambiguous;           /* an earlier attempt may have been applied */
    struct conn *conn;       /* during the transfer, for on_header */
    int attempts;
    uint64_t max_body; /* rq->max_body, resolved */
    int overflow;      /* the body went past its cap: transfer cut */
} s3_resp;

/* The transport of one store.  The settings are set by Kl_s3_http_init
 * and read-only afterwards (the operations read bucket and addr for their
 * messages); the pool is s3_http.c's.  Thread-safe: any number of threads
 * may run requests at once. */
typedef struct kl_s3_http {
    char *bucket;
    char *region;
    char *ca_bundle; /* or NULL: the system's */
    kl_s3_addr addr;
    long connect_timeout_ms, request_timeout_ms;
    int max_retries, verify_tls;
    int sign_payload; /* x-amz-content-sha256 is the body's hash, not UNSIGNED-PAYLOAD */
    kl_s3_credprov *creds;
    struct kl_s3_pool *pool;
} kl_s3_http;

/* Sets h up from a validated configuration (bucket_name set, timeouts
 * positive): libcurl, addressing, the credential chain (not read yet),
 * the connection pool.  On failure h holds nothing to free. */
kl_status Kl_s3_http_init(kl_s3_http *h, const kl_s3_config *c, kl_error *err);
/* Frees what Kl_s3_http_init made; h may be zeroed. */
void Kl_s3_http_free(kl_s3_http *h);

/* Runs rq, with retries (idempotent requests only).  KL_OK when the final
 * answer is 2xx or one of rq->accept (the caller reads rs->status);
 * otherwise the error, whose message names the request, the server's
 * error code and its request id. */
kl_status Kl_s3_http_do(kl_s3_http *h, const s3_req *rq, s3_resp *rs, kl_error *err);

#endif /* KL_S3_HTTP_H */
