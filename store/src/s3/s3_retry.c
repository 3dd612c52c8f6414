/* s3_retry.c -- what a failed S3 exchange means (see s3_retry.h).
 *
 * Apart from the transport because it is policy, not mechanics: which
 * curl failures and which server answers are worth another try, how long
 * to wait before it, and, when they are not, which status and which words
 * the caller gets.  The words matter most: an operator reading "access
 * denied for access key 'AKIA...' (credentials from environment)" knows
 * what to fix, one reading "HTTP 403" does not.
 */
#define _GNU_SOURCE
#include "s3/s3_retry.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s3/s3_xml.h"

/* Backoff: base delays per attempt, doubled each time, capped. */
#define BACKOFF_BASE_MS     100
#define BACKOFF_THROTTLE_MS 500
#define BACKOFF_CAP_MS      10000

int Kl_s3_retry_curl(CURLcode cc)
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
    case CURLE_WEIRD_SERVER_REPLY: return 1;
    default: return 0;
    }
}

int Kl_s3_retry_http(const s3_resp *rs, const char *code, int *throttled)
{
    *throttled = rs->status == 429 || rs->status == 503 ||
                 (code && (strcmp(code, "SlowDown") == 0 || strcmp(code, "Throttling") == 0 ||
                           strcmp(code, "ThrottlingException") == 0 ||
                           strcmp(code, "RequestLimitExceeded") == 0));
    if (rs->status == 501) /* NotImplemented: asking again will not help */
        return 0;
    if (*throttled || rs->status >= 500) return 1;
    return code && (strcmp(code, "RequestTimeout") == 0 || strcmp(code, "InternalError") == 0 ||
                    strcmp(code, "ConditionalRequestConflict") == 0 ||
                    strcmp(code, "OperationAborted") == 0);
}

int Kl_s3_token_expired(const char *code)
{
    return code && (strcmp(code, "ExpiredToken") == 0 ||
                    strcmp(code, "TokenRefreshRequired") == 0 || strcmp(code, "InvalidToken") == 0);
}

void Kl_s3_backoff(int attempt, int throttled)
{
    static __thread unsigned seed;
    if (!seed) seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&seed;
    long base = throttled ? BACKOFF_THROTTLE_MS : BACKOFF_BASE_MS;
    long d = base << (attempt < 16 ? attempt : 16);
    if (d > BACKOFF_CAP_MS || d <= 0) d = BACKOFF_CAP_MS;
    /* "Equal jitter": at least half the delay, so that a throttled server
     * really gets a pause, and spread so that clients desynchronise. */
    long ms = d / 2 + (long)(rand_r(&seed) % (unsigned)(d / 2 + 1));
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

void Kl_s3_what(const kl_s3_http *s, const s3_req *rq, char *buf, size_t cap)
{
    snprintf(buf, cap, "S3 %s s3://%s/%.200s", rq->op, s->bucket,
             rq->key     ? rq->key
             : rq->shown ? rq->shown
                         : "");
}

kl_status Kl_s3_http_error(const kl_s3_http *s, const s3_req *rq, const s3_resp *rs,
                           const kl_s3_creds *cr, kl_error *err)
{
    kl_s3_xml_error x;
    int has = Kl_s3_xml_parse_error((const char *)rs->body.data, rs->body.len, &x);
    const char *code = has && x.code[0] ? x.code : NULL;
    const char *rid = has && x.request_id[0] ? x.request_id : rs->request_id;
    const char *src = cr && cr->source ? cr->source : "?";
    const char *ak = cr && cr->access_key ? cr->access_key : "?";
    char what[300], hint[300] = "", server[300] = "";
    Kl_s3_what(s, rq, what, sizeof what);
    if (has && x.message[0]) snprintf(server, sizeof server, ": %.250s", x.message);
    kl_status st =
        (rs->status >= 500 && rs->status != 501) || rs->status == 429 ? KL_EIO : KL_EINVAL;
    int throttled = 0;
    Kl_s3_retry_http(rs, code, &throttled);

    if (throttled) {
        snprintf(hint, sizeof hint,
                 "the server is throttling requests (%s); gave up after %d attempts",
                 code ? code : "HTTP 503/429", rs->attempts);
        st = KL_EIO;
    } else if (code && strcmp(code, "NoSuchBucket") == 0) {
        snprintf(hint, sizeof hint, "bucket '%s' does not exist at %s", s->bucket,
                 s->addr.endpoint_desc);
    } else if (code && strcmp(code, "InvalidAccessKeyId") == 0) {
        snprintf(
            hint, sizeof hint,
            "the server does not know access key '%.40s' (credentials from %s): wrong credentials",
            ak, src);
    } else if (code && strcmp(code, "SignatureDoesNotMatch") == 0) {
        snprintf(hint, sizeof hint,
                 "the signature does not match: the secret key (credentials from %s) is wrong "
                 "for access key '%.40s', or something altered the request",
                 src, ak);
    } else if (code && strcmp(code, "AccessDenied") == 0) {
        snprintf(hint, sizeof hint, "access denied for access key '%.40s' (credentials from %s)",
                 ak, src);
    } else if (Kl_s3_token_expired(code)) {
        snprintf(hint, sizeof hint, "the session token (credentials from %s) is expired or invalid",
                 src);
    } else if (code && strcmp(code, "RequestTimeTooSkewed") == 0) {
        snprintf(hint, sizeof hint,
                 "this machine's clock is too far from the server's: fix the time");
    } else if (rs->status == 301 || (code && strcmp(code, "PermanentRedirect") == 0)) {
        snprintf(hint, sizeof hint, "bucket '%s' is in another region%s%s%s: set region", s->bucket,
                 rs->bucket_region[0] ? " (" : "", rs->bucket_region,
                 rs->bucket_region[0] ? ")" : "");
    } else if (!code && rs->status == 403) {
        snprintf(
            hint, sizeof hint,
            "HTTP 403 Forbidden: wrong credentials (from %s, access key '%.40s') or no permission",
            src, ak);
    } else if (!code && rs->status == 404) {
        snprintf(hint, sizeof hint, "not found (no such bucket '%s' at %s?)", s->bucket,
                 s->addr.endpoint_desc);
    } else if (rs->status >= 500) {
        snprintf(hint, sizeof hint, "server error %s; gave up after %d attempts", code ? code : "",
                 rs->attempts);
    } else {
        snprintf(hint, sizeof hint, "%s", code ? code : "the server refused the request");
    }
    char tag[80] = "";
    if (code && !strstr(hint, code)) snprintf(tag, sizeof tag, " [%s]", code);
    /* Request id before the server's text, which may be long: the id is
     * what the provider's support asks for. */
    return kl_seterr(err, st, "%s: %s%s (HTTP %ld%s%s)%s", what, hint, tag, rs->status,
                     rid[0] ? ", request id " : "", rid, server);
}
