/* s3_creds.c -- the S3 credential chain (see s3_creds.h for the order).
 *
 * Mirrors the AWS CLI so that whatever makes `aws s3 ls` work makes klstore
 * work: environment, shared files, container endpoint, EC2 instance
 * metadata (IMDSv2).  The AWS shared files are read by s3_profile.c (one
 * file at a time; which files and what their contents mean is here).  The
 * metadata answers are a
 * flat JSON object of strings, read by a small scanner (no JSON library is
 * among our dependencies).  Fetched credentials are cached under a mutex
 * and refreshed ahead of their Expiration; a failed refresh keeps using
 * credentials that have not yet expired.
 */
#define _GNU_SOURCE
#include "s3/s3_creds.h"

#include <ctype.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "s3/s3_profile.h"
#include "s3/sigv4.h"

/* Refresh temporary credentials this long before they expire ... */
#define REFRESH_AHEAD_MS (10 * 60 * 1000)
/* ... but, while they are still valid, at most this often. */
#define REFRESH_MIN_GAP_MS (30 * 1000)
/* Lifetime assumed when a metadata answer carries no Expiration. */
#define DEFAULT_LIFETIME_MS (20 * 60 * 1000)
/* Metadata answers are tiny; anything larger is not one. */
#define MAX_META_BODY (64 * 1024)

struct kl_s3_credprov {
    pthread_mutex_t mu;
    int use_default;
    char *access_key, *secret_key, *token, *profile;
    kl_s3_creds cached;
    int have;
    int64_t fetched_ms;
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void Kl_s3_creds_clear(kl_s3_creds *c)
{
    if (!c)
        return;
    wipe_free(c->access_key);
    wipe_free(c->secret_key);
    wipe_free(c->token);
    memset(c, 0, sizeof *c);
}

static kl_status creds_copy(const kl_s3_creds *src, kl_s3_creds *dst, kl_error *err)
{
    memset(dst, 0, sizeof *dst);
    dst->access_key = strdup(src->access_key);
    dst->secret_key = strdup(src->secret_key);
    dst->token = src->token ? strdup(src->token) : NULL;
    dst->expires_ms = src->expires_ms;
    dst->source = src->source;
    if (!dst->access_key || !dst->secret_key || (src->token && !dst->token)) {
        Kl_s3_creds_clear(dst);
        return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
    }
    return KL_OK;
}

/* Builds creds from borrowed strings (empty token = none). */
static kl_status creds_set(kl_s3_creds *c, const char *ak, const char *sk,
                           const char *tok, int64_t expires_ms,
                           const char *source, kl_error *err)
{
    kl_s3_creds tmp = {(char *)ak, (char *)sk,
                       (char *)(tok && *tok ? tok : NULL), expires_ms, source};
    return creds_copy(&tmp, c, err);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static char *home_path(const char *rel)
{
    const char *home = env("HOME");
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (!home && getpwuid_r(getuid(), &pw, buf, sizeof buf, &res) == 0 && res)
        home = res->pw_dir;
    char *out = NULL;
    if (asprintf(&out, "%s/%s", home ? home : "", rel) < 0)
        return NULL;
    return out;
}

/* A path from the environment with "~/" expanded, else the default. */
static char *aws_file(const char *var, const char *deflt)
{
    const char *v = env(var);
    if (!v)
        return home_path(deflt);
    if (v[0] == '~' && v[1] == '/')
        return home_path(v + 2);
    return strdup(v);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* ------------------------------------------------------------------ */
/* shared credentials and config files                                 */
/* ------------------------------------------------------------------ */

/* Credentials of `profile` from the credentials file, else the config file
 * (each must hold both keys itself, as in botocore).  *found is set when
 * one of the files has the profile at all. */
static kl_status from_profile(const char *profile, kl_s3_creds *out, int *found,
                              kl_error *err)
{
    *found = 0;
    char *cred_path = aws_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    char *conf_path = aws_file("AWS_CONFIG_FILE", ".aws/config");
    kl_status st = KL_OK;
    if (!cred_path || !conf_path) {
        st = kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
        goto done;
    }
    const char *paths[2] = {cred_path, conf_path};
    char unsupported[40] = "";
    for (int i = 0; i < 2; i++) {
        kl_s3_profile_keys k = {0};
        int r = Kl_s3_profile_read(paths[i], profile, i == 1, &k);
        if (r < 0) {
            Kl_s3_profile_keys_free(&k);
            st = kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
            goto done;
        }
        if (r == 0)
            continue;
        *found = 1;
        if (k.key_id && k.secret) {
            st = creds_set(out, k.key_id, k.secret, k.token, 0,
                           i == 0 ? "shared credentials file" : "shared config file", err);
            Kl_s3_profile_keys_free(&k);
            goto done;
        }
        if (k.key_id || k.secret) {
            st = kl_seterr(err, KL_EINVAL,
                           "S3 credentials: profile '%s' in %s has %s but not %s", profile,
                           paths[i], k.key_id ? "aws_access_key_id" : "aws_secret_access_key",
                           k.key_id ? "aws_secret_access_key" : "aws_access_key_id");
            Kl_s3_profile_keys_free(&k);
            goto done;
        }
        if (k.unsupported[0] && !unsupported[0])
            memcpy(unsupported, k.unsupported, sizeof unsupported);
        Kl_s3_profile_keys_free(&k);
    }
    if (*found && unsupported[0])
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: profile '%s' uses %s, which klstore does not support; "
                       "give it aws_access_key_id/aws_secret_access_key, or export "
                       "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN "
                       "(e.g. from `aws configure export-credentials`)",
                       profile, unsupported);
    else if (*found)
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: profile '%s' (in %s or %s) has no aws_access_key_id",
                       profile, cred_path, conf_path);
    else
        st = kl_seterr(err, KL_EINVAL, "S3 credentials: profile '%s' is not in %s nor in %s",
                       profile, cred_path, conf_path);
done:
    free(cred_path);
    free(conf_path);
    return st;
}

/* ------------------------------------------------------------------ */
/* JSON (flat objects of the metadata endpoints)                       */
/* ------------------------------------------------------------------ */

static const char *json_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static void put_utf8(char **o, unsigned cp)
{
    char *q = *o;
    if (cp < 0x80) {
        *q++ = (char)cp;
    } else if (cp < 0x800) {
        *q++ = (char)(0xC0 | (cp >> 6));
        *q++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *q++ = (char)(0xE0 | (cp >> 12));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *q++ = (char)(0xF0 | (cp >> 18));
        *q++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (char)(0x80 | (cp & 0x3F));
    }
    *o = q;
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        *v = *v * 16 + (unsigned)d;
    }
    return 0;
}

/* Parses the JSON string at *pp (at its opening quote).  With out != NULL
 * stores the decoded malloc'd value.  Advances *pp past it; -1 if bad. */
static int json_str(const char **pp, char **out)
{
    const char *p = *pp;
    if (*p != '"')
        return -1;
    p++;
    /* Decoded text is never longer than the escaped text. */
    char *buf = out ? malloc(strlen(p) + 1) : NULL, *o = buf;
    if (out && !buf)
        return -1;
    while (*p && *p != '"') {
        if ((unsigned char)*p < 0x20)
            goto bad;
        if (*p != '\\') {
            if (o)
                *o++ = *p;
            p++;
            continue;
        }
        p++;
        char c = *p++;
        unsigned cp;
        switch (c) {
        case '"': case '\\': case '/': cp = (unsigned char)c; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (hex4(p, &cp))
                goto bad;
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo;
                if (hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            /* \u escapes take 6+ bytes and decode to at most 4. */
            if (o)
                put_utf8(&o, cp);
            continue;
        default:
            goto bad;
        }
        if (o)
            *o++ = (char)cp;
    }
    if (*p != '"')
        goto bad;
    *pp = p + 1;
    if (out) {
        *o = '\0';
        *out = buf;
    }
    return 0;
bad:
    free(buf);
    return -1;
}

/* Skips any JSON value (nested ones by depth, minding strings). */
static int json_skip(const char **pp)
{
    const char *p = json_ws(*pp);
    if (*p == '"') {
        if (json_str(&p, NULL))
            return -1;
        *pp = p;
        return 0;
    }
    int depth = 0;
    for (;;) {
        if (!*p)
            return -1;
        if (*p == '"') {
            if (json_str(&p, NULL))
                return -1;
            continue;
        }
        if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']') {
            if (depth == 0)
                break;
            if (--depth == 0) {
                p++;
                break;
            }
        } else if (*p == ',' && depth == 0)
            break;
        p++;
    }
    *pp = p;
    return 0;
}

char *Kl_s3_json_string(const char *json, const char *key)
{
    if (!json)
        return NULL;
    const char *p = json_ws(json);
    if (*p++ != '{')
        return NULL;
    for (;;) {
        p = json_ws(p);
        if (*p == '}')
            return NULL;
        char *name = NULL;
        if (json_str(&p, &name))
            return NULL;
        p = json_ws(p);
        if (*p++ != ':') {
            free(name);
            return NULL;
        }
        p = json_ws(p);
        if (strcmp(name, key) == 0 && *p == '"') {
            free(name);
            char *v = NULL;
            return json_str(&p, &v) ? NULL : v;
        }
        free(name);
        if (json_skip(&p))
            return NULL;
        p = json_ws(p);
        if (*p == ',')
            p++;
        else
            return NULL;   /* '}' before finding key, or junk */
    }
}

/* ------------------------------------------------------------------ */
/* HTTP for the metadata endpoints                                     */
/* ------------------------------------------------------------------ */

typedef struct meta_body {
    char *data;
    size_t len;
    int too_big;
} meta_body;

static size_t meta_write(char *p, size_t sz, size_t nm, void *ud)
{
    meta_body *b = ud;
    size_t n = sz * nm;
    if (b->len + n > MAX_META_BODY) {
        b->too_big = 1;
        return 0;
    }
    char *d = realloc(b->data, b->len + n + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, p, n);
    b->data = d;
    b->len += n;
    d[b->len] = '\0';
    return n;
}

static long meta_timeout_ms(void)
{
    const char *t = env("AWS_METADATA_SERVICE_TIMEOUT");
    char *end;
    double s = t ? strtod(t, &end) : 1.0;
    if (!t || *end || s <= 0 || s > 3600)
        s = 1.0;
    return (long)(s * 1000);
}

/* One request to a metadata endpoint.  *status is 0 when the server could
 * not be reached (then `why` says so); body is NUL-terminated or NULL. */
static int meta_call(const char *method, const char *url, struct curl_slist *hdrs,
                     long *status, char **body, char *why, size_t whycap)
{
    *status = 0;
    *body = NULL;
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(why, whycap, "out of memory");
        return -1;
    }
    meta_body b = {0};
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
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");   /* link-local: never via a proxy */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, meta_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        snprintf(why, whycap, "%s", b.too_big ? "answer too large" : curl_easy_strerror(rc));
        free(b.data);
        curl_easy_cleanup(h);
        return -1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    *body = b.data ? b.data : strdup("");
    return 0;
}

/* Turns a container/IMDS JSON answer into credentials. */
static kl_status creds_from_json(const char *json, const char *source, const char *where,
                                 kl_s3_creds *out, kl_error *err)
{
    char *code = Kl_s3_json_string(json, "Code");
    char *ak = Kl_s3_json_string(json, "AccessKeyId");
    char *sk = Kl_s3_json_string(json, "SecretAccessKey");
    char *tok = Kl_s3_json_string(json, "Token");
    char *exp = Kl_s3_json_string(json, "Expiration");
    kl_status st;
    if (code && strcmp(code, "Success") != 0) {
        st = kl_seterr(err, KL_EIO, "S3 credentials: %s answered Code '%.60s'", where, code);
    } else if (!ak || !sk || !*ak || !*sk) {
        st = kl_seterr(err, KL_EIO,
                       "S3 credentials: %s answered without AccessKeyId/SecretAccessKey", where);
    } else {
        int64_t ms = 0;
        if (!exp || kl_parse_time(exp, &ms, NULL) != KL_OK)
            ms = kl_now_ms() + DEFAULT_LIFETIME_MS;
        st = creds_set(out, ak, sk, tok, ms, source, err);
    }
    free(code);
    wipe_free(ak);
    wipe_free(sk);
    wipe_free(tok);
    free(exp);
    return st;
}

/* Is this an address the container provider may use over plain http? */
static int container_host_ok(const char *url)
{
    if (strncmp(url, "https://", 8) == 0)
        return 1;
    if (strncmp(url, "http://", 7) != 0)
        return 0;
    const char *h = url + 7;
    static const char *const ok[] = {"localhost", "127.", "[::1]", "169.254.170.2",
                                     "169.254.170.23", "[fd00:ec2::23]"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        size_t n = strlen(ok[i]);
        if (strncmp(h, ok[i], n) == 0 &&
            (ok[i][n - 1] == '.' || h[n] == '\0' || h[n] == ':' || h[n] == '/'))
            return 1;
    }
    return 0;
}

static kl_status from_container(kl_s3_creds *out, kl_error *err)
{
    const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    char *url = NULL, *token = NULL, *body = NULL, *auth = NULL;
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
    if (!url)
        return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");

    const char *tfile = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (tfile) {
        FILE *f = fopen(tfile, "r");
        size_t cap = 0;
        if (!f || getline(&token, &cap, f) < 0) {
            if (f)
                fclose(f);
            free(url);
            free(token);
            return kl_seterr(err, KL_EINVAL,
                             "S3 credentials: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s",
                             tfile);
        }
        fclose(f);
    } else if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
        token = strdup(env("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
    }
    if (token) {
        char *t = trim(token);
        if (strpbrk(t, "\r\n")) {
            st = kl_seterr(err, KL_EINVAL,
                           "S3 credentials: the container authorization token contains a line break");
            goto done;
        }
        if (asprintf(&auth, "Authorization: %s", t) < 0 || !(hdrs = curl_slist_append(NULL, auth))) {
            st = kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
            goto done;
        }
    }
    long status;
    char why[160];
    if (meta_call("GET", url, hdrs, &status, &body, why, sizeof why)) {
        st = kl_seterr(err, KL_EIO, "S3 credentials: container endpoint %s: %s", url, why);
        goto done;
    }
    if (status != 200) {
        st = kl_seterr(err, status >= 500 || status == 429 ? KL_EIO : KL_EINVAL,
                       "S3 credentials: container endpoint %s answered HTTP %ld", url, status);
        goto done;
    }
    st = creds_from_json(body, "container", "container endpoint", out, err);
done:
    curl_slist_free_all(hdrs);
    wipe_free(auth);
    wipe_free(token);
    wipe_free(body);
    free(url);
    return st;
}

/* EC2 instance metadata.  *reachable tells the chain whether to blame IMDS
 * (it answered, wrongly) or just report it absent (not on EC2). */
static kl_status from_imds(kl_s3_creds *out, int *reachable, char *why, size_t whycap,
                           kl_error *err)
{
    *reachable = 0;
    const char *ep = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    const char *mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    char base[512];
    snprintf(base, sizeof base, "%s",
             ep ? ep : (mode && strcasecmp(mode, "IPv6") == 0) ? "http://[fd00:ec2::254]"
                                                               : "http://169.254.169.254");
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        base[--bl] = '\0';

    char url[1024], hdr[700];
    char *token = NULL, *body = NULL, *role = NULL;
    struct curl_slist *hdrs = NULL;
    long status;
    kl_status st = KL_OK;

    snprintf(url, sizeof url, "%s/latest/api/token", base);
    hdrs = curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
    int rc = meta_call("PUT", url, hdrs, &status, &token, why, whycap);
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
        st = kl_seterr(err, KL_EIO, "S3 credentials: instance metadata %s answered HTTP %ld",
                       url, status);
        goto done;
    }

    snprintf(url, sizeof url, "%s/latest/meta-data/iam/security-credentials/", base);
    if (meta_call("GET", url, hdrs, &status, &body, why, whycap)) {
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
        st = kl_seterr(err, KL_EIO, "S3 credentials: instance metadata %s answered HTTP %ld",
                       url, status);
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
    if (meta_call("GET", url, hdrs, &status, &body, why, whycap)) {
        st = kl_seterr(err, KL_EIO, "S3 credentials: instance metadata %s: %s", url, why);
        goto done;
    }
    if (status != 200) {
        st = kl_seterr(err, KL_EIO, "S3 credentials: instance metadata %s answered HTTP %ld",
                       url, status);
        goto done;
    }
    st = creds_from_json(body, "instance metadata", "instance metadata", out, err);
done:
    curl_slist_free_all(hdrs);
    wipe_free(token);
    wipe_free(body);
    free(role);
    return st;
}

/* ------------------------------------------------------------------ */
/* the chain                                                           */
/* ------------------------------------------------------------------ */

static int is_true(const char *v)
{
    return v && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static kl_status resolve(kl_s3_credprov *p, kl_s3_creds *out, kl_error *err)
{
    if (!p->use_default) {
        if (p->access_key && p->secret_key)
            return creds_set(out, p->access_key, p->secret_key, p->token, 0, "configuration", err);
        if (p->access_key || p->secret_key)
            return kl_seterr(err, KL_EINVAL,
                             "S3 credentials: use_default_credentials=false needs both access_key "
                             "and secret_key, but only %s is set",
                             p->access_key ? "access_key" : "secret_key");
        if (p->profile) {
            int found;
            return from_profile(p->profile, out, &found, err);
        }
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: use_default_credentials=false but neither "
                         "access_key/secret_key nor profile is configured");
    }

    if (!p->profile) {
        const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY");
        if (ak && sk) {
            const char *tok = env("AWS_SESSION_TOKEN");
            return creds_set(out, ak, sk, tok ? tok : env("AWS_SECURITY_TOKEN"), 0,
                             "environment", err);
        }
        if (ak || sk)
            return kl_seterr(err, KL_EINVAL, "S3 credentials: %s is set but %s is not",
                             ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                             ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    }

    const char *profile = p->profile ? p->profile : env("AWS_PROFILE");
    int explicit_profile = profile != NULL;
    if (!profile)
        profile = "default";
    int found;
    kl_error perr = {0};
    kl_status st = from_profile(profile, out, &found, &perr);
    if (st == KL_OK)
        return KL_OK;
    if (found || explicit_profile || st == KL_ENOMEM) {
        if (err)
            *err = perr;
        return st;
    }

    if (env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || env("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
        return from_container(out, err);

    char why[160] = "disabled by AWS_EC2_METADATA_DISABLED";
    if (!is_true(env("AWS_EC2_METADATA_DISABLED"))) {
        int reachable;
        st = from_imds(out, &reachable, why, sizeof why, err);
        if (st == KL_OK || reachable)
            return st;
    }
    return kl_seterr(err, KL_EINVAL,
                     "S3 credentials: none found (no AWS_ACCESS_KEY_ID in the environment, no "
                     "profile '%s' in the shared AWS files, no container credentials, instance "
                     "metadata: %s); configure access_key/secret_key with "
                     "use_default_credentials=false, or any AWS CLI credential source",
                     profile, why);
}

kl_status Kl_s3_credprov_new(const kl_s3_config *c, kl_s3_credprov **out, kl_error *err)
{
    *out = NULL;
    const char *tok = c->session_token && *c->session_token ? c->session_token : NULL;
    const char *sec = c->security_token && *c->security_token ? c->security_token : NULL;
    if (tok && sec && strcmp(tok, sec) != 0)
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: session_token and security_token are both set and "
                         "differ; they are the same setting, set one");
    kl_s3_credprov *p = calloc(1, sizeof *p);
    if (!p)
        return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
    pthread_mutex_init(&p->mu, NULL);
    p->use_default = c->use_default_credentials;
#define DUP(dst, src)                                                    \
    do {                                                                 \
        if ((src) && *(src) && !((dst) = strdup(src))) {                 \
            Kl_s3_credprov_free(p);                                      \
            return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory"); \
        }                                                                \
    } while (0)
    DUP(p->access_key, c->access_key);
    DUP(p->secret_key, c->secret_key);
    DUP(p->token, tok ? tok : sec);
    DUP(p->profile, c->profile);
#undef DUP
    *out = p;
    return KL_OK;
}

kl_status Kl_s3_credprov_get(kl_s3_credprov *p, kl_s3_creds *out, kl_error *err)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&p->mu);
    int64_t now = kl_now_ms();
    kl_status st;
    int usable = p->have && (p->cached.expires_ms == 0 || now < p->cached.expires_ms);
    int want_refresh = !usable || (p->cached.expires_ms != 0 &&
                                   now >= p->cached.expires_ms - REFRESH_AHEAD_MS &&
                                   now - p->fetched_ms >= REFRESH_MIN_GAP_MS);
    if (want_refresh) {
        kl_s3_creds fresh = {0};
        kl_error rerr = {0};
        st = resolve(p, &fresh, &rerr);
        if (st == KL_OK) {
            Kl_s3_creds_clear(&p->cached);
            p->cached = fresh;
            p->have = 1;
            p->fetched_ms = now;
        } else if (!usable) {
            if (err)
                *err = rerr;
            pthread_mutex_unlock(&p->mu);
            return st;
        }
        /* else: keep the old ones until they really expire. */
    }
    st = creds_copy(&p->cached, out, err);
    pthread_mutex_unlock(&p->mu);
    return st;
}

void Kl_s3_credprov_invalidate(kl_s3_credprov *p)
{
    pthread_mutex_lock(&p->mu);
    /* Static credentials cannot get better by reloading; the rest can. */
    if (p->have && p->cached.expires_ms != 0) {
        Kl_s3_creds_clear(&p->cached);
        p->have = 0;
    }
    pthread_mutex_unlock(&p->mu);
}

void Kl_s3_credprov_free(kl_s3_credprov *p)
{
    if (!p)
        return;
    Kl_s3_creds_clear(&p->cached);
    wipe_free(p->access_key);
    wipe_free(p->secret_key);
    wipe_free(p->token);
    free(p->profile);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
