/* s3_retry.h -- what a failed S3 exchange means: worth another try (and
 * after how long), or an error, and then which status and message.
 *
 * Used by the transport (s3_http.c) between attempts and when it gives
 * up, and by the operations for their own messages.  Pure functions of
 * the answer, except Kl_s3_backoff, which sleeps; all thread-safe. */
#ifndef KL_S3_RETRY_H
#define KL_S3_RETRY_H

#include <stddef.h>

#include <curl/curl.h>

#include "klstore.h"
#include "s3/s3_creds.h"
#include "s3/s3_http.h"

/* Is this transport failure (no HTTP answer) worth another try? */
int Kl_s3_retry_curl(CURLcode cc);

/* Is this answer (its status and S3 error code, or NULL) worth the same
 * request again?  *throttled for SlowDown-like answers, which deserve a
 * longer pause. */
int Kl_s3_retry_http(const s3_resp *rs, const char *code, int *throttled);

/* Does the S3 error code say the session token is expired or invalid
 * (temporary credentials rotated under us)? */
int Kl_s3_token_expired(const char *code);

/* Sleeps before attempt + 1: exponential with jitter, longer when the
 * server throttles. */
void Kl_s3_backoff(int attempt, int throttled);

/* "S3 GET s3://bucket/name" for messages, names cut to keep the message. */
void Kl_s3_what(const kl_s3_http *h, const s3_req *rq, char *buf, size_t cap);

/* The final error of a request that got an HTTP answer it does not
 * accept: KL_EIO for what may pass (5xx, throttling), KL_EINVAL for what
 * needs a person, with a hint naming the likely cause (cr: the
 * credentials used, for naming their source and access key; never the
 * secret).  Returns the status it set in err. */
kl_status Kl_s3_http_error(const kl_s3_http *h, const s3_req *rq, const s3_resp *rs,
                           const kl_s3_creds *cr, kl_error *err);

#endif /* KL_S3_RETRY_H */
