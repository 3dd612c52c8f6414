/* s3_profile.h -- the AWS shared files (~/.aws/credentials and
 * ~/.aws/config): where they are, and one profile's settings from one of
 * them.
 *
 * Only reading is here; in which order the settings count and what a
 * missing or half-filled profile means is the profile code's
 * (s3_profcreds.c). */
#ifndef KL_S3_PROFILE_H
#define KL_S3_PROFILE_H

/* The settings of one profile in an AWS shared file (credentials or
 * config) that the credential chain reads.  Each is NULL when the
 * profile does not set it, "" when set empty.  The strings are malloc'd;
 * Kl_s3_profile_keys_free wipes them. */
typedef struct kl_s3_profile_keys {
    char *key_id, *secret, *token;                       /* static keys */
    char *role_arn, *source_profile, *credential_source; /* assume role */
    char *role_session_name, *external_id, *duration_seconds, *mfa_serial;
    char *web_identity_token_file; /* web identity (with role_arn) */
    char *credential_process;
    char *region, *sts_regional_endpoints; /* where STS is */
    char *endpoint_url, *ignore_configured_endpoint_urls;
    char unsupported[40]; /* first key we cannot honour (SSO), or "" */
} kl_s3_profile_keys;

/* Reads `profile` from the AWS shared file at `path` into k (is_config:
 * the config file's "[profile NAME]" sections).  Returns 1 when the file
 * has that section, 0 when not (or there is no file), -1 when out of
 * memory.  Free k with Kl_s3_profile_keys_free, whatever the result.
 * Thread-safe (no state outside k). */
int Kl_s3_profile_read(const char *path, const char *profile, int is_config, kl_s3_profile_keys *k);
void Kl_s3_profile_keys_free(kl_s3_profile_keys *k);

/* The paths of the shared credentials and config files:
 * AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE ("~/" expanded), else
 * ~/.aws/credentials and ~/.aws/config.  malloc'd; -1 (both NULL) when
 * out of memory. */
int Kl_s3_profile_files(char **cred, char **conf);

#endif /* KL_S3_PROFILE_H */
