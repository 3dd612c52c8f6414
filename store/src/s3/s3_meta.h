/* s3_meta.h -- temporary credentials from the metadata endpoints: the
 * container credentials endpoint (ECS/EKS) and EC2 instance metadata.
 *
 * Both answer the same JSON; the environment variables that point at them
 * and their rules are AWS's (s3_creds.h lists them).  Whether to ask them
 * at all is the credential chain's (s3_creds.c).  Every function here is
 * thread-safe (a curl handle per call, no state kept); the chain
 * serialises its own calls anyway. */
#ifndef KL_S3_META_H
#define KL_S3_META_H

#include <stddef.h>
#include <stdint.h>

#include "klstore.h"

/* Credentials as an endpoint gave them.  The strings are malloc'd;
 * Kl_s3_meta_keys_free wipes them. */
typedef struct kl_s3_meta_keys {
    char *key_id, *secret;
    char *token;        /* NULL when the answer has none (or "") */
    int64_t expires_ms; /* ms since the epoch, from Expiration, or an
                           assumed lifetime when it has none */
} kl_s3_meta_keys;
void Kl_s3_meta_keys_free(kl_s3_meta_keys *k);

/* Asks the container endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or
 * _FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)).  Errors name
 * the endpoint and what was wrong; KL_EIO for what may pass. */
kl_status Kl_s3_meta_container(kl_s3_meta_keys *out, kl_error *err);

/* Asks EC2 instance metadata (IMDSv2, falling back to v1).  *reachable
 * tells whether anything answered: when not (not on EC2), the result is
 * KL_ENOTFOUND with err untouched and `why` saying what happened. */
kl_status Kl_s3_meta_imds(kl_s3_meta_keys *out, int *reachable, char *why, size_t whycap,
                          kl_error *err);

/* Reads an endpoint's answer, body[0..len) (no NUL needed), into out:
 * a JSON object with AccessKeyId, SecretAccessKey, Token, Expiration and
 * optionally Code.  KL_EIO naming `where` and the problem for anything
 * else.  Exposed for the tests and the fuzz harness.  Thread-safe. */
kl_status Kl_s3_meta_parse(const char *body, size_t len, const char *where, kl_s3_meta_keys *out,
                           kl_error *err);

/* What is wrong with a JSON text, from jansson's error code
 * (json_error_code), in words that never quote the input: jansson's own
 * message does, and the input holds secrets.  Also used for
 * credential_process output (s3_proc.c). */
const char *Kl_s3_meta_json_problem(int code);

#endif /* KL_S3_META_H */
