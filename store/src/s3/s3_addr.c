/* s3_addr.c -- S3 endpoint addressing (see s3_addr.h).
 *
 * Virtual-hosted style (https://BUCKET.host/key) unless path_style is set,
 * the endpoint is an IP address, or the bucket name cannot be a DNS label
 * (or, over https, contains a dot, which no wildcard certificate covers);
 * then https://host/BUCKET/key, as the AWS SDKs do.  Object names are sent
 * percent-encoded exactly as they are signed (RFC 3986, '/' kept), so that
 * what the server decodes is what the signature covers.
 */
#define _GNU_SOURCE
#include "s3/s3_addr.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

/* Can the bucket be the first label of a host name (virtual-hosted)? */
static int dns_compatible(const char *b, int https)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63 || !isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
        return 0;
    for (const char *p = b; *p; p++) {
        if (*p == '.' && (https || p[1] == '.')) return 0;
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' || *p == '.'))
            return 0;
    }
    return 1;
}

/* Parses the endpoint into scheme, host[:port] and a raw base path. */
static kl_status parse_endpoint(kl_s3_addr *a, const kl_s3_config *c, const char *region,
                                char **host, char **base, kl_error *err)
{
    if (!c->endpoint || !*c->endpoint) {
        a->scheme = strdup("https");
        if (asprintf(host, "s3.%s.amazonaws.com", region) < 0) *host = NULL;
        *base = strdup("");
        return a->scheme && *host && *base ? KL_OK : kl_seterr(err, KL_ENOMEM, "S3: out of memory");
    }
    if (strncmp(c->endpoint, "http://", 7) != 0 && strncmp(c->endpoint, "https://", 8) != 0)
        return kl_seterr(err, KL_EINVAL, "S3 endpoint '%.200s' must start with http:// or https://",
                         c->endpoint);
    CURLU *u = curl_url();
    char *sch = NULL, *hst = NULL, *port = NULL, *path = NULL, *q = NULL;
    kl_status st = KL_OK;
    if (!u) return kl_seterr(err, KL_ENOMEM, "S3: out of memory");
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
    a->scheme = strdup(sch);
    if (port)
        st = asprintf(host, "%s:%s", hst, port) < 0 ? KL_ENOMEM : KL_OK;
    else
        *host = strdup(hst);
    /* Raw base path without its trailing '/': "" or "/s3". */
    size_t pl = path ? strlen(path) : 0;
    while (pl && path[pl - 1] == '/') pl--;
    *base = strndup(path ? path : "", pl);
    if (st || !a->scheme || !*host || !*base) st = kl_seterr(err, KL_ENOMEM, "S3: out of memory");
done:
    curl_free(sch);
    curl_free(hst);
    curl_free(port);
    curl_free(path);
    curl_free(q);
    curl_url_cleanup(u);
    return st;
}

kl_status Kl_s3_addr_init(kl_s3_addr *a, const kl_s3_config *c, const char *bucket,
                          const char *region, kl_error *err)
{
    memset(a, 0, sizeof *a);
    char *host = NULL, *base = NULL;
    kl_status st = parse_endpoint(a, c, region, &host, &base, err);
    if (st) goto fail;
    a->https = strcmp(a->scheme, "https") == 0;
    /* An IP address cannot take a bucket label in front of it. */
    size_t hl = strcspn(host, ":");
    int ip_host = host[0] == '[' || strspn(host, "0123456789.") == hl;
    int path_style = c->path_style || ip_host || !dns_compatible(bucket, a->https);
    int rc1 = asprintf(&a->endpoint_desc, "%s://%s%s", a->scheme, host, base);
    int rc2 = path_style ? asprintf(&a->path_base, "%s/%s/", base, bucket)
                         : asprintf(&a->path_base, "%s/", base);
    if (!path_style) {
        char *vh = NULL;
        if (asprintf(&vh, "%s.%s", bucket, host) < 0) vh = NULL;
        free(host);
        host = vh;
    }
    a->host = host;
    host = NULL;
    if (rc1 < 0 || rc2 < 0 || !a->host) {
        if (rc1 < 0) a->endpoint_desc = NULL;
        if (rc2 < 0) a->path_base = NULL;
        st = kl_seterr(err, KL_ENOMEM, "S3: out of memory");
        goto fail;
    }
    free(base);
    return KL_OK;
fail:
    free(host);
    free(base);
    Kl_s3_addr_free(a);
    return st;
}

void Kl_s3_addr_free(kl_s3_addr *a)
{
    free(a->scheme);
    free(a->host);
    free(a->path_base);
    free(a->endpoint_desc);
    memset(a, 0, sizeof *a);
}

/* Appends the percent-encoding of s (raw) to f. */
static int put_encoded(FILE *f, const char *s, int keep_slash)
{
    char *e = Kl_sigv4_uri_encode(s, strlen(s), keep_slash);
    if (!e) return -1;
    fputs(e, f);
    free(e);
    return 0;
}

int Kl_s3_addr_request(const kl_s3_addr *a, const char *key, const kl_sigv4_kv *query,
                       size_t n_query, char **path, char **url)
{
    *url = NULL;
    size_t ulen = 0;
    if (asprintf(path, "%s%s", a->path_base, key ? key : "") < 0) {
        *path = NULL;
        return -1;
    }
    FILE *f = open_memstream(url, &ulen);
    if (!f) goto fail;
    fprintf(f, "%s://%s", a->scheme, a->host);
    int bad = put_encoded(f, *path, 1);
    for (size_t i = 0; i < n_query && !bad; i++) {
        fputc(i ? '&' : '?', f);
        bad |= put_encoded(f, query[i].name, 0);
        if (query[i].value) {
            fputc('=', f);
            bad |= put_encoded(f, query[i].value, 0);
        }
    }
    if (fclose(f) || bad) goto fail;
    return 0;
fail:
    free(*path);
    free(*url);
    *path = *url = NULL;
    return -1;
}

char *Kl_s3_addr_copy_source(const char *bucket, const char *key)
{
    char *enc = Kl_sigv4_uri_encode(key, strlen(key), 1);
    char *src = NULL;
    if (enc && asprintf(&src, "/%s/%s", bucket, enc) < 0) src = NULL;
    free(enc);
    return src;
}
