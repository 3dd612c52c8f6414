/* sigv4.h -- AWS Signature Version 4 for S3 requests, as pure functions.
 *
 * Kept free of I/O and clocks so that it can be checked byte for byte
 * against AWS's published examples (tests/s3/test_sigv4.c).  The caller
 * decides which headers to sign; s3_http.c signs host,
 * x-amz-content-sha256, x-amz-date, x-amz-security-token (when there is a
 * session token) and every other header it sends except Authorization.
 */
#ifndef KL_S3_SIGV4_H
#define KL_S3_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "klstore.h"

/* A name/value pair: a header or a query parameter.  Values are raw (not
 * yet percent-encoded); query parameters are encoded while signing. */
typedef struct kl_sigv4_kv {
    const char *name;
    const char *value;
} kl_sigv4_kv;

typedef struct kl_sigv4_req {
    const char *method;       /* "GET", "PUT", ... */
    const char *path;         /* raw path, e.g. "/bucket/a b.txt" */
    const kl_sigv4_kv *query; /* raw query parameters, any order */
    size_t n_query;
    const kl_sigv4_kv *headers; /* headers to sign, any case and order */
    size_t n_headers;
    const char *payload_hash; /* hex SHA-256 of the body */
    const char *amz_date;     /* "20130524T000000Z" */
    const char *region;       /* "us-east-1" */
    const char *service;      /* "s3" */
} kl_sigv4_req;

/* What signing produced; every string is malloc'd (Kl_sigv4_result_free).
 * The intermediate steps are kept because they are what a server echoes
 * back in SignatureDoesNotMatch errors and what the tests compare. */
typedef struct kl_sigv4_result {
    char *canonical_request;
    char *string_to_sign;
    char *signed_headers; /* "host;range;x-amz-date" */
    char signature[65];   /* lowercase hex */
    char *authorization;  /* the Authorization header value */
} kl_sigv4_result;

/* SHA-256 of data as lowercase hex (out gets 64 chars + NUL). */
void Kl_sha256_hex(const void *data, size_t len, char out[65]);
/* The same over a body in pieces (an x-amz-content-sha256). */
void Kl_sha256_hex_body(const kl_body *b, char out[65]);

/* Percent-encodes per RFC 3986 as SigV4 wants it: unreserved characters
 * (A-Z a-z 0-9 - . _ ~) stay, everything else becomes %XX (uppercase);
 * '/' stays too when keep_slash is set (object paths).  Returns a malloc'd
 * string, or NULL when out of memory. */
char *Kl_sigv4_uri_encode(const char *s, size_t len, int keep_slash);

/* Signs r with the given credentials.  Returns 0, or -1 when out of memory
 * or when r is incomplete (then *out is left zeroed). */
int Kl_sigv4_sign(const kl_sigv4_req *r, const char *access_key, const char *secret_key,
                  kl_sigv4_result *out);
void Kl_sigv4_result_free(kl_sigv4_result *res);

/* Formats a Unix time as the x-amz-date form "YYYYMMDDTHHMMSSZ". */
void Kl_sigv4_amz_date(int64_t unix_seconds, char out[17]);

#endif /* KL_S3_SIGV4_H */
