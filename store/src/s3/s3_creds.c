/* s3_creds.c -- the S3 credential chain (see s3_creds.h for the order).
 *
 * Mirrors the AWS CLI v2 so that whatever makes `aws s3 ls` work makes
 * klstore work: environment, the profile (assume role, web identity,
 * static keys, credential_process: s3_profcreds.c), container endpoint,
 * EC2 instance metadata (IMDSv2; both in s3_meta.c).  This file holds the
 * order between those and the cache: fetched credentials are kept under a
 * mutex and refreshed ahead of their Expiration; a failed refresh keeps
 * using credentials that have not yet expired.
 */
#define _GNU_SOURCE
#include "s3/s3_creds.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "s3/s3_meta.h"
#include "s3/s3_proc.h"
#include "s3/s3_profcreds.h"

/* Refresh temporary credentials this long before they expire ... */
#define REFRESH_AHEAD_MS (10 * 60 * 1000)
/* ... but, while they are still valid, at most this often. */
#define REFRESH_MIN_GAP_MS (30 * 1000)

struct kl_s3_credprov {
    pthread_mutex_t mu;
    int use_default;
    char *access_key, *secret_key, *token, *profile, *region;
    kl_s3_prof_opts opts;
    int64_t refresh_ahead_ms, refresh_min_gap_ms;
    kl_s3_creds cached;
    int have;
    int64_t fetched_ms;
};

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
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
    kl_status st;
    if (!p->use_default) {
        if (p->access_key && p->secret_key)
            return Kl_s3_creds_set(out, p->access_key, p->secret_key, p->token, 0, "configuration",
                                   err);
        if (p->access_key || p->secret_key)
            return kl_seterr(err, KL_EINVAL,
                             "S3 credentials: use_default_credentials=false needs both access_key "
                             "and secret_key, but only %s is set",
                             p->access_key ? "access_key" : "secret_key");
        if (!p->profile)
            return kl_seterr(err, KL_EINVAL,
                             "S3 credentials: use_default_credentials=false but neither "
                             "access_key/secret_key nor profile is configured");
        st = Kl_s3_profcreds_get(&p->opts, p->profile, 0, 1, out, err);
        if (st == KL_ENOTFOUND)
            st = kl_seterr(err, KL_EINVAL,
                           "S3 credentials: profile '%s' has no credentials (no "
                           "aws_access_key_id, role_arn, web_identity_token_file or "
                           "credential_process)",
                           p->profile);
        return st;
    }

    /* 1. The environment's static keys, unless the configuration names a
     * profile (as `aws --profile` ignores them; AWS_PROFILE does not). */
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

    /* 2. The profile, with web identity from the environment. */
    const char *profile = p->profile ? p->profile : env("AWS_PROFILE");
    int named = profile != NULL;
    if (!profile) profile = "default";
    st = Kl_s3_profcreds_get(&p->opts, profile, !p->profile, named, out, err);
    if (st != KL_ENOTFOUND) return st;

    /* 3. The container endpoint. */
    kl_s3_meta_keys k = {0};
    if (env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") ||
        env("AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
        if (!(st = Kl_s3_meta_container(&k, err)))
            st = Kl_s3_creds_set(out, k.key_id, k.secret, k.token, k.expires_ms, "container", err);
        Kl_s3_meta_keys_free(&k);
        return st;
    }

    /* 4. EC2 instance metadata. */
    char why[160] = "disabled by AWS_EC2_METADATA_DISABLED";
    if (!is_true(env("AWS_EC2_METADATA_DISABLED"))) {
        int reachable;
        if (!(st = Kl_s3_meta_imds(&k, &reachable, why, sizeof why, err)))
            st = Kl_s3_creds_set(out, k.key_id, k.secret, k.token, k.expires_ms,
                                 "instance metadata", err);
        Kl_s3_meta_keys_free(&k);
        if (st == KL_OK || reachable) return st;
    }
    return kl_seterr(err, KL_EINVAL,
                     "S3 credentials: none found (no AWS_ACCESS_KEY_ID or "
                     "AWS_WEB_IDENTITY_TOKEN_FILE in the environment, no credentials in profile "
                     "'%s' of the shared AWS files, no container credentials, instance "
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
    if (!p) return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
    pthread_mutex_init(&p->mu, NULL);
    p->use_default = c->use_default_credentials;
    p->refresh_ahead_ms = REFRESH_AHEAD_MS;
    p->refresh_min_gap_ms = REFRESH_MIN_GAP_MS;
#define DUP(dst, src)                                                                              \
    do {                                                                                           \
        if ((src) && *(src) && !((dst) = strdup(src))) {                                           \
            Kl_s3_credprov_free(p);                                                                \
            return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");                     \
        }                                                                                          \
    } while (0)
    DUP(p->access_key, c->access_key);
    DUP(p->secret_key, c->secret_key);
    DUP(p->token, tok ? tok : sec);
    DUP(p->profile, c->profile);
    DUP(p->region, c->region);
#undef DUP
    p->opts.region = p->region;
    p->opts.connect_timeout_ms = c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 5000;
    p->opts.request_timeout_ms = c->request_timeout_ms > 0 ? c->request_timeout_ms : 30000;
    p->opts.process_timeout_ms = KL_S3_PROC_TIMEOUT_MS;
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
                                   now >= p->cached.expires_ms - p->refresh_ahead_ms &&
                                   now - p->fetched_ms >= p->refresh_min_gap_ms);
    if (want_refresh) {
        kl_s3_creds fresh = {0};
        kl_error rerr = {0};
        st = resolve(p, &fresh, &rerr);
        if (st == KL_OK && fresh.expires_ms != 0 && fresh.expires_ms <= now) {
            /* As botocore: refreshed, but still expired. */
            st = kl_seterr(&rerr, KL_EIO,
                           "S3 credentials: the %s gave credentials that have already expired "
                           "(is the clock right?)",
                           fresh.source);
            Kl_s3_creds_clear(&fresh);
        }
        if (st == KL_OK) {
            Kl_s3_creds_clear(&p->cached);
            p->cached = fresh;
            p->have = 1;
            p->fetched_ms = now;
        } else if (!usable) {
            if (err) *err = rerr;
            pthread_mutex_unlock(&p->mu);
            return st;
        }
        /* else: keep the old ones until they really expire. */
    }
    st = Kl_s3_creds_copy(&p->cached, out, err);
    pthread_mutex_unlock(&p->mu);
    return st;
}

void Kl_s3_credprov_set_refresh(kl_s3_credprov *p, int64_t ahead_ms, int64_t min_gap_ms)
{
    pthread_mutex_lock(&p->mu);
    p->refresh_ahead_ms = ahead_ms;
    p->refresh_min_gap_ms = min_gap_ms;
    pthread_mutex_unlock(&p->mu);
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
    if (!p) return;
    Kl_s3_creds_clear(&p->cached);
    Kl_s3_wipe_free(p->access_key);
    Kl_s3_wipe_free(p->secret_key);
    Kl_s3_wipe_free(p->token);
    free(p->profile);
    free(p->region);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
