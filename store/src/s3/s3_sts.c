/* s3_sts.c -- AssumeRole and AssumeRoleWithWebIdentity over STS's query
 * API (see s3_sts.h).
 *
 * A request is what botocore sends: POST / with a form body
 * (Action=...&Version=2011-06-15&RoleArn=...), AssumeRole signed with
 * SigV4 for service "sts", AssumeRoleWithWebIdentity not signed at all.
 * The token and the secrets travel only in the body and the signature,
 * never in a URL, and no message quotes them.  Each attempt is bounded in
 * time (the store's connect and request timeouts) and the answer in size
 * (MAX_STS_BODY); transport failures, 5xx and throttling are tried up to
 * ATTEMPTS times with the S3 transport's backoff.  The XML is read in
 * s3_xml.c.
 */
#define _GNU_SOURCE
#include "s3/s3_sts.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "s3/s3_body.h"
#include "s3/s3_retry.h"
#include "s3/s3_xml.h"
#include "s3/sigv4.h"

/* STS answers are a few KiB (a session token is at most a few thousand
 * bytes); anything larger is not one. */
#define MAX_STS_BODY (256 * 1024)
#define ATTEMPTS     3

/* ------------------------------------------------------------------ */
/* where STS is                                                        */
/* ------------------------------------------------------------------ */

/* The regions whose STS requests the "legacy" setting sends to the global
 * endpoint (AWS SDKs and Tools reference guide, "AWS STS Regional
 * endpoints"). */
static const char *const legacy_global[] = {
    "ap-northeast-1", "ap-south-1",   "ap-southeast-1", "ap-southeast-2",
    "aws-global",     "ca-central-1", "eu-central-1",   "eu-north-1",
    "eu-west-1",      "eu-west-2",    "eu-west-3",      "sa-east-1",
    "us-east-1",      "us-east-2",    "us-west-1",      "us-west-2"};

static int is_legacy_global(const char *r)
{
    for (size_t i = 0; i < sizeof legacy_global / sizeof *legacy_global; i++)
        if (strcmp(r, legacy_global[i]) == 0) return 1;
    return 0;
}

/* A region must be a host label: letters, digits and dashes. */
static int region_ok(const char *r)
{
    size_t n = strlen(r);
    return n > 0 && n < 64 && strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

kl_status Kl_s3_sts_endpoint(const kl_s3_sts_where *w, kl_s3_sts_endpoint *out, kl_error *err)
{
    memset(out, 0, sizeof *out);
    const char *region = w->region && *w->region ? w->region : NULL;
    if (region && !region_ok(region))
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: region '%.80s' is not a region name (STS needs one "
                         "for its endpoint)",
                         region);
    const char *mode = w->regional && *w->regional ? w->regional : "regional";
    if (strcasecmp(mode, "regional") != 0 && strcasecmp(mode, "legacy") != 0)
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: sts_regional_endpoints is '%.60s'; it must be "
                         "'regional' or 'legacy'",
                         mode);
    /* Signing region: the configured one; the global endpoint is
     * us-east-1's. */
    int global = !region || strcmp(region, "aws-global") == 0;
    snprintf(out->region, sizeof out->region, "%s", global ? "us-east-1" : region);
    if (w->endpoint_url && *w->endpoint_url) {
        const char *u = w->endpoint_url;
        if ((strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0) ||
            strlen(u) >= sizeof out->url || strpbrk(u, " \t\r\n?#"))
            return kl_seterr(err, KL_EINVAL,
                             "S3 credentials: %s '%.200s' is not an http:// or https:// URL "
                             "(without query)",
                             w->endpoint_from ? w->endpoint_from : "the STS endpoint", u);
        snprintf(out->url, sizeof out->url, "%s", u);
        return KL_OK;
    }
    if (global || (strcasecmp(mode, "legacy") == 0 && is_legacy_global(region))) {
        snprintf(out->url, sizeof out->url, "https://sts.amazonaws.com");
        snprintf(out->region, sizeof out->region, "us-east-1");
    } else
        snprintf(out->url, sizeof out->url, "https://sts.%s.amazonaws.com%s", region,
                 strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
    return KL_OK;
}

/* ------------------------------------------------------------------ */
/* the answer                                                          */
/* ------------------------------------------------------------------ */

/* Error codes of STS worth another try (botocore retries these). */
static int code_retryable(const char *code)
{
    static const char *const codes[] = {"Throttling",           "ThrottlingException",
                                        "RequestLimitExceeded", "IDPCommunicationError",
                                        "ServiceUnavailable",   "InternalFailure"};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        if (strcmp(code, codes[i]) == 0) return 1;
    return 0;
}

kl_status Kl_s3_sts_answer(long status, const char *body, size_t len, const char *action,
                           const char *where, const char *label, kl_s3_creds *out, kl_error *err)
{
    memset(out, 0, sizeof *out);
    kl_s3_xml_sts c;
    kl_s3_xml_error e;
    int r = Kl_s3_xml_parse_sts(body, len, action, &c, &e);
    if (r == -2) return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
    if (r == 1 && status == 200) {
        int64_t exp;
        kl_status st;
        if (kl_parse_time(c.expiration, &exp, NULL) != KL_OK)
            st = kl_seterr(err, KL_EIO,
                           "S3 credentials: STS %s %s: the answer's Expiration '%.40s' is "
                           "not a time",
                           action, where, c.expiration);
        else
            st = Kl_s3_creds_set(out, c.key_id, c.secret, c.token, exp, label, err);
        Kl_s3_xml_sts_free(&c);
        return st;
    }
    Kl_s3_xml_sts_free(&c);
    if (r == 1) /* credentials, but not with 200 */
        snprintf(e.message, sizeof e.message, "a credentials document");
    int transient = status >= 500 || status == 429 || (r == 0 && code_retryable(e.code));
    if (r == 0)
        return kl_seterr(err, transient ? KL_EIO : KL_EINVAL,
                         "S3 credentials: STS %s %s: HTTP %ld %s: %.200s (request id %s)", action,
                         where, status, e.code[0] ? e.code : "(no code)",
                         e.message[0] ? e.message : "(no message)",
                         e.request_id[0] ? e.request_id : "none");
    return kl_seterr(err, transient || status == 200 ? KL_EIO : KL_EINVAL,
                     "S3 credentials: STS %s %s: HTTP %ld and %s", action, where, status,
                     e.message);
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */
/* ------------------------------------------------------------------ */

/* "name=value&..." with values percent-encoded; NULL values skipped. */
static char *form(const kl_sigv4_kv *kv, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    int sep = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!kv[i].value) continue;
        char *v = Kl_sigv4_uri_encode(kv[i].value, strlen(kv[i].value), 0);
        bad |= !v;
        fprintf(f, "%s%s=%s", sep++ ? "&" : "", kv[i].name, v ? v : "");
        if (v) {
            OPENSSL_cleanse(v, strlen(v));
            free(v);
        }
    }
    if (fclose(f) != 0 || bad) {
        if (buf) OPENSSL_cleanse(buf, len);
        free(buf);
        return NULL;
    }
    return buf;
}

/* The Host header of url and the path to sign: curl's URL parser, so
 * that both are what curl sends. */
static int url_parts(const char *url, char *host, size_t hcap, char *path, size_t pcap)
{
    CURLU *u = curl_url();
    char *h = NULL, *port = NULL, *p = NULL, *scheme = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_PATH, &p, 0) == CURLUE_OK;
    if (ok) {
        curl_url_get(u, CURLUPART_PORT, &port, 0); /* only when given */
        int deflt = port && ((strcmp(scheme, "http") == 0 && strcmp(port, "80") == 0) ||
                             (strcmp(scheme, "https") == 0 && strcmp(port, "443") == 0));
        snprintf(host, hcap, "%s%s%s", h, port && !deflt ? ":" : "", port && !deflt ? port : "");
        snprintf(path, pcap, "%s", p && *p ? p : "/");
    }
    curl_free(h);
    curl_free(port);
    curl_free(p);
    curl_free(scheme);
    curl_url_cleanup(u);
    return ok ? 0 : -1;
}

/* Appends "name: value" (wiped after curl copied it); 1 when out of
 * memory.  An empty value removes a header curl would add ("Expect:"). */
static int add_header(struct curl_slist **l, const char *name, const char *value)
{
    char *line = NULL;
    if (asprintf(&line, "%s:%s%s", name, *value ? " " : "", value) < 0) return 1;
    struct curl_slist *n = curl_slist_append(*l, line);
    OPENSSL_cleanse(line, strlen(line));
    free(line);
    if (!n) return 1;
    *l = n;
    return 0;
}

/* One STS action.  `source` signs it (AssumeRole) or NULL (unsigned). */
static kl_status sts_call(const kl_s3_sts_call *c, const char *action, const kl_sigv4_kv *params,
                          size_t n_params, const kl_s3_creds *source, const char *label,
                          kl_s3_creds *out, kl_error *err)
{
    memset(out, 0, sizeof *out);
    char where[400];
    snprintf(where, sizeof where, "at %.200s for %.150s", c->ep->url, c->what);
    char host[300], path[300];
    if (url_parts(c->ep->url, host, sizeof host, path, sizeof path) != 0)
        return kl_seterr(err, KL_EINVAL, "S3 credentials: STS %s %s: cannot parse the URL", action,
                         where);
    char *body = form(params, n_params);
    if (!body) return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
    size_t body_len = strlen(body);
    kl_status st = KL_OK;
    for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
        if (attempt) Kl_s3_backoff(attempt - 1, 0);
        char amz_date[17], hash[65];
        Kl_sigv4_amz_date(kl_now_ms() / 1000, amz_date);
        Kl_sha256_hex(body, body_len, hash);
        const char *ctype = "application/x-www-form-urlencoded; charset=utf-8";
        kl_sigv4_kv sh[4] = {{"Content-Type", ctype},
                             {"Host", host},
                             {"X-Amz-Date", amz_date},
                             {"X-Amz-Security-Token", source ? source->token : NULL}};
        size_t n_sh = source && source->token ? 4 : 3;
        kl_sigv4_result sig = {0};
        struct curl_slist *hdrs = NULL;
        int oom = 0;
        if (source) {
            kl_sigv4_req r = {"POST", path,     NULL,          0,    sh, n_sh,
                              hash,   amz_date, c->ep->region, "sts"};
            oom = Kl_sigv4_sign(&r, source->access_key, source->secret_key, &sig) != 0;
        }
        for (size_t i = 0; i < n_sh && !oom; i++) oom = add_header(&hdrs, sh[i].name, sh[i].value);
        if (source && !oom) oom = add_header(&hdrs, "Authorization", sig.authorization);
        if (!oom) oom = add_header(&hdrs, "Expect", "");
        Kl_sigv4_result_free(&sig);
        CURL *h = oom ? NULL : curl_easy_init();
        if (!h) {
            curl_slist_free_all(hdrs);
            st = kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
            break;
        }
        kl_s3_body b = {.max = MAX_STS_BODY};
        char errbuf[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(h, CURLOPT_URL, c->ep->url);
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_len);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, Kl_s3_body_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        const char *ca = getenv("AWS_CA_BUNDLE");
        if (ca && *ca) curl_easy_setopt(h, CURLOPT_CAINFO, ca);
        CURLcode rc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
        curl_slist_free_all(hdrs);
        if (rc != CURLE_OK) {
            int too_big = b.too_big;
            st = kl_seterr(err, too_big ? KL_EBADDATA : KL_EIO, "S3 credentials: STS %s %s: %s",
                           action, where,
                           too_big     ? "the answer is larger than 256 KiB"
                           : errbuf[0] ? errbuf
                                       : curl_easy_strerror(rc));
            Kl_s3_body_wipe(&b);
            if (too_big || !Kl_s3_retry_curl(rc)) break;
            continue;
        }
        st = Kl_s3_sts_answer(status, b.data, b.len, action, where, label, out, err);
        Kl_s3_body_wipe(&b);
        if (st != KL_EIO) break;
    }
    OPENSSL_cleanse(body, body_len);
    free(body);
    return st;
}

kl_status Kl_s3_sts_assume_role(const kl_s3_sts_call *c, const kl_s3_creds *source,
                                const char *label, kl_s3_creds *out, kl_error *err)
{
    char dur[16];
    snprintf(dur, sizeof dur, "%d", c->duration_s);
    kl_sigv4_kv p[] = {
        {"Action", "AssumeRole"},       {"Version", "2011-06-15"},
        {"RoleArn", c->role_arn},       {"RoleSessionName", c->session_name},
        {"ExternalId", c->external_id}, {"DurationSeconds", c->duration_s ? dur : NULL}};
    return sts_call(c, "AssumeRole", p, sizeof p / sizeof *p, source, label, out, err);
}

kl_status Kl_s3_sts_assume_role_web_identity(const kl_s3_sts_call *c, const char *token,
                                             const char *label, kl_s3_creds *out, kl_error *err)
{
    kl_sigv4_kv p[] = {{"Action", "AssumeRoleWithWebIdentity"},
                       {"Version", "2011-06-15"},
                       {"RoleArn", c->role_arn},
                       {"RoleSessionName", c->session_name},
                       {"WebIdentityToken", token}};
    return sts_call(c, "AssumeRoleWithWebIdentity", p, sizeof p / sizeof *p, NULL, label, out, err);
}
