/* s3_creds.c -- the S3 credential chain (see s3_creds.h for the order).
 *
 * Mirrors the AWS CLI so that whatever makes `aws s3 ls` work makes klstore
 * work: environment, shared files, container endpoint, EC2 instance
 * metadata (IMDSv2).  Reading is elsewhere: the AWS shared files one at a
 * time in s3_profile.c (which files, and what their contents mean, is
 * here), the container and instance-metadata endpoints in s3_meta.c.
 * Fetched credentials are cached under a mutex and refreshed ahead of
 * their Expiration; a failed refresh keeps using credentials that have
 * not yet expired.
 */
#define _GNU_SOURCE
#include "s3/s3_creds.h"

#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s3/s3_meta.h"
#include "s3/s3_profile.h"

/* Refresh temporary credentials this long before they expire ... */
#define REFRESH_AHEAD_MS (10 * 60 * 1000)
/* ... but, while they are still valid, at most this often. */
#define REFRESH_MIN_GAP_MS (30 * 1000)

struct kl_s3_credprov {
    pthread_mutex_t mu;
    int use_default;
    char *access_key, *secret_key, *token, *profile;
    kl_s3_creds cached;
    int have;
    int64_t fetched_ms;
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static char *home_path(const char *rel)
{
    const char *home = env("HOME");
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (!home && getpwuid_r(getuid(), &pw, buf, sizeof buf, &res) == 0 && res)
        home = res->pw_dir;
    char *out = NULL;
    if (asprintf(&out, "%s/%s", home ? home : "", rel) < 0)
        return NULL;
    return out;
}

/* A path from the environment with "~/" expanded, else the default. */
static char *aws_file(const char *var, const char *deflt)
{
    const char *v = env(var);
    if (!v)
        return home_path(deflt);
    if (v[0] == '~' && v[1] == '/')
        return home_path(v + 2);
    return strdup(v);
}

/* ------------------------------------------------------------------ */
/* shared credentials and config files                                 */
/* ------------------------------------------------------------------ */

/* Credentials of `profile` from the credentials file, else the config file
 * (each must hold both keys itself, as in botocore).  *found is set when
 * one of the files has the profile at all. */
static kl_status from_profile(const char *profile, kl_s3_creds *out, int *found,
                              kl_error *err)
{
    *found = 0;
    char *cred_path = aws_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    char *conf_path = aws_file("AWS_CONFIG_FILE", ".aws/config");
    kl_status st = KL_OK;
    if (!cred_path || !conf_path) {
        st = kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
        goto done;
    }
    const char *paths[2] = {cred_path, conf_path};
    char unsupported[40] = "";
    for (int i = 0; i < 2; i++) {
        kl_s3_profile_keys k = {0};
        int r = Kl_s3_profile_read(paths[i], profile, i == 1, &k);
        if (r < 0) {
            Kl_s3_profile_keys_free(&k);
            st = kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
            goto done;
        }
        if (r == 0)
            continue;
        *found = 1;
        if (k.key_id && k.secret) {
            st = Kl_s3_creds_set(out, k.key_id, k.secret, k.token, 0,
                           i == 0 ? "shared credentials file" : "shared config file", err);
            Kl_s3_profile_keys_free(&k);
            goto done;
        }
        if (k.key_id || k.secret) {
            st = kl_seterr(err, KL_EINVAL,
                           "S3 credentials: profile '%s' in %s has %s but not %s", profile,
                           paths[i], k.key_id ? "aws_access_key_id" : "aws_secret_access_key",
                           k.key_id ? "aws_secret_access_key" : "aws_access_key_id");
            Kl_s3_profile_keys_free(&k);
            goto done;
        }
        if (k.unsupported[0] && !unsupported[0])
            memcpy(unsupported, k.unsupported, sizeof unsupported);
        Kl_s3_profile_keys_free(&k);
    }
    if (*found && unsupported[0])
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: profile '%s' uses %s, which klstore does not support; "
                       "give it aws_access_key_id/aws_secret_access_key, or export "
                       "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN "
                       "(e.g. from `aws configure export-credentials`)",
                       profile, unsupported);
    else if (*found)
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: profile '%s' (in %s or %s) has no aws_access_key_id",
                       profile, cred_path, conf_path);
    else
        st = kl_seterr(err, KL_EINVAL, "S3 credentials: profile '%s' is not in %s nor in %s",
                       profile, cred_path, conf_path);
done:
    free(cred_path);
    free(conf_path);
    return st;
}

/* ------------------------------------------------------------------ */
/* the chain                                                           */
/* ------------------------------------------------------------------ */

static int is_true(const char *v)
{
    return v && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static kl_status resolve(kl_s3_credprov *p, kl_s3_creds *out, kl_error *err)
{
    if (!p->use_default) {
        if (p->access_key && p->secret_key)
            return Kl_s3_creds_set(out, p->access_key, p->secret_key, p->token, 0, "configuration", err);
        if (p->access_key || p->secret_key)
            return kl_seterr(err, KL_EINVAL,
                             "S3 credentials: use_default_credentials=false needs both access_key "
                             "and secret_key, but only %s is set",
                             p->access_key ? "access_key" : "secret_key");
        if (p->profile) {
            int found;
            return from_profile(p->profile, out, &found, err);
        }
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: use_default_credentials=false but neither "
                         "access_key/secret_key nor profile is configured");
    }

    if (!p->profile) {
        const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY");
        if (ak && sk) {
            const char *tok = env("AWS_SESSION_TOKEN");
            return Kl_s3_creds_set(out, ak, sk, tok ? tok : env("AWS_SECURITY_TOKEN"), 0,
                             "environment", err);
        }
        if (ak || sk)
            return kl_seterr(err, KL_EINVAL, "S3 credentials: %s is set but %s is not",
                             ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                             ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    }

    const char *profile = p->profile ? p->profile : env("AWS_PROFILE");
    int explicit_profile = profile != NULL;
    if (!profile)
        profile = "default";
    int found;
    kl_error perr = {0};
    kl_status st = from_profile(profile, out, &found, &perr);
    if (st == KL_OK)
        return KL_OK;
    if (found || explicit_profile || st == KL_ENOMEM) {
        if (err)
            *err = perr;
        return st;
    }

    kl_s3_meta_keys k = {0};
    if (env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || env("AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
        if (!(st = Kl_s3_meta_container(&k, err)))
            st = Kl_s3_creds_set(out, k.key_id, k.secret, k.token, k.expires_ms, "container", err);
        Kl_s3_meta_keys_free(&k);
        return st;
    }

    char why[160] = "disabled by AWS_EC2_METADATA_DISABLED";
    if (!is_true(env("AWS_EC2_METADATA_DISABLED"))) {
        int reachable;
        if (!(st = Kl_s3_meta_imds(&k, &reachable, why, sizeof why, err)))
            st = Kl_s3_creds_set(out, k.key_id, k.secret, k.token, k.expires_ms, "instance metadata",
                           err);
        Kl_s3_meta_keys_free(&k);
        if (st == KL_OK || reachable)
            return st;
    }
    return kl_seterr(err, KL_EINVAL,
                     "S3 credentials: none found (no AWS_ACCESS_KEY_ID in the environment, no "
                     "profile '%s' in the shared AWS files, no container credentials, instance "
                     "metadata: %s); configure access_key/secret_key with "
                     "use_default_credentials=false, or any AWS CLI credential source",
                     profile, why);
}

kl_status Kl_s3_credprov_new(const kl_s3_config *c, kl_s3_credprov **out, kl_error *err)
{
    *out = NULL;
    const char *tok = c->session_token && *c->session_token ? c->session_token : NULL;
    const char *sec = c->security_token && *c->security_token ? c->security_token : NULL;
    if (tok && sec && strcmp(tok, sec) != 0)
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: session_token and security_token are both set and "
                         "differ; they are the same setting, set one");
    kl_s3_credprov *p = calloc(1, sizeof *p);
    if (!p)
        return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
    pthread_mutex_init(&p->mu, NULL);
    p->use_default = c->use_default_credentials;
#define DUP(dst, src)                                                    \
    do {                                                                 \
        if ((src) && *(src) && !((dst) = strdup(src))) {                 \
            Kl_s3_credprov_free(p);                                      \
            return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory"); \
        }                                                                \
    } while (0)
    DUP(p->access_key, c->access_key);
    DUP(p->secret_key, c->secret_key);
    DUP(p->token, tok ? tok : sec);
    DUP(p->profile, c->profile);
#undef DUP
    *out = p;
    return KL_OK;
}

kl_status Kl_s3_credprov_get(kl_s3_credprov *p, kl_s3_creds *out, kl_error *err)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&p->mu);
    int64_t now = kl_now_ms();
    kl_status st;
    int usable = p->have && (p->cached.expires_ms == 0 || now < p->cached.expires_ms);
    int want_refresh = !usable || (p->cached.expires_ms != 0 &&
                                   now >= p->cached.expires_ms - REFRESH_AHEAD_MS &&
                                   now - p->fetched_ms >= REFRESH_MIN_GAP_MS);
    if (want_refresh) {
        kl_s3_creds fresh = {0};
        kl_error rerr = {0};
        st = resolve(p, &fresh, &rerr);
        if (st == KL_OK) {
            Kl_s3_creds_clear(&p->cached);
            p->cached = fresh;
            p->have = 1;
            p->fetched_ms = now;
        } else if (!usable) {
            if (err)
                *err = rerr;
            pthread_mutex_unlock(&p->mu);
            return st;
        }
        /* else: keep the old ones until they really expire. */
    }
    st = Kl_s3_creds_copy(&p->cached, out, err);
    pthread_mutex_unlock(&p->mu);
    return st;
}

void Kl_s3_credprov_invalidate(kl_s3_credprov *p)
{
    pthread_mutex_lock(&p->mu);
    /* Static credentials cannot get better by reloading; the rest can. */
    if (p->have && p->cached.expires_ms != 0) {
        Kl_s3_creds_clear(&p->cached);
        p->have = 0;
    }
    pthread_mutex_unlock(&p->mu);
}

void Kl_s3_credprov_free(kl_s3_credprov *p)
{
    if (!p)
        return;
    Kl_s3_creds_clear(&p->cached);
    Kl_s3_wipe_free(p->access_key);
    Kl_s3_wipe_free(p->secret_key);
    Kl_s3_wipe_free(p->token);
    free(p->profile);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
