/* objstore_s3.c -- the S3 object store: kl_objstore_ops as S3 requests.
 *
 * Every operation is one S3 request (PutObject, GetObject, HeadObject,
 * ListObjectsV2, DeleteObject(s), CopyObject for slot claims), described
 * here and carried by the transport (s3_http.c: SigV4 with credentials
 * from the AWS chain, pooled connections, retries, error messages;
 * addressing in s3_addr.c).  What stays here is what each answer means
 * for the ops table: a 404 that is "no such object" rather than "no such
 * bucket", a 412 that is "already exists", a range cut to what was asked,
 * and whether this server's copies honour a copy condition.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "buf.h"
#include "klstore.h"
#include "s3/s3_addr.h"
#include "s3/s3_http.h"
#include "s3/s3_listpage.h"
#include "s3/s3_retry.h"
#include "s3/s3_xml.h"
#include "s3/sigv4.h"

/* S3 limits: a single PUT holds up to 5 GiB, a key up to 1024 bytes. */
#define S3_MAX_PUT ((uint64_t)5 << 30)
#define S3_MAX_KEY 1024
/* A whole-object GET without a length: S3's largest single PUT. */
#define S3_MAX_OBJECT (5ull << 30)

typedef struct s3_os {
    kl_objstore base;
    kl_s3_http http;
    char *desc; /* "s3://bucket" */
    pthread_mutex_t probe_mu;
    atomic_int copy_mode; /* 0 unknown, 1 copies honour a copy condition, 2 not */
} s3_os;

static s3_os *S(kl_objstore *os) { return (s3_os *)os; }

static kl_status check_key(const s3_os *s, const char *op, const char *name, kl_error *err)
{
    if (!name || !*name)
        return kl_seterr(err, KL_EINVAL, "S3 %s s3://%s: empty object name", op, s->http.bucket);
    if (strlen(name) > S3_MAX_KEY)
        return kl_seterr(err, KL_EINVAL,
                         "S3 %s s3://%s/%.100s...: object name longer than %d bytes", op,
                         s->http.bucket, name, S3_MAX_KEY);
    return KL_OK;
}

static kl_status not_found(const s3_os *s, const char *op, const char *name, const s3_resp *rs,
                           kl_error *err)
{
    kl_s3_xml_error x;
    if (Kl_s3_xml_parse_error((const char *)rs->body.data, rs->body.len, &x) &&
        strcmp(x.code, "NoSuchBucket") == 0)
        return kl_seterr(err, KL_EINVAL,
                         "S3 %s s3://%s/%.200s: bucket '%s' does not exist at %s "
                         "(NoSuchBucket, request id %s)",
                         op, s->http.bucket, name, s->http.bucket, s->http.addr.endpoint_desc,
                         x.request_id[0] ? x.request_id : rs->request_id);
    return kl_seterr(err, KL_ENOTFOUND, "S3 %s s3://%s/%.200s: no such object", op, s->http.bucket,
                     name);
}

/* ------------------------------------------------------------------ */
/* operations                                                          */
/* ------------------------------------------------------------------ */

static kl_status s3_get(kl_objstore *os, const char *name, uint64_t off, uint64_t len,
                        uint8_t **data, size_t *out_len, kl_error *err);
static kl_status s3_del(kl_objstore *os, const char *const *names, size_t n, kl_error *err);

/* PUT, optionally create-only (If-None-Match: *) and carrying a claim's
 * object name as user metadata. */
static kl_status put_object(kl_objstore *os, const char *name, const kl_body *body, int flags,
                            const char *claim_object, char **etag, kl_error *err)
{
    s3_os *s = S(os);
    kl_status st = check_key(s, "PUT", name, err);
    if (st) return st;
    if ((uint64_t)body->len > S3_MAX_PUT)
        return kl_seterr(err, KL_EINVAL, "S3 PUT s3://%s/%.200s: %zu bytes exceed S3's 5 GiB limit",
                         s->http.bucket, name, body->len);
    s3_req rq = {.op = "PUT", .method = "PUT", .key = name, .body = body};
    if (flags & KL_PUT_IF_ABSENT) {
        rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"If-None-Match", "*"};
        rq.accept[0] = 412;
    }
    if (claim_object) rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"x-amz-meta-kl-object", claim_object};
    s3_resp rs;
    if ((st = Kl_s3_http_do(&s->http, &rq, &rs, err))) return st;
    Kl_buf_free(&rs.body);
    if (rs.status != 412) {
        if (etag && rs.etag[0] && !(*etag = strdup(rs.etag)))
            return kl_seterr(err, KL_ENOMEM, "out of memory");
        return KL_OK;
    }
    if (rs.ambiguous) {
        /* An earlier attempt may have created the object and lost the
         * answer: if what is there is exactly what we wrote, it was us. */
        uint8_t *have = NULL;
        size_t have_len = 0;
        if (s3_get(os, name, 0, UINT64_MAX, &have, &have_len, NULL) == KL_OK) {
            int same = Kl_body_eq(body, have, have_len);
            free(have);
            if (same) return KL_OK;
        }
    }
    return kl_seterr(err, KL_EEXIST, "S3 PUT s3://%s/%.200s: the object already exists",
                     s->http.bucket, name);
}

static kl_status s3_put(kl_objstore *os, const char *name, const void *data, size_t len, int flags,
                        kl_error *err)
{
    return put_object(os, name, KL_BODY_ONE(data, len), flags, NULL, NULL, err);
}

/* ---- slot claims (klstore.h "Slot claims") ------------------------ *
 * A claim is an object created with If-None-Match: * whose body is the
 * data object's body and whose metadata x-amz-meta-kl-object names the
 * data object (its last path component: metadata must be ASCII, names
 * of keys need not be).  Publishing is a server-side CopyObject, so the
 * body crosses the network once.  Deleting a claim before the data object
 * it published makes a late copy fail (404) instead of bringing a
 * compacted-away object back. */

static const char *last_component(const char *name)
{
    const char *sl = strrchr(name, '/');
    return sl ? sl + 1 : name;
}

static kl_status head_claim(s3_os *s, const char *claim, s3_resp *rs, kl_error *err)
{
    kl_status st = check_key(s, "HEAD", claim, err);
    if (st) return st;
    s3_req rq = {.op = "HEAD", .method = "HEAD", .key = claim, .head = 1, .accept = {404}};
    if ((st = Kl_s3_http_do(&s->http, &rq, rs, err))) return st;
    Kl_buf_free(&rs->body);
    if (rs->status == 404)
        return kl_seterr(err, KL_ENOTFOUND, "S3 HEAD s3://%s/%.200s: no such claim", s->http.bucket,
                         claim);
    return KL_OK;
}

static kl_status s3_claim(kl_objstore *os, const char *claim, const char *object,
                          const kl_body *body, char **tag, kl_error *err)
{
    kl_status st = put_object(os, claim, body, KL_PUT_IF_ABSENT, last_component(object), tag, err);
    if (st == KL_OK && !*tag) { /* created by an earlier attempt: ask for its tag */
        s3_resp rs;
        if ((st = head_claim(S(os), claim, &rs, err))) return st;
        if (!rs.etag[0] || !(*tag = strdup(rs.etag)))
            return kl_seterr(err, KL_EIO, "S3 HEAD s3://%s/%.200s: no ETag", S(os)->http.bucket,
                             claim);
    }
    return st;
}

static kl_status s3_claim_target(kl_objstore *os, const char *claim, char **object, char **tag,
                                 kl_error *err)
{
    s3_os *s = S(os);
    s3_resp rs;
    kl_status st = head_claim(s, claim, &rs, err);
    if (st) return st;
    if (!rs.claim_object[0] || strchr(rs.claim_object, '/') || !rs.etag[0])
        return kl_seterr(err, KL_EBADDATA,
                         "S3 HEAD s3://%s/%.200s: a claim without a body "
                         "(emptied, or not written by klstore)",
                         s->http.bucket, claim);
    size_t dl = (size_t)(last_component(claim) - claim);
    if (asprintf(object, "%.*s%s", (int)dl, claim, rs.claim_object) < 0 ||
        !(*tag = strdup(rs.etag)))
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    return KL_OK;
}

/* CopyObject of claim to object, conditional on the claim's ETag when tag
 * is given: a claim deleted and made again by another writer (another
 * body) then fails with 412 and nothing is copied.  *status: the HTTP
 * status (200, 404, 412). */
static kl_status copy_object(s3_os *s, const char *claim, const char *object, const char *tag,
                             long *status, kl_error *err)
{
    kl_status st = check_key(s, "COPY", object, err);
    if (st || (st = check_key(s, "COPY", claim, err))) return st;
    char *src = Kl_s3_addr_copy_source(s->http.bucket, claim);
    if (!src) return kl_seterr(err, KL_ENOMEM, "out of memory");
    s3_req rq = {.op = "COPY", .method = "PUT", .key = object, .accept = {404, 412}};
    rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"x-amz-copy-source", src};
    rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"x-amz-metadata-directive", "REPLACE"};
    /* AWS's name for the condition, and the one Ceph RGW reads (at least
     * up to 16.2, which ignores AWS's): a server honours one of them, and
     * an unknown x-amz- header is ignored.  The probe below tells whether
     * either was honoured. */
    if (tag) {
        rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"x-amz-copy-source-if-match", tag};
        rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"x-amz-copy-if-match", tag};
    }
    s3_resp rs;
    st = Kl_s3_http_do(&s->http, &rq, &rs, err);
    free(src);
    if (st) return st;
    *status = rs.status;
    if (rs.status == 404) {
        st = not_found(s, "COPY", claim, &rs, err);
    } else if (rs.status == 412) {
        st = kl_seterr(err, KL_ENOTFOUND,
                       "S3 COPY s3://%s/%.200s: the claim no longer holds "
                       "that body",
                       s->http.bucket, claim);
    } else {
        /* CopyObject may fail after its 200 went out: the error is the body. */
        kl_s3_xml_error x;
        if (Kl_s3_xml_parse_error((const char *)rs.body.data, rs.body.len, &x))
            st = kl_seterr(err, KL_EIO, "S3 COPY s3://%s/%.200s: %s: %s (request id %s)",
                           s->http.bucket, object, x.code, x.message, rs.request_id);
    }
    Kl_buf_free(&rs.body);
    return st;
}

/* Once per store, at the first publish: does the server honour a copy
 * condition (x-amz-copy-source-if-match, or Ceph RGW's x-amz-copy-if-match)?
 * A copy with a
 * tag that cannot match must fail with 412.  The probe objects sit next to
 * `claim` (within whatever prefix the credentials allow); if the probe
 * cannot run, copies are not trusted. */
static int copy_conditional(s3_os *s, const char *claim)
{
    int mode = atomic_load(&s->copy_mode);
    if (mode) return mode == 1;
    pthread_mutex_lock(&s->probe_mu);
    if (!(mode = atomic_load(&s->copy_mode))) {
        char *src = NULL, *dst = NULL;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long status = 0;
        if (asprintf(&src, "%s.copy-probe-%d-%lx%lx", claim, (int)getpid(),
                     (unsigned long)ts.tv_sec, (unsigned long)ts.tv_nsec) >= 0 &&
            asprintf(&dst, "%s-to", src) >= 0 &&
            put_object(&s->base, src, KL_BODY_ONE("p", 1), 0, NULL, NULL, NULL) == KL_OK) {
            copy_object(s, src, dst, "\"00000000000000000000000000000000\"", &status, NULL);
            const char *v[2] = {src, dst};
            s3_del(&s->base, v, 2, NULL);
        }
        free(src);
        free(dst);
        mode = status == 412 ? 1 : 2;
        atomic_store(&s->copy_mode, mode);
    }
    pthread_mutex_unlock(&s->probe_mu);
    return mode == 1;
}

/* Reads a claim's body and object name in one GET (they cannot disagree). */
static kl_status get_claim(s3_os *s, const char *claim, const char *object, kl_buf *body,
                           kl_error *err)
{
    s3_req rq = {.op = "GET", .method = "GET", .key = claim, .accept = {404}};
    s3_resp rs;
    kl_status st = Kl_s3_http_do(&s->http, &rq, &rs, err);
    if (st) return st;
    if (rs.status == 404) {
        st = not_found(s, "GET", claim, &rs, err);
        Kl_buf_free(&rs.body);
        return st;
    }
    if (strcmp(rs.claim_object, last_component(object)) != 0) {
        Kl_buf_free(&rs.body);
        return kl_seterr(err, KL_ENOTFOUND,
                         "S3 GET s3://%s/%.200s: the claim now holds "
                         "another object",
                         s->http.bucket, claim);
    }
    *body = rs.body;
    return KL_OK;
}

static kl_status s3_publish(kl_objstore *os, const char *claim, const char *object, const char *tag,
                            const kl_body *body, kl_error *err)
{
    s3_os *s = S(os);
    if (copy_conditional(s, claim)) {
        long status;
        return copy_object(s, claim, object, tag, &status, err);
    }
    /* Without copy conditions a copy could take a body from a claim made
     * again by another writer after this one's was deleted: send the bytes
     * whose name we know instead. */
    kl_buf got = {0};
    if (!body) {
        kl_status st = get_claim(s, claim, object, &got, err);
        if (st) return st;
    }
    kl_status st =
        put_object(os, object, body ? body : KL_BODY_ONE(got.data, got.len), 0, NULL, NULL, err);
    Kl_buf_free(&got);
    return st;
}

static kl_status s3_head(kl_objstore *os, const char *name, uint64_t *size, kl_error *err)
{
    s3_os *s = S(os);
    kl_status st = check_key(s, "HEAD", name, err);
    if (st) return st;
    s3_req rq = {.op = "HEAD", .method = "HEAD", .key = name, .head = 1, .accept = {404}};
    s3_resp rs;
    if ((st = Kl_s3_http_do(&s->http, &rq, &rs, err))) return st;
    Kl_buf_free(&rs.body);
    if (rs.status == 404)
        return kl_seterr(err, KL_ENOTFOUND, "S3 HEAD s3://%s/%.200s: no such object",
                         s->http.bucket, name);
    if (size) *size = rs.content_length; /* HEAD's Content-Length is the object's */
    return KL_OK;
}

static kl_status s3_get(kl_objstore *os, const char *name, uint64_t off, uint64_t len,
                        uint8_t **data, size_t *out_len, kl_error *err)
{
    s3_os *s = S(os);
    *data = NULL;
    *out_len = 0;
    kl_status st = check_key(s, "GET", name, err);
    if (st) return st;
    if (len == 0) {
        /* Nothing to read, but a missing object must still say so. */
        if ((st = s3_head(os, name, NULL, err))) return st;
        if (!(*data = malloc(1))) return kl_seterr(err, KL_ENOMEM, "S3 GET: out of memory");
        return KL_OK;
    }
    char range[64];
    s3_req rq = {.op = "GET", .method = "GET", .key = name, .accept = {404, 416}};
    int ranged = off > 0 || len != UINT64_MAX;
    /* off + len bytes at most, even from a server that ignores Range
     * (then everything from 0 comes and is cut below). */
    rq.max_body = len == UINT64_MAX || off + len < off ? S3_MAX_OBJECT : off + len;
    rq.enough_at_max = rq.max_body != S3_MAX_OBJECT;
    if (ranged) {
        if (len == UINT64_MAX || off + len - 1 < off)
            snprintf(range, sizeof range, "bytes=%" PRIu64 "-", off);
        else
            snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
        rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"Range", range};
    }
    s3_resp rs;
    if ((st = Kl_s3_http_do(&s->http, &rq, &rs, err))) return st;
    if (rs.status == 404) {
        st = not_found(s, "GET", name, &rs, err);
        Kl_buf_free(&rs.body);
        return st;
    }
    size_t n = 0;
    uint8_t *b = NULL;
    if (rs.status == 416) {
        /* The range starts at or past the end: nothing there to read. */
        Kl_buf_free(&rs.body);
    } else {
        b = Kl_buf_steal(&rs.body, &n);
        if (ranged && rs.status == 200) {
            /* A server that ignored Range sent everything: cut it here. */
            size_t start = off < n ? (size_t)off : n;
            size_t take = n - start;
            if (len < take) take = (size_t)len;
            memmove(b, b + start, take);
            n = take;
        } else if (n > len) {
            n = (size_t)len; /* a range answer longer than the range: no more than asked */
        }
    }
    if (!b && !(b = malloc(1))) return kl_seterr(err, KL_ENOMEM, "S3 GET: out of memory");
    *data = b;
    *out_len = n;
    return KL_OK;
}

static kl_status s3_list(kl_objstore *os, const kl_list_req *req, kl_listing *out, kl_error *err)
{
    s3_os *s = S(os);
    memset(out, 0, sizeof *out);
    kl_s3_list_pos pos;
    kl_status st = Kl_s3_list_pos_parse(req->continuation, &pos, err);
    if (st) return st;
    char delim[2] = {(char)req->delimiter, 0}, maxk[24];
    snprintf(maxk, sizeof maxk, "%zu", req->max_keys ? req->max_keys : 1000);
    const char *prefix = req->prefix ? req->prefix : "";
    s3_req rq = {.op = "LIST", .method = "GET", .key = NULL};
    rq.query[rq.n_query++] = (kl_sigv4_kv){"list-type", "2"};
    rq.query[rq.n_query++] = (kl_sigv4_kv){"prefix", prefix};
    rq.query[rq.n_query++] = (kl_sigv4_kv){"max-keys", maxk};
    if (req->delimiter) rq.query[rq.n_query++] = (kl_sigv4_kv){"delimiter", delim};
    if (req->start_after && *req->start_after)
        rq.query[rq.n_query++] = (kl_sigv4_kv){"start-after", req->start_after};
    if (pos.server_token)
        rq.query[rq.n_query++] = (kl_sigv4_kv){"continuation-token", pos.server_token};
    char shown[256];
    snprintf(shown, sizeof shown, "%.200s*", prefix);
    rq.shown = shown;
    s3_resp rs;
    if (!(st = Kl_s3_http_do(&s->http, &rq, &rs, err))) {
        st = Kl_s3_xml_parse_list((const char *)rs.body.data, rs.body.len, out, err);
        Kl_buf_free(&rs.body);
    }
    if (!st) {
        char what[300];
        Kl_s3_what(&s->http, &rq, what, sizeof what);
        if ((st = Kl_s3_list_page_check(&pos, req->start_after, out, what, err)))
            kl_listing_free(out);
    }
    Kl_s3_list_pos_free(&pos);
    return st;
}

static kl_status s3_del(kl_objstore *os, const char *const *names, size_t n, kl_error *err)
{
    s3_os *s = S(os);
    kl_status st;
    if (n == 0) return KL_OK;
    if (n > 1000)
        return kl_seterr(err, KL_EINVAL, "S3 DELETE s3://%s: %zu names, at most 1000 per call",
                         s->http.bucket, n);
    for (size_t i = 0; i < n; i++)
        if ((st = check_key(s, "DELETE", names[i], err))) return st;
    s3_resp rs;
    if (n == 1) {
        s3_req rq = {.op = "DELETE", .method = "DELETE", .key = names[0], .accept = {404}};
        if ((st = Kl_s3_http_do(&s->http, &rq, &rs, err))) return st;
        if (rs.status == 404) {
            st = not_found(s, "DELETE", names[0], &rs, err);
            Kl_buf_free(&rs.body);
            return st == KL_ENOTFOUND ? KL_OK : st; /* already gone: fine */
        }
        Kl_buf_free(&rs.body);
        return KL_OK;
    }

    size_t blen;
    char *body = Kl_s3_xml_delete_body(names, n, &blen, err);
    if (!body) return err ? err->code : KL_EINVAL;
    /* DeleteObjects requires Content-MD5 (AWS also takes x-amz-checksum-*,
     * Ceph RGW only Content-MD5). */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char md5[64];
    if (!EVP_Digest(body, blen, md, &mdlen, EVP_md5(), NULL)) {
        free(body);
        return kl_seterr(err, KL_EIO, "S3 DELETE: MD5 is not available in this OpenSSL");
    }
    EVP_EncodeBlock((unsigned char *)md5, md, (int)mdlen);
    s3_req rq = {.op = "DELETE", .method = "POST", .key = NULL, .body = KL_BODY_ONE(body, blen)};
    rq.query[rq.n_query++] = (kl_sigv4_kv){"delete", NULL};
    rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"Content-MD5", md5};
    rq.hdrs[rq.n_hdrs++] = (kl_sigv4_kv){"Content-Type", "application/xml"};
    st = Kl_s3_http_do(&s->http, &rq, &rs, err);
    free(body);
    if (st) return st;
    size_t failed;
    kl_s3_xml_error first;
    st = Kl_s3_xml_parse_delete((const char *)rs.body.data, rs.body.len, &failed, &first, err);
    Kl_buf_free(&rs.body);
    if (st) return st;
    if (failed) {
        int transient = strcmp(first.code, "InternalError") == 0 ||
                        strcmp(first.code, "SlowDown") == 0 ||
                        strcmp(first.code, "ServiceUnavailable") == 0;
        return kl_seterr(err, transient ? KL_EIO : KL_EINVAL,
                         "S3 DELETE s3://%s: %zu of %zu objects not deleted, first "
                         "'%.200s': %s: %s (request id %s)",
                         s->http.bucket, failed, n, first.key, first.code, first.message,
                         rs.request_id);
    }
    return KL_OK;
}

static const char *s3_describe(kl_objstore *os) { return S(os)->desc; }

static void s3_destroy(kl_objstore *os)
{
    s3_os *s = S(os);
    if (!s) return;
    Kl_s3_http_free(&s->http);
    pthread_mutex_destroy(&s->probe_mu);
    free(s->desc);
    free(s);
}

static const kl_objstore_ops s3_ops = {
    .put = s3_put,
    .get = s3_get,
    .head = s3_head,
    .list = s3_list,
    .del = s3_del,
    .describe = s3_describe,
    .destroy = s3_destroy,
    .claim = s3_claim,
    .claim_target = s3_claim_target,
    .publish = s3_publish,
    .unclaim = s3_del,
};

/* ------------------------------------------------------------------ */
/* construction                                                        */
/* ------------------------------------------------------------------ */

kl_status kl_objstore_s3_new(const kl_s3_config *c, kl_objstore **out, kl_error *err)
{
    *out = NULL;
    if (!c || !c->bucket_name || !*c->bucket_name)
        return kl_seterr(err, KL_EINVAL, "S3: bucket_name is required");
    if (strchr(c->bucket_name, '/') || strlen(c->bucket_name) > 255)
        return kl_seterr(err, KL_EINVAL, "S3: '%.100s' is not a bucket name", c->bucket_name);
    if (c->connect_timeout_ms <= 0 || c->request_timeout_ms <= 0 || c->max_retries < 0)
        return kl_seterr(err, KL_EINVAL,
                         "S3: connect_timeout_ms and request_timeout_ms must be positive and "
                         "max_retries not negative");
    s3_os *s = calloc(1, sizeof *s);
    if (!s) return kl_seterr(err, KL_ENOMEM, "S3: out of memory");
    kl_status st = Kl_s3_http_init(&s->http, c, err);
    if (st) {
        free(s);
        return st;
    }
    Kl_s3_xml_init();
    s->base.ops = &s3_ops;
    pthread_mutex_init(&s->probe_mu, NULL);
    if (asprintf(&s->desc, "s3://%s", s->http.bucket) < 0) {
        s->desc = NULL;
        s3_destroy(&s->base);
        return kl_seterr(err, KL_ENOMEM, "S3: out of memory");
    }
    *out = &s->base;
    return KL_OK;
}
