/* s3_creds.h -- where S3 credentials come from.
 *
 * use_default_credentials=0: access_key/secret_key (+ session_token or
 * security_token) from the configuration; with only `profile` set, that
 * profile of the shared AWS files (any of its sources below, but not the
 * environment's web identity variables).
 * use_default_credentials=1: the AWS CLI v2's chain, first match wins
 * (botocore's create_credential_resolver; an error in a source that
 * applies stops the search):
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 *      AWS_SESSION_TOKEN (or AWS_SECURITY_TOKEN) -- skipped when the
 *      configuration names a profile, as `aws --profile` does;
 *   2. the profile: the configured one, else AWS_PROFILE, else "default"
 *      (one named but missing is an error), from AWS_SHARED_CREDENTIALS_FILE
 *      (~/.aws/credentials) and AWS_CONFIG_FILE (~/.aws/config, "[profile
 *      NAME]" sections), in this order (s3_profcreds.h):
 *        a. assume role: role_arn + source_profile (a chain of profiles,
 *           loops refused) or credential_source (Environment,
 *           Ec2InstanceMetadata, EcsContainer); STS AssumeRole;
 *        b. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (+
 *           AWS_ROLE_SESSION_NAME) -- not when the configuration names a
 *           profile -- or the profile's web_identity_token_file + role_arn
 *           (+ role_session_name); STS AssumeRoleWithWebIdentity, the
 *           token file read again at every refresh (Kubernetes rotates it);
 *        c. SSO: not supported (an error);
 *        d. static keys in the credentials file;
 *        e. credential_process (s3_proc.h);
 *        f. static keys in the config file;
 *      STS is https://sts.REGION.amazonaws.com (the AWS CLI v2's
 *      sts_regional_endpoints=regional; "legacy" as in v1), the global
 *      https://sts.amazonaws.com when no region is configured (klstore's
 *      region, else AWS_REGION, AWS_DEFAULT_REGION, the profile's region),
 *      or AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, the profile's
 *      endpoint_url (s3_sts.h);
 *   3. container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on
 *      169.254.170.2) or AWS_CONTAINER_CREDENTIALS_FULL_URI, with
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE);
 *   4. EC2 instance metadata, IMDSv2 (token) with IMDSv1 fallback;
 *      AWS_EC2_METADATA_SERVICE_ENDPOINT overrides the address,
 *      AWS_EC2_METADATA_DISABLED=true turns it off,
 *      AWS_METADATA_SERVICE_TIMEOUT (seconds, default 1) bounds each call.
 * Temporary credentials are cached and refreshed ahead of their
 * Expiration.  Secrets never appear in error messages.
 */
#ifndef KL_S3_CREDS_H
#define KL_S3_CREDS_H

#include <stdint.h>

#include "klstore.h"
#include "s3/s3_keys.h" /* kl_s3_creds, Kl_s3_creds_clear */

typedef struct kl_s3_credprov kl_s3_credprov;

/* Copies what it needs from c.  Reads nothing yet: the chain is resolved
 * at the first Kl_s3_credprov_get. */
kl_status Kl_s3_credprov_new(const kl_s3_config *c, kl_s3_credprov **out, kl_error *err);
/* Current credentials, as a copy the caller clears.  Thread-safe. */
kl_status Kl_s3_credprov_get(kl_s3_credprov *p, kl_s3_creds *out, kl_error *err);
/* Drops cached temporary credentials (e.g. after the server answered
 * ExpiredToken) so the next get fetches fresh ones. */
void Kl_s3_credprov_invalidate(kl_s3_credprov *p);
/* Temporary credentials are fetched anew from ahead_ms before they
 * expire, at most every min_gap_ms while still valid (defaults 10 min and
 * 30 s).  For the tests, which cannot wait that long. */
void Kl_s3_credprov_set_refresh(kl_s3_credprov *p, int64_t ahead_ms, int64_t min_gap_ms);
void Kl_s3_credprov_free(kl_s3_credprov *p);

#endif /* KL_S3_CREDS_H */
