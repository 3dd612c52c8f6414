/* sigv4.c -- AWS Signature Version 4 (header form, single-chunk payload).
 *
 * Follows "Signature Calculations for the Authorization Header" of the S3
 * API reference: canonical request -> string to sign -> HMAC-SHA256 chain.
 * S3 differs from other AWS services in that the path is encoded exactly
 * once (no double encoding) and is not normalised, so object names with
 * "//" or spaces sign as they are sent.  Hashing and HMAC come from
 * libcrypto; strings are assembled with open_memstream.
 */
#define _GNU_SOURCE
#include "s3/sigv4.h"

#include "buf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void Kl_sha256_hex(const void *data, size_t len, char out[65])
{
    Kl_sha256_hex_body(KL_BODY_ONE(data, len), out);
}

void Kl_sha256_hex_body(const kl_body *b, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    for (size_t i = 0; ok && i < b->n; i++)
        ok = EVP_DigestUpdate(c, b->v[i].iov_base, b->v[i].iov_len);
    ok = ok && EVP_DigestFinal_ex(c, md, &mdlen) && mdlen == 32;
    EVP_MD_CTX_free(c);
    if (!ok) {
        /* Out of memory, or no SHA-256 in the provider: an all-zero hash
         * makes the server reject the request instead of us crashing. */
        memset(out, '0', 64);
        out[64] = '\0';
        return;
    }
    hex(md, 32, out);
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

char *Kl_sigv4_uri_encode(const char *s, size_t len, int keep_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    char *out = malloc(3 * len + 1), *p = out;
    if (!out) return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = digits[c >> 4];
            *p++ = digits[c & 15];
        }
    }
    *p = '\0';
    return out;
}

void Kl_sigv4_amz_date(int64_t unix_seconds, char out[17])
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* A header ready for the canonical form: lowercased name, trimmed value
 * with inner runs of spaces collapsed (SigV4's "Trimall"). */
typedef struct canon_hdr {
    char *name;
    char *value;
} canon_hdr;

static int cmp_hdr(const void *a, const void *b)
{
    return strcmp(((const canon_hdr *)a)->name, ((const canon_hdr *)b)->name);
}

typedef struct canon_q {
    char *name;
    char *value;
} canon_q;

static int cmp_q(const void *a, const void *b)
{
    const canon_q *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static char *trimall(const char *v)
{
    size_t n = strlen(v);
    char *out = malloc(n + 1), *p = out;
    if (!out) return NULL;
    while (*v == ' ' || *v == '\t') v++;
    int space = 0;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = 1;
            continue;
        }
        if (space && p != out) *p++ = ' ';
        space = 0;
        *p++ = *v;
    }
    *p = '\0';
    return out;
}

static char *lower_dup(const char *s)
{
    char *d = strdup(s);
    if (d)
        for (char *p = d; *p; p++) *p = (char)tolower((unsigned char)*p);
    return d;
}

static int hmac(const void *key, size_t keylen, const char *msg, unsigned char out[32])
{
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &len) ||
        len != 32)
        return -1;
    return 0;
}

void Kl_sigv4_result_free(kl_sigv4_result *res)
{
    if (!res) return;
    free(res->canonical_request);
    free(res->string_to_sign);
    free(res->signed_headers);
    free(res->authorization);
    memset(res, 0, sizeof *res);
}

int Kl_sigv4_sign(const kl_sigv4_req *r, const char *access_key, const char *secret_key,
                  kl_sigv4_result *out)
{
    memset(out, 0, sizeof *out);
    if (!r->method || !r->path || !r->payload_hash || !r->amz_date || strlen(r->amz_date) != 16 ||
        !r->region || !r->service || !access_key || !secret_key)
        return -1;

    int rc = -1;
    canon_hdr *h = calloc(r->n_headers ? r->n_headers : 1, sizeof *h);
    canon_q *q = calloc(r->n_query ? r->n_query : 1, sizeof *q);
    char *uri = NULL, *buf = NULL, *scope = NULL, *sts = NULL;
    size_t buflen = 0;
    FILE *f = NULL;
    if (!h || !q) goto done;

    for (size_t i = 0; i < r->n_headers; i++) {
        h[i].name = lower_dup(r->headers[i].name);
        h[i].value = trimall(r->headers[i].value ? r->headers[i].value : "");
        if (!h[i].name || !h[i].value) goto done;
    }
    qsort(h, r->n_headers, sizeof *h, cmp_hdr);
    for (size_t i = 0; i < r->n_query; i++) {
        const char *n = r->query[i].name, *v = r->query[i].value ? r->query[i].value : "";
        q[i].name = Kl_sigv4_uri_encode(n, strlen(n), 0);
        q[i].value = Kl_sigv4_uri_encode(v, strlen(v), 0);
        if (!q[i].name || !q[i].value) goto done;
    }
    qsort(q, r->n_query, sizeof *q, cmp_q);
    if (!(uri = Kl_sigv4_uri_encode(r->path, strlen(r->path), 1))) goto done;

    /* Signed headers list. */
    if (!(f = open_memstream(&buf, &buflen))) goto done;
    for (size_t i = 0; i < r->n_headers; i++) {
        if (i && strcmp(h[i].name, h[i - 1].name) == 0) continue;
        fprintf(f, "%s%s", i ? ";" : "", h[i].name);
    }
    if (fclose(f)) goto done;
    f = NULL;
    out->signed_headers = buf;
    buf = NULL;

    /* Canonical request. */
    if (!(f = open_memstream(&buf, &buflen))) goto done;
    fprintf(f, "%s\n%s\n", r->method, uri);
    for (size_t i = 0; i < r->n_query; i++)
        fprintf(f, "%s%s=%s", i ? "&" : "", q[i].name, q[i].value);
    fputc('\n', f);
    for (size_t i = 0; i < r->n_headers; i++) {
        /* Repeated headers are signed as one, values joined by commas. */
        if (i && strcmp(h[i].name, h[i - 1].name) == 0)
            fprintf(f, ",%s", h[i].value);
        else
            fprintf(f, "%s%s:%s", i ? "\n" : "", h[i].name, h[i].value);
    }
    fprintf(f, "\n\n%s\n%s", out->signed_headers, r->payload_hash);
    if (fclose(f)) goto done;
    f = NULL;
    out->canonical_request = buf;
    buf = NULL;

    /* String to sign. */
    char date8[9], crhash[65];
    memcpy(date8, r->amz_date, 8);
    date8[8] = '\0';
    if (asprintf(&scope, "%s/%s/%s/aws4_request", date8, r->region, r->service) < 0) {
        scope = NULL;
        goto done;
    }
    Kl_sha256_hex(out->canonical_request, strlen(out->canonical_request), crhash);
    if (asprintf(&sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", r->amz_date, scope, crhash) < 0) {
        sts = NULL;
        goto done;
    }
    out->string_to_sign = sts;
    sts = NULL;

    /* Signing key: HMAC chain over date, region, service, "aws4_request". */
    unsigned char k[32], k2[32];
    char *k0 = NULL;
    if (asprintf(&k0, "AWS4%s", secret_key) < 0) goto done;
    int bad = hmac(k0, strlen(k0), date8, k) || hmac(k, 32, r->region, k2) ||
              hmac(k2, 32, r->service, k) || hmac(k, 32, "aws4_request", k2) ||
              hmac(k2, 32, out->string_to_sign, k);
    OPENSSL_cleanse(k0, strlen(k0));
    free(k0);
    OPENSSL_cleanse(k2, sizeof k2);
    if (bad) goto done;
    hex(k, 32, out->signature);
    OPENSSL_cleanse(k, sizeof k);

    if (asprintf(&out->authorization,
                 "AWS4-HMAC-SHA256 Credential=%s/%s,SignedHeaders=%s,Signature=%s", access_key,
                 scope, out->signed_headers, out->signature) < 0) {
        out->authorization = NULL;
        goto done;
    }
    rc = 0;

done:
    if (f) fclose(f);
    free(buf);
    free(uri);
    free(scope);
    free(sts);
    if (h)
        for (size_t i = 0; i < r->n_headers; i++) {
            free(h[i].name);
            free(h[i].value);
        }
    if (q)
        for (size_t i = 0; i < r->n_query; i++) {
            free(q[i].name);
            free(q[i].value);
        }
    free(h);
    free(q);
    if (rc) Kl_sigv4_result_free(out);
    return rc;
}
