/* s3_xml.c -- reading and writing the S3 API's XML with libxml2.
 *
 * Elements are matched by local name only: AWS puts its documents in the
 * 2006-03-01 namespace, error bodies have none, and other S3 servers (Ceph
 * RGW, MinIO) are not always consistent, so namespaces carry no meaning we
 * need.  Parsing never touches the network (XML_PARSE_NONET), refuses
 * documents with a DTD and substitutes no entities.
 */
#define _GNU_SOURCE
#include "s3/s3_xml.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/crypto.h>

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init_once(void) { xmlInitParser(); }

void Kl_s3_xml_init(void) { pthread_once(&xml_once, xml_init_once); }

/* S3 documents never carry a DTD; one in a response can only be an
 * entity-expansion bomb or similar, so it is refused before libxml2 sees
 * it, and libxml2 keeps its own amplification limits (no XML_PARSE_HUGE,
 * no entity substitution). */
static int has_dtd(const char *body, size_t len)
{
    return memmem(body, len, "<!DOCTYPE", 9) || memmem(body, len, "<!doctype", 9) ||
           memmem(body, len, "<!ENTITY", 8);
}

/* libxml2 reports some errors (a body's bad encoding, say) through its
 * generic handler, which prints to stderr: a broken server must not
 * write into our callers' output.  The handlers are per thread. */
static void quiet(void *ctx, const char *msg, ...) { (void)ctx, (void)msg; }
static void quiet_structured(void *ctx, const xmlError *e) { (void)ctx, (void)e; }

static xmlDocPtr parse(const char *body, size_t len)
{
    Kl_s3_xml_init();
    if (!body || len == 0 || len > (size_t)INT32_MAX || has_dtd(body, len)) return NULL;
    xmlSetGenericErrorFunc(NULL, quiet);
    xmlSetStructuredErrorFunc(NULL, (xmlStructuredErrorFunc)quiet_structured);
    return xmlReadMemory(body, (int)len, NULL, NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static int is(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *child(const xmlNode *n, const char *name)
{
    for (const xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (is(c, name)) return c;
    return NULL;
}

/* Text of element `name` under n as a malloc'd string ("" if empty), or
 * NULL if there is no such element. */
static char *child_text(const xmlNode *n, const char *name)
{
    const xmlNode *c = child(n, name);
    if (!c) return NULL;
    xmlChar *t = xmlNodeGetContent(c);
    char *s = strdup(t ? (const char *)t : "");
    xmlFree(t);
    return s;
}

static void copy_text(const xmlNode *n, const char *name, char *dst, size_t cap)
{
    char *t = child_text(n, name);
    snprintf(dst, cap, "%s", t ? t : "");
    free(t);
}

static int parse_u64(const char *s, uint64_t *v)
{
    if (!s || !*s || strspn(s, "0123456789") != strlen(s)) return -1;
    errno = 0;
    unsigned long long x = strtoull(s, NULL, 10);
    if (errno) return -1;
    *v = x;
    return 0;
}

kl_status Kl_s3_xml_parse_list(const char *body, size_t len, kl_listing *out, kl_error *err)
{
    memset(out, 0, sizeof *out);
    xmlDocPtr doc = parse(body, len);
    const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    if (!is(root, "ListBucketResult")) {
        xmlFreeDoc(doc);
        return kl_seterr(err, KL_EIO, "S3 LIST: the response is not a ListBucketResult document");
    }

    size_t n_obj = 0, n_pre = 0;
    for (const xmlNode *c = root->children; c; c = c->next) {
        n_obj += is(c, "Contents");
        n_pre += is(c, "CommonPrefixes");
    }
    kl_status st = KL_OK;
    char *truncated = NULL;
    if ((n_obj && !(out->objects = calloc(n_obj, sizeof *out->objects))) ||
        (n_pre && !(out->prefixes = calloc(n_pre, sizeof *out->prefixes)))) {
        st = kl_seterr(err, KL_ENOMEM, "S3 LIST: out of memory");
        goto done;
    }
    for (const xmlNode *c = root->children; c; c = c->next) {
        if (is(c, "Contents")) {
            kl_objinfo *o = &out->objects[out->n_objects];
            char *size = child_text(c, "Size");
            o->name = child_text(c, "Key");
            int bad = !o->name || parse_u64(size, &o->size) != 0;
            free(size);
            /* Missing or odd: unknown (0), which only makes claims live longer. */
            char *lm = child_text(c, "LastModified");
            if (!lm || !isdigit((unsigned char)lm[0]) || !strchr(lm, 'T') ||
                kl_parse_time(lm, &o->mtime_ms, NULL) != KL_OK || o->mtime_ms < 0)
                o->mtime_ms = 0;
            free(lm);
            if (!o->name) {
                st = kl_seterr(err, KL_EIO, "S3 LIST: an entry has no Key");
                goto done;
            }
            out->n_objects++;
            if (bad) {
                st = kl_seterr(err, KL_EIO,
                               "S3 LIST: entry '%.200s' has a missing or malformed Size", o->name);
                goto done;
            }
        } else if (is(c, "CommonPrefixes")) {
            char *p = child_text(c, "Prefix");
            if (!p) {
                st = kl_seterr(err, KL_EIO, "S3 LIST: a CommonPrefixes entry has no Prefix");
                goto done;
            }
            out->prefixes[out->n_prefixes++] = p;
        }
    }
    truncated = child_text(root, "IsTruncated");
    if (truncated && strcmp(truncated, "true") == 0) {
        out->next = child_text(root, "NextContinuationToken");
        if (!out->next || !*out->next)
            st = kl_seterr(err, KL_EIO,
                           "S3 LIST: the listing is truncated but has no NextContinuationToken "
                           "(does the server support ListObjectsV2?)");
    }

done:
    free(truncated);
    xmlFreeDoc(doc);
    if (st) kl_listing_free(out);
    return st;
}

static void fill_error(const xmlNode *e, kl_s3_xml_error *out)
{
    copy_text(e, "Code", out->code, sizeof out->code);
    copy_text(e, "Message", out->message, sizeof out->message);
    copy_text(e, "RequestId", out->request_id, sizeof out->request_id);
    copy_text(e, "Key", out->key, sizeof out->key);
}

int Kl_s3_xml_parse_error(const char *body, size_t len, kl_s3_xml_error *out)
{
    memset(out, 0, sizeof *out);
    xmlDocPtr doc = parse(body, len);
    const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    int ok = is(root, "Error");
    if (ok) fill_error(root, out);
    xmlFreeDoc(doc);
    return ok;
}

kl_status Kl_s3_xml_parse_delete(const char *body, size_t len, size_t *n_failed,
                                 kl_s3_xml_error *first, kl_error *err)
{
    *n_failed = 0;
    memset(first, 0, sizeof *first);
    xmlDocPtr doc = parse(body, len);
    const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    if (!is(root, "DeleteResult")) {
        xmlFreeDoc(doc);
        return kl_seterr(err, KL_EIO, "S3 DELETE: the response is not a DeleteResult document");
    }
    for (const xmlNode *c = root->children; c; c = c->next) {
        if (!is(c, "Error")) continue;
        kl_s3_xml_error e = {0};
        fill_error(c, &e);
        if (strcmp(e.code, "NoSuchKey") == 0) continue;
        if ((*n_failed)++ == 0) *first = e;
    }
    xmlFreeDoc(doc);
    return KL_OK;
}

/* Appends s XML-escaped; -1 for characters XML 1.0 cannot represent. */
static int put_escaped(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        /* As references, so that XML end-of-line handling keeps them. */
        case '\t': fputs("&#9;", f); break;
        case '\n': fputs("&#10;", f); break;
        case '\r': fputs("&#13;", f); break;
        default:
            if (*p < 0x20) return -1;
            fputc(*p, f);
        }
    }
    return 0;
}

char *Kl_s3_xml_delete_body(const char *const *names, size_t n, size_t *len, kl_error *err)
{
    char *buf = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&buf, &sz);
    if (!f) {
        kl_seterr(err, KL_ENOMEM, "S3 DELETE: out of memory");
        return NULL;
    }
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>",
          f);
    for (size_t i = 0; i < n; i++) {
        fputs("<Object><Key>", f);
        if (put_escaped(f, names[i]) != 0) {
            fclose(f);
            free(buf);
            kl_seterr(err, KL_EINVAL,
                      "S3 DELETE: object name '%.200s' contains a control character", names[i]);
            return NULL;
        }
        fputs("</Key></Object>", f);
    }
    fputs("</Delete>", f);
    if (fclose(f) != 0) {
        free(buf);
        kl_seterr(err, KL_ENOMEM, "S3 DELETE: out of memory");
        return NULL;
    }
    *len = sz;
    return buf;
}

/* ------------------------------------------------------------------ */
/* STS answers                                                         */
/* ------------------------------------------------------------------ */

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void Kl_s3_xml_sts_free(kl_s3_xml_sts *c)
{
    wipe_free(c->key_id);
    wipe_free(c->secret);
    wipe_free(c->token);
    free(c->expiration);
    memset(c, 0, sizeof *c);
}

/* libxml2 frees text without wiping it: overwrite every text node of the
 * tree under n (the credentials) first.  Strings in the document's
 * dictionary are shared and left alone; libxml2 keeps only names there
 * unless asked (XML_PARSE_COMPACT and the dictionary options are not
 * used here). */
static void wipe_tree(xmlDocPtr doc, xmlNode *n)
{
    for (; n; n = n->next) {
        if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) && n->content &&
            !(doc->dict && xmlDictOwns(doc->dict, n->content)))
            OPENSSL_cleanse(n->content, strlen((const char *)n->content));
        wipe_tree(doc, n->children);
    }
}

int Kl_s3_xml_parse_sts(const char *body, size_t len, const char *action, kl_s3_xml_sts *out,
                        kl_s3_xml_error *e)
{
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    xmlDocPtr doc = parse(body, len);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    char want[80];
    snprintf(want, sizeof want, "%sResponse", action);
    int rc = -1;
    if (!root) {
        snprintf(e->message, sizeof e->message, "the answer is not XML");
    } else if (is(root, "ErrorResponse") || is(root, "Error")) {
        fill_error(is(root, "Error") ? root : child(root, "Error"), e);
        if (!e->request_id[0]) copy_text(root, "RequestId", e->request_id, sizeof e->request_id);
        rc = 0;
    } else if (!is(root, want)) {
        snprintf(e->message, sizeof e->message, "the answer is a <%.60s>, not a <%s>",
                 (const char *)root->name, want);
    } else {
        snprintf(want, sizeof want, "%sResult", action);
        const xmlNode *c = child(child(root, want), "Credentials");
        if (!c) {
            snprintf(e->message, sizeof e->message, "the answer has no %s/Credentials", want);
        } else {
            out->key_id = child_text(c, "AccessKeyId");
            out->secret = child_text(c, "SecretAccessKey");
            out->token = child_text(c, "SessionToken");
            out->expiration = child_text(c, "Expiration");
            const char *missing = !out->key_id || !*out->key_id           ? "AccessKeyId"
                                  : !out->secret || !*out->secret         ? "SecretAccessKey"
                                  : !out->token || !*out->token           ? "SessionToken"
                                  : !out->expiration || !*out->expiration ? "Expiration"
                                                                          : NULL;
            rc = 1;
            if (missing) {
                /* An empty string from child_text is fine; NULL with the
                 * element present means strdup failed. */
                int oom = (!out->key_id && child(c, "AccessKeyId")) ||
                          (!out->secret && child(c, "SecretAccessKey")) ||
                          (!out->token && child(c, "SessionToken")) ||
                          (!out->expiration && child(c, "Expiration"));
                Kl_s3_xml_sts_free(out);
                rc = oom ? -2 : -1;
                snprintf(e->message, sizeof e->message, "the credentials have no %s", missing);
            }
            wipe_tree(doc, c->children);
        }
    }
    xmlFreeDoc(doc);
    return rc;
}
