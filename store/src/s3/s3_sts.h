/* s3_sts.h -- temporary credentials from AWS STS: AssumeRole (signed with
 * other credentials) and AssumeRoleWithWebIdentity (unsigned, a token
 * proves who we are), and where STS is.
 *
 * Which role, which token and which source credentials is the profile
 * code's (s3_profcreds.c), which follows the AWS CLI; here is only the
 * STS query API over HTTP: the endpoint, the form-encoded POST, SigV4 for
 * service "sts", the XML answer.  Thread-safe: a curl handle per call, no
 * state kept. */
#ifndef KL_S3_STS_H
#define KL_S3_STS_H

#include <stddef.h>

#include "klstore.h"
#include "s3/s3_keys.h"

/* What decides where STS is, gathered from the environment and the
 * profile by the caller.  All borrowed; NULL = not set. */
typedef struct kl_s3_sts_where {
    const char *region;        /* the region, or NULL (none configured) */
    const char *regional;      /* sts_regional_endpoints: "regional"
                                  (the AWS CLI v2's default) or "legacy" */
    const char *endpoint_url;  /* an override (AWS_ENDPOINT_URL_STS, ...) */
    const char *endpoint_from; /* where the override came from, for messages */
} kl_s3_sts_where;

/* Where to send STS requests and the region to sign them for. */
typedef struct kl_s3_sts_endpoint {
    char url[512];
    char region[64];
} kl_s3_sts_endpoint;

/* Works out the endpoint as the AWS CLI v2 does: the override when set;
 * else with no region (or "aws-global") the global https://sts.amazonaws.com
 * (signed for us-east-1); else https://sts.REGION.amazonaws.com (.com.cn
 * in China), except that "legacy" sends the regions that had only the
 * global endpoint there.  KL_EINVAL naming the setting for an override
 * that is not an http(s) URL, a region that cannot be a host name, or a
 * sts_regional_endpoints other than regional/legacy.  Pure. */
kl_status Kl_s3_sts_endpoint(const kl_s3_sts_where *w, kl_s3_sts_endpoint *out, kl_error *err);

/* One call.  Borrowed strings; optional ones NULL. */
typedef struct kl_s3_sts_call {
    const kl_s3_sts_endpoint *ep;
    const char *role_arn;
    const char *session_name; /* RoleSessionName (required by STS) */
    const char *external_id;  /* AssumeRole only */
    int duration_s;           /* DurationSeconds, 0 = STS's default */
    const char *what;         /* who asks, for messages: "profile 'x'" */
    long connect_timeout_ms, timeout_ms;
} kl_s3_sts_call;

/* AssumeRole, signed with `source`.  The answer's credentials go to *out
 * (source text `label`, expiry from Expiration).  Errors name the action,
 * the endpoint, c->what and STS's code, message and request id; KL_EIO
 * for what may pass (transport, 5xx, throttling; retried twice first),
 * KL_EINVAL otherwise (AccessDenied, ...).  Never a secret in them. */
kl_status Kl_s3_sts_assume_role(const kl_s3_sts_call *c, const kl_s3_creds *source,
                                const char *label, kl_s3_creds *out, kl_error *err);

/* AssumeRoleWithWebIdentity with `token` (a JWT), unsigned.  As above. */
kl_status Kl_s3_sts_assume_role_web_identity(const kl_s3_sts_call *c, const char *token,
                                             const char *label, kl_s3_creds *out, kl_error *err);

/* Reads an STS answer (status, body[0..len)) of `action` into *out as
 * the calls above do (exposed for the tests and the fuzz harness). */
kl_status Kl_s3_sts_answer(long status, const char *body, size_t len, const char *action,
                           const char *where, const char *label, kl_s3_creds *out, kl_error *err);

#endif /* KL_S3_STS_H */
