/* stub_http.h -- a tiny HTTP/1.1 server on 127.0.0.1 for tests that need an
 * endpoint to misbehave on purpose (S3 answering 503 SlowDown, a server that
 * never answers) or to play a metadata service (IMDS, container
 * credentials).  One thread, one connection at a time, "Connection: close"
 * after every answer. */
#ifndef KL_TEST_STUB_HTTP_H
#define KL_TEST_STUB_HTTP_H

#include <stddef.h>

typedef struct stub_req {
    char method[16];
    char target[4096];   /* as sent: path and query, still encoded */
    char headers[16384]; /* raw header lines, "\r\n" separated */
    char *body;
    size_t body_len;
} stub_req;

typedef struct stub_resp {
    int status;          /* 0 = close the connection without answering */
    const char *headers; /* extra header lines, each ending in "\r\n" */
    const char *body;
    size_t body_len; /* 0 with body set = strlen(body) */
    int delay_ms;    /* wait this long before answering */
    int endless;     /* chunked, `body` repeated until the client
                        goes (or 8 GiB): an endless body */
    int drip_ms;     /* send the answer one byte per drip_ms */
} stub_resp;

/* Called for request number n (0-based) with the response zeroed.  Runs
 * on the server thread. */
typedef void (*stub_handler)(void *ud, int n, const stub_req *rq, stub_resp *rs);

typedef struct stub stub;

stub *stub_start(stub_handler h, void *ud);
int stub_port(const stub *s);
/* Requests answered (or deliberately dropped) so far. */
int stub_count(stub *s);
void stub_stop(stub *s);

/* Value of header `name` (case-insensitive) in rq, copied to buf; NULL if
 * absent. */
const char *stub_header(const stub_req *rq, const char *name, char *buf, size_t cap);

#endif
