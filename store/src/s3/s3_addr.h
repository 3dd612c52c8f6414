/* s3_addr.h -- where an S3 request goes: the endpoint, the bucket's place
 * in the URL (virtual-hosted or path style) and the encoding of object
 * names in URLs.
 *
 * Kept apart from the transport because it is pure string work decided
 * once per store, and the rules (which buckets can be a host label, what
 * an endpoint may look like) are what users ask about when a bucket is
 * not found. */
#ifndef KL_S3_ADDR_H
#define KL_S3_ADDR_H

#include <stddef.h>

#include "klstore.h"
#include "s3/sigv4.h"

/* Everything malloc'd, set by Kl_s3_addr_init; read-only afterwards, so
 * any number of threads may use one. */
typedef struct kl_s3_addr {
    char *scheme;        /* "http" or "https" */
    char *host;          /* Host header: [bucket.]host[:port] */
    char *path_base;     /* raw path before the key: "/" or "/bucket/" (plus any endpoint path) */
    char *endpoint_desc; /* for messages: "http://127.0.0.1:7480" */
    int https;
} kl_s3_addr;

/* Works out the addressing of `bucket` from c's endpoint (AWS's regional
 * endpoint when none is set) and path_style.  KL_EINVAL naming the problem
 * for an endpoint that is not an http(s) URL or has a query; KL_ENOMEM.
 * Needs libcurl initialised (curl_global_init).  On failure *a holds
 * nothing to free. */
kl_status Kl_s3_addr_init(kl_s3_addr *a, const kl_s3_config *c, const char *bucket,
                          const char *region, kl_error *err);
void Kl_s3_addr_free(kl_s3_addr *a);

/* The raw path of `key` (NULL: the bucket), which is what gets signed, and
 * the URL that carries its percent-encoding and that of the raw query
 * (values NULL: valueless, "?delete").  Both malloc'd.  -1 when out of
 * memory (then both are NULL). */
int Kl_s3_addr_request(const kl_s3_addr *a, const char *key, const kl_sigv4_kv *query,
                       size_t n_query, char **path, char **url);

/* x-amz-copy-source for `key` of `bucket`: "/bucket/key", the key
 * percent-encoded.  malloc'd, or NULL when out of memory. */
char *Kl_s3_addr_copy_source(const char *bucket, const char *key);

#endif /* KL_S3_ADDR_H */
