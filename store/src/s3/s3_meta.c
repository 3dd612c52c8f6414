/* s3_meta.c -- temporary credentials from the container endpoint and EC2
 * instance metadata (see s3_meta.h).
 *
 * Both are plain HTTP to a link-local or loopback address, so every call
 * is short (AWS_METADATA_SERVICE_TIMEOUT, default 1 s: off EC2 nothing
 * answers and the chain must move on), never goes through a proxy, and
 * reads at most MAX_META_BODY bytes.  The answers are JSON, read with
 * jansson: a strict RFC 8259 parser whose json_loadb takes a
 * length-bounded buffer (no NUL needed) and can refuse duplicate keys
 * (JSON_REJECT_DUPLICATES), with a small API that has been stable for
 * years.
 */
#define _GNU_SOURCE
#include "s3/s3_meta.h"
#include "s3/s3_body.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "s3/sigv4.h"

/* Lifetime assumed when an answer carries no Expiration. */
#define DEFAULT_LIFETIME_MS (20 * 60 * 1000)
/* Metadata answers are tiny; anything larger is not one. */
#define MAX_META_BODY (64 * 1024)

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void Kl_s3_meta_keys_free(kl_s3_meta_keys *k)
{
    wipe_free(k->key_id);
    wipe_free(k->secret);
    wipe_free(k->token);
    memset(k, 0, sizeof *k);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */
/* ------------------------------------------------------------------ */

static long meta_timeout_ms(void)
{
    const char *t = env("AWS_METADATA_SERVICE_TIMEOUT");
    char *end;
    double s = t ? strtod(t, &end) : 1.0;
    if (!t || *end || s <= 0 || s > 3600) s = 1.0;
    return (long)(s * 1000);
}

/* One request to a metadata endpoint.  *status is 0 when the server could
 * not be reached (then `why` says so); *body is NUL-terminated (*len
 * bytes before the NUL) or NULL. */
static int meta_call(const char *method, const char *url, struct curl_slist *hdrs, long *status,
                     char **body, size_t *len, char *why, size_t whycap)
{
    *status = 0;
    *body = NULL;
    *len = 0;
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(why, whycap, "out of memory");
        return -1;
    }
    kl_s3_body b = {.max = MAX_META_BODY};
    long t = meta_timeout_ms();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, t);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2 * t);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* link-local: never via a proxy */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, Kl_s3_body_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        snprintf(why, whycap, "%s", b.too_big ? "answer too large" : curl_easy_strerror(rc));
        Kl_s3_body_wipe(&b);
        curl_easy_cleanup(h);
        return -1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    *body = b.data ? b.data : strdup("");
    *len = b.len;
    return 0;
}

/* ------------------------------------------------------------------ */
/* the answer                                                          */
/* ------------------------------------------------------------------ */

/* What went wrong, in words that never quote the input (jansson's own
 * text does, and the input holds secrets). */
const char *Kl_s3_meta_json_problem(int code)
{
    switch ((enum json_error_code)code) {
    case json_error_premature_end_of_input: return "it ends too early";
    case json_error_end_of_input_expected: return "something follows the object";
    case json_error_invalid_utf8: return "invalid UTF-8";
    case json_error_null_character:
    case json_error_null_byte_in_key: return "a \\u0000 in a string";
    case json_error_duplicate_key: return "a key appears twice";
    case json_error_stack_overflow: return "nested too deeply";
    case json_error_numeric_overflow: return "a number out of range";
    default: return "invalid syntax";
    }
}

/* A string member of o, or NULL when absent or not a string. */
static const char *member(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

kl_status Kl_s3_meta_parse(const char *body, size_t len, const char *where, kl_s3_meta_keys *out,
                           kl_error *err)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *o = json_loadb(body ? body : "", body ? len : 0, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        if (json_error_code(&je) == json_error_out_of_memory)
            return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
        return kl_seterr(err, KL_EIO,
                         "S3 credentials: %s answered malformed JSON (%s at line %d, column %d)",
                         where, Kl_s3_meta_json_problem(json_error_code(&je)), je.line, je.column);
    }
    if (!json_is_object(o)) {
        json_decref(o);
        return kl_seterr(err, KL_EIO, "S3 credentials: %s answered JSON that is not an object",
                         where);
    }
    kl_status st;
    const char *code = member(o, "Code"), *ak = member(o, "AccessKeyId");
    const char *sk = member(o, "SecretAccessKey"), *tok = member(o, "Token");
    const char *exp = member(o, "Expiration");
    if (code && strcmp(code, "Success") != 0) {
        st = kl_seterr(err, KL_EIO, "S3 credentials: %s answered Code '%.60s'", where, code);
    } else if (!ak || !sk || !*ak || !*sk) {
        st = kl_seterr(err, KL_EIO,
                       "S3 credentials: %s answered without AccessKeyId/SecretAccessKey", where);
    } else {
        int64_t ms = 0;
        if (!exp || kl_parse_time(exp, &ms, NULL) != KL_OK) ms = kl_now_ms() + DEFAULT_LIFETIME_MS;
        out->key_id = strdup(ak);
        out->secret = strdup(sk);
        out->token = tok && *tok ? strdup(tok) : NULL;
        out->expires_ms = ms;
        st = KL_OK;
        if (!out->key_id || !out->secret || (tok && *tok && !out->token)) {
            Kl_s3_meta_keys_free(out);
            st = kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
        }
    }
    /* jansson frees its strings without wiping them; they are its own
     * heap copies, so they can be overwritten before they go. */
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (json_is_string(v)) OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
    }
    json_decref(o);
    return st;
}

/* ------------------------------------------------------------------ */
/* the endpoints                                                       */
/* ------------------------------------------------------------------ */

/* Is this an address the container provider may use over plain http? */
static int container_host_ok(const char *url)
{
    if (strncmp(url, "https://", 8) == 0) return 1;
    if (strncmp(url, "http://", 7) != 0) return 0;
    const char *h = url + 7;
    static const char *const ok[] = {"localhost",     "127.",           "[::1]",
                                     "169.254.170.2", "169.254.170.23", "[fd00:ec2::23]"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        size_t n = strlen(ok[i]);
        if (strncmp(h, ok[i], n) == 0 &&
            (ok[i][n - 1] == '.' || h[n] == '\0' || h[n] == ':' || h[n] == '/'))
            return 1;
    }
    return 0;
}

kl_status Kl_s3_meta_container(kl_s3_meta_keys *out, kl_error *err)
{
    const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    char *url = NULL, *token = NULL, *body = NULL, *auth = NULL;
    size_t body_len = 0;
    struct curl_slist *hdrs = NULL;
    kl_status st;
    if (rel) {
        if (asprintf(&url, "http://169.254.170.2%s%s", rel[0] == '/' ? "" : "/", rel) < 0)
            url = NULL;
    } else {
        if (!container_host_ok(full))
            return kl_seterr(err, KL_EINVAL,
                             "S3 credentials: AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, "
                             "or http to a loopback or ECS/EKS link-local address");
        url = strdup(full);
    }
    if (!url) return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");

    const char *tfile = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (tfile) {
        FILE *f = fopen(tfile, "r");
        size_t cap = 0;
        if (!f || getline(&token, &cap, f) < 0) {
            if (f) fclose(f);
            free(url);
            free(token);
            return kl_seterr(
                err, KL_EINVAL,
                "S3 credentials: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s", tfile);
        }
        fclose(f);
    } else if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
        token = strdup(env("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
    }
    if (token) {
        char *t = trim(token);
        if (strpbrk(t, "\r\n")) {
            st = kl_seterr(
                err, KL_EINVAL,
                "S3 credentials: the container authorization token contains a line break");
            goto done;
        }
        if (asprintf(&auth, "Authorization: %s", t) < 0 ||
            !(hdrs = curl_slist_append(NULL, auth))) {
            st = kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
            goto done;
        }
    }
    long status;
    char why[160];
    if (meta_call("GET", url, hdrs, &status, &body, &body_len, why, sizeof why)) {
        st = kl_seterr(err, KL_EIO, "S3 credentials: container endpoint %s: %s", url, why);
        goto done;
    }
    if (status != 200) {
        st = kl_seterr(err, status >= 500 || status == 429 ? KL_EIO : KL_EINVAL,
                       "S3 credentials: container endpoint %s answered HTTP %ld", url, status);
        goto done;
    }
    st = Kl_s3_meta_parse(body, body_len, "container endpoint", out, err);
done:
    curl_slist_free_all(hdrs);
    wipe_free(auth);
    wipe_free(token);
    wipe_free(body);
    free(url);
    return st;
}

kl_status Kl_s3_meta_imds(kl_s3_meta_keys *out, int *reachable, char *why, size_t whycap,
                          kl_error *err)
{
    *reachable = 0;
    const char *ep = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    const char *mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    char base[512];
    snprintf(base, sizeof base, "%s",
             ep                                        ? ep
             : (mode && strcasecmp(mode, "IPv6") == 0) ? "http://[fd00:ec2::254]"
                                                       : "http://169.254.169.254");
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') base[--bl] = '\0';

    char url[1024], hdr[700];
    char *token = NULL, *body = NULL, *role = NULL;
    size_t body_len = 0;
    struct curl_slist *hdrs = NULL;
    long status;
    kl_status st = KL_OK;

    snprintf(url, sizeof url, "%s/latest/api/token", base);
    hdrs = curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
    int rc = meta_call("PUT", url, hdrs, &status, &token, &body_len, why, whycap);
    curl_slist_free_all(hdrs);
    hdrs = NULL;
    if (rc) {
        /* Nothing listens: not an EC2 instance (or IMDS is firewalled). */
        st = KL_ENOTFOUND;
        goto done;
    }
    *reachable = 1;
    if (status == 200 && token && *token && strlen(token) < 600 && !strpbrk(token, "\r\n")) {
        snprintf(hdr, sizeof hdr, "X-aws-ec2-metadata-token: %s", token);
        hdrs = curl_slist_append(NULL, hdr);
        OPENSSL_cleanse(hdr, sizeof hdr);
    } else if (status != 403 && status != 404 && status != 405) {
        /* 403/404/405: IMDSv2 off or unknown here; fall back to IMDSv1. */
        st = kl_seterr(err, KL_EIO, "S3 credentials: instance metadata %s answered HTTP %ld", url,
                       status);
        goto done;
    }

    snprintf(url, sizeof url, "%s/latest/meta-data/iam/security-credentials/", base);
    if (meta_call("GET", url, hdrs, &status, &body, &body_len, why, whycap)) {
        st = kl_seterr(err, KL_EIO, "S3 credentials: instance metadata %s: %s", url, why);
        goto done;
    }
    if (status == 404) {
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: this instance has no IAM role (instance metadata %s: 404)",
                       url);
        goto done;
    }
    if (status != 200) {
        st = kl_seterr(err, KL_EIO, "S3 credentials: instance metadata %s answered HTTP %ld", url,
                       status);
        goto done;
    }
    char *r = trim(body);
    r[strcspn(r, "\r\n")] = '\0';
    if (!*r) {
        st = kl_seterr(err, KL_EINVAL, "S3 credentials: instance metadata lists no IAM role");
        goto done;
    }
    if (!(role = Kl_sigv4_uri_encode(r, strlen(r), 0))) {
        st = kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
        goto done;
    }
    free(body);
    body = NULL;
    snprintf(url, sizeof url, "%s/latest/meta-data/iam/security-credentials/%.300s", base, role);
    if (meta_call("GET", url, hdrs, &status, &body, &body_len, why, whycap)) {
        st = kl_seterr(err, KL_EIO, "S3 credentials: instance metadata %s: %s", url, why);
        goto done;
    }
    if (status != 200) {
        st = kl_seterr(err, KL_EIO, "S3 credentials: instance metadata %s answered HTTP %ld", url,
                       status);
        goto done;
    }
    st = Kl_s3_meta_parse(body, body_len, "instance metadata", out, err);
done:
    curl_slist_free_all(hdrs);
    wipe_free(token);
    wipe_free(body);
    free(role);
    return st;
}
