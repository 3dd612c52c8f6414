/* s3_creds.h -- where S3 credentials come from.
 *
 * use_default_credentials=0: access_key/secret_key (+ session_token or
 * security_token) from the configuration; with only `profile` set, that
 * profile of the shared AWS files.
 * use_default_credentials=1: the AWS CLI's chain, first match wins:
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 *      AWS_SESSION_TOKEN (or AWS_SECURITY_TOKEN) -- skipped when the
 *      configuration names a profile, as `aws --profile` does;
 *   2. shared files: AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials), then
 *      AWS_CONFIG_FILE (~/.aws/config, "[profile NAME]" sections); the
 *      profile is the configured one, else AWS_PROFILE, else "default";
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
#include "s3/s3_keys.h"   /* kl_s3_creds, Kl_s3_creds_clear */

typedef struct kl_s3_credprov kl_s3_credprov;

/* Copies what it needs from c.  Reads nothing yet: the chain is resolved
 * at the first Kl_s3_credprov_get. */
kl_status Kl_s3_credprov_new(const kl_s3_config *c, kl_s3_credprov **out,
                             kl_error *err);
/* Current credentials, as a copy the caller clears.  Thread-safe. */
kl_status Kl_s3_credprov_get(kl_s3_credprov *p, kl_s3_creds *out,
                             kl_error *err);
/* Drops cached temporary credentials (e.g. after the server answered
 * ExpiredToken) so the next get fetches fresh ones. */
void Kl_s3_credprov_invalidate(kl_s3_credprov *p);
void Kl_s3_credprov_free(kl_s3_credprov *p);

#endif /* KL_S3_CREDS_H */
