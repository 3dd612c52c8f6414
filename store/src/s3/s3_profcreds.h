/* s3_profcreds.h -- the credentials a profile of the AWS shared files
 * gives, found the way the AWS CLI v2 (botocore) finds them.
 *
 * For the active profile, in this order, the first that applies wins and
 * an error in it stops the search:
 *   1. assume role: role_arn (without web_identity_token_file), with
 *      source_profile (another profile's credentials, itself possibly an
 *      assume-role profile: a chain, loops refused) or credential_source
 *      (Environment, Ec2InstanceMetadata, EcsContainer); role_session_name,
 *      external_id, duration_seconds;
 *   2. web identity: web_identity_token_file and role_arn (and
 *      role_session_name), each overridden by AWS_WEB_IDENTITY_TOKEN_FILE,
 *      AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME unless the caller says the
 *      environment does not count;
 *   3. SSO (sso_session, sso_start_url): not supported, an error;
 *   4. static keys in the shared credentials file;
 *   5. credential_process (s3_proc.c);
 *   6. static keys in the shared config file.
 * A source profile is read with 2-6 (its environment never counts), or
 * as an assume-role profile when it has role_arn and no static keys.
 * Settings are merged over the two files, the credentials file winning,
 * except for the static keys, which each file must hold whole.  STS is
 * found from the active profile (s3_sts.c: region, sts_regional_endpoints,
 * endpoint_url) and the environment.  The caller (s3_creds.c) holds the
 * result and decides when to ask again. */
#ifndef KL_S3_PROFCREDS_H
#define KL_S3_PROFCREDS_H

#include "klstore.h"
#include "s3/s3_keys.h"

typedef struct kl_s3_prof_opts {
    const char *region;                          /* klstore's configured region (as
                                                    `aws --region`), or NULL */
    long connect_timeout_ms, request_timeout_ms; /* each STS request */
    long process_timeout_ms;                     /* credential_process */
} kl_s3_prof_opts;

/* The credentials of `profile` (order above).  env_web_identity: the
 * AWS_WEB_IDENTITY_TOKEN_FILE family counts (not when klstore's
 * configuration names the profile, as `aws --profile` ignores it).
 * must_exist: a profile in neither file is an error (it was named).
 * KL_OK with *out; KL_ENOTFOUND, err untouched, when the profile does
 * not exist or gives nothing (the chain then goes on); any other status
 * is an error naming the profile, file or variable at fault. */
kl_status Kl_s3_profcreds_get(const kl_s3_prof_opts *o, const char *profile, int env_web_identity,
                              int must_exist, kl_s3_creds *out, kl_error *err);

#endif /* KL_S3_PROFCREDS_H */
