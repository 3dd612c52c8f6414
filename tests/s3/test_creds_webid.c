/* test_creds_webid.c -- web identity, as EKS pods use it: the
 * AWS_WEB_IDENTITY_TOKEN_FILE family and a profile's
 * web_identity_token_file, refresh and token rotation, and every way it
 * can fail -- against an STS double on 127.0.0.1 (sts_double.c).  Last,
 * the keys a web identity hands out used for real on Ceph RGW (skipped
 * without one). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "klstore.h"
#include "s3/s3_creds.h"
#include "creds_helpers.h"
#include "sts_double.h"

/* ---- web identity ------------------------------------------------- */

Test(sts, web_identity_from_environment, .timeout = 30)
{
    clean_env();
    sts_double d = {0};
    sts_start(&d);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token_file("token", "jwt-1\n"), 1);
    setenv("AWS_ROLE_ARN", ROLE "web", 1);
    setenv("AWS_ROLE_SESSION_NAME", "pod-1", 1);
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ASIA-web-0", "secret-web", "token-web-0", "web identity");
    cr_assert_eq(d.n_seen, 1);
    cr_assert_str_eq(d.seen[0].problem, "");
    cr_assert_str_eq(d.seen[0].action, "AssumeRoleWithWebIdentity");
    cr_assert_str_eq(d.seen[0].role, ROLE "web");
    cr_assert_str_eq(d.seen[0].session, "pod-1");
    cr_assert_str_eq(d.seen[0].token, "jwt-1");
    cr_assert_str_eq(d.seen[0].access_key, "");
    /* Cached: an hour to go. */
    expect(p, "ASIA-web-0", "secret-web", "token-web-0", NULL);
    cr_assert_eq(d.n_seen, 1);
    Kl_s3_credprov_free(p);

    /* Without AWS_ROLE_SESSION_NAME, a name of our own. */
    unsetenv("AWS_ROLE_SESSION_NAME");
    p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ASIA-web-1", "secret-web", "token-web-1", NULL);
    cr_assert(strncmp(d.seen[1].session, "klstore-session-", 16) == 0, "%s", d.seen[1].session);
    Kl_s3_credprov_free(p);
    sts_stop(&d);
}

/* Refreshed ahead of Expiration, the token file read again each time
 * (Kubernetes rotates it); a failed refresh keeps the still-valid ones. */
Test(sts, web_identity_refresh_rereads_the_token, .timeout = 30)
{
    clean_env();
    sts_double d = {.lifetime_s = 30};
    sts_start(&d);
    const char *tf = token_file("token", "jwt-1");
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tf, 1);
    setenv("AWS_ROLE_ARN", ROLE "web", 1);
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, NULL);
    Kl_s3_credprov_set_refresh(p, 60 * 1000, 0); /* refresh from 60 s before */
    expect(p, "ASIA-web-0", "secret-web", "token-web-0", "web identity");
    token_file("token", "jwt-2");
    d.lifetime_s = 7200;
    expect(p, "ASIA-web-1", "secret-web", "token-web-1", NULL); /* 30 s left: refreshed */
    cr_assert_str_eq(d.seen[0].token, "jwt-1");
    cr_assert_str_eq(d.seen[1].token, "jwt-2");
    expect(p, "ASIA-web-1", "secret-web", "token-web-1", NULL); /* 2 h left: cached */
    cr_assert_eq(d.n_seen, 2);

    /* The server said ExpiredToken: fetched again. */
    Kl_s3_credprov_invalidate(p);
    expect(p, "ASIA-web-2", "secret-web", "token-web-2", NULL);
    Kl_s3_credprov_free(p);

    /* Refresh due but STS refuses: the old ones serve until they expire. */
    d.lifetime_s = 30;
    p = prov(1, NULL, NULL, NULL, NULL);
    Kl_s3_credprov_set_refresh(p, 60 * 1000, 0);
    expect(p, "ASIA-web-3", "secret-web", "token-web-3", NULL);
    d.fail = STS_ACCESS_DENIED;
    expect(p, "ASIA-web-3", "secret-web", "token-web-3", NULL);
    cr_assert_eq(d.n_seen, 5);
    Kl_s3_credprov_free(p);
    sts_stop(&d);
}

/* In a profile; `profile` in klstore's configuration ignores the
 * environment's web identity (as `aws --profile`), AWS_PROFILE does not,
 * and then each variable overrides its profile setting. */
Test(sts, web_identity_from_a_profile, .timeout = 30)
{
    clean_env();
    sts_double d = {0};
    sts_start(&d);
    static char conf[1024];
    snprintf(conf, sizeof conf,
             "[profile w]\nweb_identity_token_file = %s\nrole_arn = " ROLE "fromprofile\n"
             "role_session_name = prof-sess\n"
             "aws_access_key_id = NOTUSED\naws_secret_access_key = NOTUSED\n",
             token_file("t-profile", "jwt-profile"));
    write_file(".aws/config", conf);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token_file("t-env", "jwt-env"), 1);
    setenv("AWS_ROLE_ARN", ROLE "fromenv", 1);

    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, "w");
    expect(p, "ASIA-fromprofile-0", "secret-fromprofile", "token-fromprofile-0", "web identity");
    cr_assert_str_eq(d.seen[0].token, "jwt-profile");
    cr_assert_str_eq(d.seen[0].session, "prof-sess");
    Kl_s3_credprov_free(p);

    setenv("AWS_PROFILE", "w", 1);
    p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ASIA-fromenv-1", "secret-fromenv", "token-fromenv-1", "web identity");
    cr_assert_str_eq(d.seen[1].token, "jwt-env");
    cr_assert_str_eq(d.seen[1].session, "prof-sess");
    Kl_s3_credprov_free(p);
    sts_stop(&d);
}

Test(sts, web_identity_errors, .timeout = 60)
{
    clean_env();
    sts_double d = {0};
    sts_start(&d);
    char msg[1024], missing[300];
    snprintf(missing, sizeof missing, "%s/no-such-token", home);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", missing, 1);
    setenv("AWS_ROLE_ARN", ROLE "web", 1);
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, NULL);
    snprintf(msg, sizeof msg,
             "S3 credentials: cannot read the web identity token file %s "
             "(AWS_WEB_IDENTITY_TOKEN_FILE): No such file or directory",
             missing);
    expect_error(p, KL_EINVAL, msg);
    Kl_s3_credprov_free(p);

    const char *tf = token_file("token", "\n");
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tf, 1);
    p = prov(1, NULL, NULL, NULL, NULL);
    snprintf(msg, sizeof msg,
             "S3 credentials: the web identity token file %s (AWS_WEB_IDENTITY_TOKEN_FILE) is "
             "empty",
             tf);
    expect_error(p, KL_EINVAL, msg);
    Kl_s3_credprov_free(p);

    token_file("token", "SECRETJWT");
    unsetenv("AWS_ROLE_ARN");
    p = prov(1, NULL, NULL, NULL, NULL);
    expect_error(p, KL_EINVAL,
                 "S3 credentials: AWS_WEB_IDENTITY_TOKEN_FILE is set but no role ARN is: set "
                 "AWS_ROLE_ARN, or role_arn in profile 'default'");
    Kl_s3_credprov_free(p);
    cr_assert_eq(d.n_seen, 0);

    /* STS says no: once, a clear message, never the token. */
    setenv("AWS_ROLE_ARN", ROLE "web", 1);
    static const struct {
        enum sts_fail fail;
        kl_status st;
        int attempts;
        const char *tail;
    } no[] = {
        {STS_ACCESS_DENIED, KL_EINVAL, 1,
         "HTTP 403 AccessDenied: Not authorized to perform sts:AssumeRole (request id "
         "req-AccessDenied)"},
        {STS_EXPIRED_TOKEN, KL_EINVAL, 1,
         "HTTP 400 ExpiredTokenException: Token expired: current date/time is after exp "
         "(request id req-ExpiredTokenException)"},
        {STS_MALFORMED, KL_EIO, 3, "HTTP 200 and the answer is not XML"},
        {STS_NO_TOKEN, KL_EIO, 3, "HTTP 200 and the credentials have no SessionToken"},
        {STS_UNAVAILABLE, KL_EIO, 3,
         "HTTP 503 ServiceUnavailable: try later (request id req-ServiceUnavailable)"},
    };
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        d.fail = no[i].fail;
        int before = d.n_seen;
        p = prov(1, NULL, NULL, NULL, NULL);
        snprintf(msg, sizeof msg,
                 "S3 credentials: STS AssumeRoleWithWebIdentity at %s for role " ROLE
                 "web (token from AWS_WEB_IDENTITY_TOKEN_FILE): %s",
                 sts_url(&d), no[i].tail);
        expect_error(p, no[i].st, msg);
        cr_assert_eq(d.n_seen - before, no[i].attempts, "%zu", i);
        Kl_s3_credprov_free(p);
    }

    /* Nothing listens. */
    setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1", 1);
    p = prov(1, NULL, NULL, NULL, NULL);
    kl_error e;
    cr_assert_eq(expect_fail(p, &e), KL_EIO);
    cr_assert(strncmp(e.msg,
                      "S3 credentials: STS AssumeRoleWithWebIdentity at http://127.0.0.1:1 for "
                      "role " ROLE "web (token from AWS_WEB_IDENTITY_TOKEN_FILE): ",
                      130) == 0 &&
                  strstr(e.msg, "127.0.0.1"),
              "%s", e.msg);
    cr_assert_null(strstr(e.msg, "SECRETJWT"));
    Kl_s3_credprov_free(p);
    sts_stop(&d);
}

/* ---- for real: the keys on Ceph RGW -------------------------------- */

#define RGW_SKIP "needs a real S3 server: set KL_S3_ENDPOINT (scripts/test.sh starts Ceph RGW)"

/* The STS double hands out RGW's own keys, as temporary credentials with
 * a session token RGW never issued: RGW checks the SigV4 signature (which
 * covers x-amz-security-token) with the secret and, as long as its own
 * STS is not enabled, accepts the extra header.  The S3 store then PUTs,
 * GETs and LISTs with what the web identity gave. */
Test(sts, web_identity_keys_on_rgw, .timeout = 60)
{
    const char *ep = getenv("KL_S3_ENDPOINT"), *bucket = getenv("KL_S3_BUCKET");
    const char *ak = getenv("KL_S3_ACCESS_KEY"), *sk = getenv("KL_S3_SECRET_KEY");
    if (!ep || !bucket || !ak || !sk) cr_skip_test(RGW_SKIP);
    clean_env();
    sts_double d = {.give_key = ak, .give_secret = sk, .give_token = "session-rgw-never-issued"};
    sts_start(&d);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token_file("token", "jwt-rgw"), 1);
    setenv("AWS_ROLE_ARN", ROLE "rgw", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);

    kl_config c;
    kl_config_init(&c);
    kl_error e = {0};
    const char *region = getenv("KL_S3_REGION");
    cr_assert_eq(kl_config_set(&c, "s3", "endpoint", ep, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(kl_config_set(&c, "s3", "bucket_name", bucket, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(kl_config_set(&c, "s3", "path_style", "true", &e), KL_OK, "%s", e.msg);
    if (region) cr_assert_eq(kl_config_set(&c, "s3", "region", region, &e), KL_OK, "%s", e.msg);
    kl_objstore *os;
    cr_assert_eq(kl_objstore_s3_new(&c.s3, &os, &e), KL_OK, "%s", e.msg);
    kl_config_free(&c);

    char name[128], prefix[64];
    snprintf(prefix, sizeof prefix, "sts-web-%d/", (int)getpid());
    snprintf(name, sizeof name, "%sobject", prefix);
    const char *data = "written with web identity credentials";
    cr_assert_eq(kl_os_put(os, name, data, strlen(data), 0, &e), KL_OK, "%s", e.msg);
    uint8_t *got;
    size_t n;
    cr_assert_eq(kl_os_get(os, name, 0, UINT64_MAX, &got, &n, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(n, strlen(data));
    cr_assert_eq(memcmp(got, data, n), 0);
    free(got);
    kl_list_req lr = {.prefix = prefix};
    kl_listing l;
    cr_assert_eq(kl_os_list(os, &lr, &l, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(l.n_objects, 1);
    cr_assert_str_eq(l.objects[0].name, name);
    kl_listing_free(&l);
    const char *names[] = {name};
    cr_assert_eq(kl_os_del(os, names, 1, &e), KL_OK, "%s", e.msg);
    kl_os_destroy(os);

    cr_assert_eq(d.n_seen, 1, "fetched once, then cached");
    cr_assert_str_eq(d.seen[0].action, "AssumeRoleWithWebIdentity");
    cr_assert_str_eq(d.seen[0].token, "jwt-rgw");
    sts_stop(&d);
}
