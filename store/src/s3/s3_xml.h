/* s3_xml.h -- the XML documents of the S3 API that klstore reads or writes:
 * ListObjectsV2 results, error bodies, DeleteObjects requests and results;
 * and the answers of STS (AssumeRole, AssumeRoleWithWebIdentity), which
 * the credential chain reads (s3_sts.c).
 * Parsing is libxml2 (no network access, no entity expansion surprises). */
#ifndef KL_S3_XML_H
#define KL_S3_XML_H

#include <stddef.h>

#include "klstore.h"

/* The fields of an S3 <Error> that make a message useful.  Fixed-size so
 * that error paths need no allocation; long values are truncated. */
typedef struct kl_s3_xml_error {
    char code[64]; /* "NoSuchKey", "SignatureDoesNotMatch", ... */
    char message[256];
    char request_id[128];
    char key[256]; /* DeleteObjects: the name that failed */
} kl_s3_xml_error;

/* Calls xmlInitParser once per process; libxml2 needs that before it is
 * used from several threads. */
void Kl_s3_xml_init(void);

/* Parses a ListObjectsV2 result body into *out (which it zeroes first; free
 * with kl_listing_free).  KL_EIO when the body is not such a document, since
 * a garbled response is a transport problem worth retrying. */
kl_status Kl_s3_xml_parse_list(const char *body, size_t len, kl_listing *out, kl_error *err);

/* Parses an <Error> body.  Returns 1 and fills *out when body is one, else
 * 0 (with *out zeroed). */
int Kl_s3_xml_parse_error(const char *body, size_t len, kl_s3_xml_error *out);

/* Builds a quiet DeleteObjects request body for names[0..n).  Returns a
 * malloc'd string (length in *len), or NULL with *err set: KL_EINVAL for a
 * name XML 1.0 cannot carry (control characters other than TAB/LF/CR). */
char *Kl_s3_xml_delete_body(const char *const *names, size_t n, size_t *len, kl_error *err);

/* Parses a DeleteResult body.  *n_failed receives the number of <Error>
 * entries other than NoSuchKey (a missing name is not a failure for us) and
 * *first the first of them.  KL_EIO when the body is not a DeleteResult. */
kl_status Kl_s3_xml_parse_delete(const char *body, size_t len, size_t *n_failed,
                                 kl_s3_xml_error *first, kl_error *err);

/* The credentials of an STS AssumeRole or AssumeRoleWithWebIdentity
 * answer: malloc'd, wiped by Kl_s3_xml_sts_free. */
typedef struct kl_s3_xml_sts {
    char *key_id, *secret, *token;
    char *expiration; /* as sent, e.g. "2024-05-01T12:00:00Z" */
} kl_s3_xml_sts;
void Kl_s3_xml_sts_free(kl_s3_xml_sts *c);

/* Parses the answer of STS `action` ("AssumeRole", ...): its
 * <ACTIONResponse><ACTIONResult><Credentials>.  Returns 1 with *out
 * filled when it has all four of AccessKeyId, SecretAccessKey,
 * SessionToken and Expiration; 0 when it is an STS <ErrorResponse> (or a
 * bare <Error>), with *e filled; -1 when it is neither, with what is
 * wrong in e->message (never quoting the body, which may hold a secret);
 * -2 when out of memory.  *out and *e are zeroed first.  The text of the
 * parsed document is wiped before it is freed. */
int Kl_s3_xml_parse_sts(const char *body, size_t len, const char *action, kl_s3_xml_sts *out,
                        kl_s3_xml_error *e);

#endif /* KL_S3_XML_H */
