/* open.c -- from a store URL (or nothing) to an object store.
 *
 *   NULL / ""            [local] root if configured, else the configured S3
 *                        bucket, else the default directory
 *   s3://BUCKET[/PREFIX] S3; other settings (endpoint, region, credentials)
 *                        from the configuration
 *   file://PATH, PATH    a local directory
 *
 * The PREFIX of an s3:// URL becomes object_prefix verbatim, because
 * FORMAT.md uses object_prefix verbatim: s3://b/logs/ stores keyspace k at
 * "logs/k/...", while s3://b/logs stores it at "logsk/..." (the same bucket
 * layout the Rust implementation produces with object_prefix "logs").
 * Giving the trailing '/' is almost always what is meant.
 *
 * The endpoint comes from the configuration; when none is configured, the
 * AWS CLI's AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL are honoured, so a
 * shell set up for `aws s3` works unchanged.  KL_S3_ENDPOINT is not read
 * here: it is the test suite's variable and must not redirect production
 * runs.
 */
#define _GNU_SOURCE
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "klstore.h"

char *kl_default_store_dir(void)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    char *out = NULL;
    /* XDG says relative values are invalid and must be ignored. */
    if (xdg && xdg[0] == '/') return asprintf(&out, "%s/klstore", xdg) < 0 ? NULL : out;
    const char *home = getenv("HOME");
    struct passwd pw, *res = NULL;
    char buf[4096];
    if ((!home || !*home) && getpwuid_r(getuid(), &pw, buf, sizeof buf, &res) == 0 && res)
        home = res->pw_dir;
    if (!home || !*home) home = ".";
    return asprintf(&out, "%s/.local/share/klstore", home) < 0 ? NULL : out;
}

/* Replaces a string setting of c with a copy of v. */
static kl_status replace(char **slot, const char *v, kl_error *err)
{
    char *d = strdup(v);
    if (!d) return kl_seterr(err, KL_ENOMEM, "open: out of memory");
    free(*slot);
    *slot = d;
    return KL_OK;
}

static kl_status open_s3(kl_config *c, kl_objstore **out, kl_error *err)
{
    if (!c->s3.endpoint) {
        const char *e = getenv("AWS_ENDPOINT_URL_S3");
        if (!e || !*e) e = getenv("AWS_ENDPOINT_URL");
        if (e && *e) {
            kl_status st = replace(&c->s3.endpoint, e, err);
            if (st) return st;
        }
    }
    return kl_objstore_s3_new(&c->s3, out, err);
}

kl_status kl_objstore_open(const char *url, kl_config *c, kl_objstore **out, kl_error *err)
{
    *out = NULL;
    if (!c) return kl_seterr(err, KL_EINVAL, "open: no configuration given");
    if (!url || !*url) {
        if (c->local_root) return kl_objstore_local_new(c->local_root, out, err);
        if (c->has_s3) return open_s3(c, out, err);
        char *dir = kl_default_store_dir();
        if (!dir) return kl_seterr(err, KL_ENOMEM, "open: out of memory");
        kl_status st = kl_objstore_local_new(dir, out, err);
        free(dir);
        return st;
    }
    if (strncmp(url, "s3://", 5) == 0) {
        const char *b = url + 5, *slash = strchr(b, '/');
        size_t blen = slash ? (size_t)(slash - b) : strlen(b);
        if (blen == 0)
            return kl_seterr(err, KL_EINVAL, "open '%.200s': no bucket in the s3:// URL", url);
        char *bucket = strndup(b, blen);
        if (!bucket) return kl_seterr(err, KL_ENOMEM, "open: out of memory");
        kl_status st = replace(&c->s3.bucket_name, bucket, err);
        free(bucket);
        if (st == KL_OK) st = replace(&c->store.object_prefix, slash ? slash + 1 : "", err);
        if (st) return st;
        c->has_s3 = 1;
        return open_s3(c, out, err);
    }
    const char *path = url;
    if (strncmp(url, "file://", 7) == 0) {
        path = url + 7;
        if (strncmp(path, "localhost/", 10) == 0) path += 9;
        if (!*path)
            return kl_seterr(err, KL_EINVAL, "open '%.200s': no path in the file:// URL", url);
    } else {
        /* "gs://x", "http://x": a scheme we do not speak, not a path. */
        size_t scheme =
            strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
        if (scheme > 0 && strncmp(url + scheme, "://", 3) == 0)
            return kl_seterr(err, KL_EINVAL,
                             "open '%.200s': unsupported URL scheme (use s3://BUCKET/PREFIX, "
                             "file://PATH or a directory)",
                             url);
    }
    return kl_objstore_local_new(path, out, err);
}
