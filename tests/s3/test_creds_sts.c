/* test_creds_sts.c -- credentials from AWS STS: web identity (what EKS
 * pods use) and assume-role profiles (source_profile chains,
 * credential_source), where STS is, the order between these sources and
 * the others, and every way they can fail -- against an STS double on
 * 127.0.0.1 (sts_double.c) that checks each request, the SigV4 signature
 * of AssumeRole included.  Last, the keys a web identity hands out used
 * for real on Ceph RGW (skipped without one). */
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
#include "s3/s3_sts.h"
#include "creds_helpers.h"
#include "sts_double.h"

#define ROLE "arn:aws:iam::123456789012:role/"

static const char *token_file(const char *rel, const char *jwt)
{
    static char path[4][256];
    static int i;
    char *p = path[i++ % 4];
    snprintf(p, 256, "%s", write_file(rel, jwt));
    return p;
}

/* The whole message of a failed get. */
static void expect_error(kl_s3_credprov *p, kl_status want, const char *msg)
{
    kl_error e;
    cr_assert_eq(expect_fail(p, &e), want, "%s", e.msg);
    cr_assert_str_eq(e.msg, msg);
}

/* ---- where STS is ------------------------------------------------- */

Test(sts, endpoint)
{
    static const struct {
        const char *region, *regional, *url, *from;
        const char *want_url, *want_region;
    } ok[] = {
        {NULL, NULL, NULL, NULL, "https://sts.amazonaws.com", "us-east-1"},
        {"aws-global", NULL, NULL, NULL, "https://sts.amazonaws.com", "us-east-1"},
        {"eu-west-1", NULL, NULL, NULL, "https://sts.eu-west-1.amazonaws.com", "eu-west-1"},
        {"eu-west-1", "regional", NULL, NULL, "https://sts.eu-west-1.amazonaws.com", "eu-west-1"},
        {"eu-west-1", "legacy", NULL, NULL, "https://sts.amazonaws.com", "us-east-1"},
        {"ap-east-1", "legacy", NULL, NULL, "https://sts.ap-east-1.amazonaws.com", "ap-east-1"},
        {"cn-north-1", NULL, NULL, NULL, "https://sts.cn-north-1.amazonaws.com.cn", "cn-north-1"},
        {"us-west-2", NULL, "http://127.0.0.1:9/", "X", "http://127.0.0.1:9/", "us-west-2"},
        {NULL, "legacy", "https://sts.example", "X", "https://sts.example", "us-east-1"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        kl_s3_sts_where w = {ok[i].region, ok[i].regional, ok[i].url, ok[i].from};
        kl_s3_sts_endpoint ep;
        kl_error e = {0};
        cr_assert_eq(Kl_s3_sts_endpoint(&w, &ep, &e), KL_OK, "%zu: %s", i, e.msg);
        cr_assert_str_eq(ep.url, ok[i].want_url, "%zu", i);
        cr_assert_str_eq(ep.region, ok[i].want_region, "%zu", i);
    }
    static const struct {
        kl_s3_sts_where w;
        const char *msg;
    } bad[] = {
        {{"eu west", NULL, NULL, NULL},
         "S3 credentials: region 'eu west' is not a region name (STS needs one for its endpoint)"},
        {{"eu-west-1", "sometimes", NULL, NULL},
         "S3 credentials: sts_regional_endpoints is 'sometimes'; it must be 'regional' or "
         "'legacy'"},
        {{NULL, NULL, "ftp://sts", "AWS_ENDPOINT_URL_STS"},
         "S3 credentials: AWS_ENDPOINT_URL_STS 'ftp://sts' is not an http:// or https:// URL "
         "(without query)"},
        {{NULL, NULL, "http://sts/?a=b", "endpoint_url of profile 'p'"},
         "S3 credentials: endpoint_url of profile 'p' 'http://sts/?a=b' is not an http:// or "
         "https:// URL (without query)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kl_s3_sts_endpoint ep;
        kl_error e = {0};
        cr_assert_eq(Kl_s3_sts_endpoint(&bad[i].w, &ep, &e), KL_EINVAL, "%zu", i);
        cr_assert_str_eq(e.msg, bad[i].msg);
    }
}

/* The endpoint comes from klstore's region, AWS_REGION, AWS_DEFAULT_REGION,
 * the profile; overrides from AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, the
 * profile's endpoint_url.  Seen through the error of a refused call. */
Test(sts, endpoint_settings, .timeout = 30)
{
    clean_env();
    write_file(".aws/credentials", "[base]\naws_access_key_id=AK\naws_secret_access_key=SK\n");
    write_file(".aws/config",
               "[profile r]\nrole_arn=" ROLE "r\nsource_profile=base\nregion=bad region\n"
               "[profile u]\nrole_arn=" ROLE "u\nsource_profile=base\n"
               "endpoint_url=ftp://from-profile\nsts_regional_endpoints=sometimes\n");
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, "r");
    expect_error(p, KL_EINVAL,
                 "S3 credentials: region 'bad region' is not a region name (STS needs one for "
                 "its endpoint)");
    Kl_s3_credprov_free(p);
    setenv("AWS_DEFAULT_REGION", "bad default", 1);
    p = prov(1, NULL, NULL, NULL, "r");
    expect_error(p, KL_EINVAL,
                 "S3 credentials: region 'bad default' is not a region name (STS needs one for "
                 "its endpoint)");
    Kl_s3_credprov_free(p);
    setenv("AWS_REGION", "bad env", 1);
    p = prov(1, NULL, NULL, NULL, "r");
    expect_error(p, KL_EINVAL,
                 "S3 credentials: region 'bad env' is not a region name (STS needs one for its "
                 "endpoint)");
    Kl_s3_credprov_free(p);
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");

    p = prov(1, NULL, NULL, NULL, "u");
    expect_error(p, KL_EINVAL,
                 "S3 credentials: sts_regional_endpoints is 'sometimes'; it must be 'regional' "
                 "or 'legacy'");
    Kl_s3_credprov_free(p);
    setenv("AWS_STS_REGIONAL_ENDPOINTS", "legacy", 1);
    p = prov(1, NULL, NULL, NULL, "u");
    expect_error(p, KL_EINVAL,
                 "S3 credentials: endpoint_url of profile 'u' 'ftp://from-profile' is not an "
                 "http:// or https:// URL (without query)");
    Kl_s3_credprov_free(p);
    setenv("AWS_ENDPOINT_URL", "ftp://from-env", 1);
    p = prov(1, NULL, NULL, NULL, "u");
    expect_error(p, KL_EINVAL,
                 "S3 credentials: AWS_ENDPOINT_URL 'ftp://from-env' is not an http:// or "
                 "https:// URL (without query)");
    Kl_s3_credprov_free(p);
    setenv("AWS_ENDPOINT_URL_STS", "ftp://from-env-sts", 1);
    p = prov(1, NULL, NULL, NULL, "u");
    expect_error(p, KL_EINVAL,
                 "S3 credentials: AWS_ENDPOINT_URL_STS 'ftp://from-env-sts' is not an http:// "
                 "or https:// URL (without query)");
    Kl_s3_credprov_free(p);

    /* AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: none of them; then STS would
     * be https://sts.amazonaws.com, which klstore's region turns into a
     * (refused) regional one here. */
    setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
    kl_config c;
    kl_config_init(&c);
    c.s3.profile = strdup("u");
    c.s3.region = strdup("Bad_Region");
    kl_error e = {0};
    cr_assert_eq(Kl_s3_credprov_new(&c.s3, &p, &e), KL_OK, "%s", e.msg);
    kl_config_free(&c);
    expect_error(p, KL_EINVAL,
                 "S3 credentials: region 'Bad_Region' is not a region name (STS needs one for "
                 "its endpoint)");
    Kl_s3_credprov_free(p);
}

/* ---- STS answers -------------------------------------------------- */

Test(sts, answers)
{
    const char *good =
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        "<AssumeRoleResult><Credentials><AccessKeyId>ASIAX</AccessKeyId>"
        "<SecretAccessKey>S&amp;K</SecretAccessKey><SessionToken>TOK</SessionToken>"
        "<Expiration>2030-01-02T03:04:05.123Z</Expiration></Credentials>"
        "</AssumeRoleResult></AssumeRoleResponse>";
    kl_s3_creds c;
    kl_error e = {0};
    cr_assert_eq(Kl_s3_sts_answer(200, good, strlen(good), "AssumeRole", "W", "L", &c, &e), KL_OK,
                 "%s", e.msg);
    int64_t want;
    cr_assert_eq(kl_parse_time("2030-01-02T03:04:05.123Z", &want, NULL), KL_OK);
    cr_assert_str_eq(c.access_key, "ASIAX");
    cr_assert_str_eq(c.secret_key, "S&K");
    cr_assert_str_eq(c.token, "TOK");
    cr_assert_eq(c.expires_ms, want);
    cr_assert_str_eq(c.source, "L");
    Kl_s3_creds_clear(&c);

    static const struct {
        long status;
        const char *body;
        kl_status st;
        const char *msg;
    } bad[] = {
        {403,
         "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no</Message>"
         "</Error><RequestId>r1</RequestId></ErrorResponse>",
         KL_EINVAL, "S3 credentials: STS AssumeRole W: HTTP 403 AccessDenied: no (request id r1)"},
        {400, "<Error><Code>ExpiredTokenException</Code></Error>", KL_EINVAL,
         "S3 credentials: STS AssumeRole W: HTTP 400 ExpiredTokenException: (no message) "
         "(request id none)"},
        {400, "<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>", KL_EIO,
         "S3 credentials: STS AssumeRole W: HTTP 400 Throttling: (no message) (request id none)"},
        {500,
         "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId>"
         "<SecretAccessKey>SECRET</SecretAccessKey><SessionToken>T</SessionToken>"
         "<Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult>"
         "</AssumeRoleResponse>",
         KL_EIO, "S3 credentials: STS AssumeRole W: HTTP 500 and a credentials document"},
        {500, "oops", KL_EIO, "S3 credentials: STS AssumeRole W: HTTP 500 and the answer is not XML"},
        {200, "", KL_EIO, "S3 credentials: STS AssumeRole W: HTTP 200 and the answer is not XML"},
        {200, "<AssumeRoleResponse><AssumeRoleResult><Credentials>", KL_EIO,
         "S3 credentials: STS AssumeRole W: HTTP 200 and the answer is not XML"},
        {200, "<GetCallerIdentityResponse/>", KL_EIO,
         "S3 credentials: STS AssumeRole W: HTTP 200 and the answer is a "
         "<GetCallerIdentityResponse>, not a <AssumeRoleResponse>"},
        {200, "<AssumeRoleResponse><AssumeRoleResult/></AssumeRoleResponse>", KL_EIO,
         "S3 credentials: STS AssumeRole W: HTTP 200 and the answer has no "
         "AssumeRoleResult/Credentials"},
        {200,
         "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId>"
         "<SecretAccessKey>SECRET</SecretAccessKey><Expiration>2030-01-01T00:00:00Z</Expiration>"
         "</Credentials></AssumeRoleResult></AssumeRoleResponse>",
         KL_EIO, "S3 credentials: STS AssumeRole W: HTTP 200 and the credentials have no SessionToken"},
        {200,
         "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId>"
         "<SecretAccessKey>SECRET</SecretAccessKey><SessionToken>T</SessionToken>"
         "<Expiration>soon</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>",
         KL_EIO, "S3 credentials: STS AssumeRole W: the answer's Expiration 'soon' is not a time"},
        {200,
         "<!DOCTYPE x [<!ENTITY a \"SECRET\">]><AssumeRoleResponse/>", KL_EIO,
         "S3 credentials: STS AssumeRole W: HTTP 200 and the answer is not XML"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        e = (kl_error){0};
        kl_status st = Kl_s3_sts_answer(bad[i].status, bad[i].body, strlen(bad[i].body),
                                        "AssumeRole", "W", "L", &c, &e);
        cr_assert_eq(st, bad[i].st, "%zu: %s", i, e.msg);
        cr_assert_null(c.access_key);
        cr_assert_str_eq(e.msg, bad[i].msg, "%zu: %s", i, e.msg);
        cr_assert_null(strstr(e.msg, "SECRET"), "%zu", i);
    }
}

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
    Kl_s3_credprov_set_refresh(p, 60 * 1000, 0);   /* refresh from 60 s before */
    expect(p, "ASIA-web-0", "secret-web", "token-web-0", "web identity");
    token_file("token", "jwt-2");
    d.lifetime_s = 7200;
    expect(p, "ASIA-web-1", "secret-web", "token-web-1", NULL);   /* 30 s left: refreshed */
    cr_assert_str_eq(d.seen[0].token, "jwt-1");
    cr_assert_str_eq(d.seen[1].token, "jwt-2");
    expect(p, "ASIA-web-1", "secret-web", "token-web-1", NULL);   /* 2 h left: cached */
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
                      130) == 0 && strstr(e.msg, "127.0.0.1"),
              "%s", e.msg);
    cr_assert_null(strstr(e.msg, "SECRETJWT"));
    Kl_s3_credprov_free(p);
    sts_stop(&d);
}

/* ---- assume role -------------------------------------------------- */

static void assume_files(void)
{
    write_file(".aws/credentials",
               "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = basesecret\n"
               "[tok]\naws_access_key_id = AKIDTOK\naws_secret_access_key = toksecret\n"
               "aws_session_token = base-session\n");
    write_file(".aws/config",
               "[profile r]\nrole_arn = " ROLE "r\nsource_profile = base\n"
               "external_id = ext-1\nduration_seconds = 1800\nrole_session_name = sess-r\n"
               "[profile rt]\nrole_arn = " ROLE "rt\nsource_profile = tok\n"
               "[profile a]\nrole_arn = " ROLE "A\nsource_profile = b\n"
               "[profile b]\nrole_arn = " ROLE "B\nsource_profile = base\n"
               "[profile x]\nrole_arn = " ROLE "X\nsource_profile = y\n"
               "[profile y]\nrole_arn = " ROLE "Y\nsource_profile = x\n"
               "[profile self]\nrole_arn = " ROLE "self\nsource_profile = self\n"
               "aws_access_key_id = AKIDSELF\naws_secret_access_key = selfsecret\n"
               "[profile selfloop]\nrole_arn = " ROLE "sl\nsource_profile = selfloop\n"
               "[profile env]\nrole_arn = " ROLE "env\ncredential_source = Environment\n"
               "[profile both]\nrole_arn = " ROLE "b\nsource_profile = base\n"
               "credential_source = Environment\n"
               "[profile neither]\nrole_arn = " ROLE "n\n"
               "[profile mfa]\nrole_arn = " ROLE "m\nsource_profile = base\n"
               "mfa_serial = arn:aws:iam::123456789012:mfa/me\n"
               "[profile dur]\nrole_arn = " ROLE "d\nsource_profile = base\n"
               "duration_seconds = an hour\n"
               "[profile magic]\nrole_arn = " ROLE "m\ncredential_source = Magic\n"
               "[profile ecs]\nrole_arn = " ROLE "e\ncredential_source = EcsContainer\n"
               "[profile ghost]\nrole_arn = " ROLE "g\nsource_profile = nobody\n"
               "[profile empty]\nregion = eu-west-1\n"
               "[profile fromempty]\nrole_arn = " ROLE "fe\nsource_profile = empty\n");
}

static sts_double *assume_double(void)
{
    static sts_double d;
    memset(&d, 0, sizeof d);
    d.keys[0][0] = "AKIDBASE", d.keys[0][1] = "basesecret";
    d.keys[1][0] = "AKIDTOK", d.keys[1][1] = "toksecret";
    d.keys[2][0] = "AKIDSELF", d.keys[2][1] = "selfsecret";
    d.keys[3][0] = "AKIDENV", d.keys[3][1] = "envsecret";
    sts_start(&d);
    return &d;
}

Test(sts, assume_role_with_source_profile, .timeout = 30)
{
    clean_env();
    assume_files();
    sts_double *d = assume_double();
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, "r");
    expect(p, "ASIA-r-0", "secret-r", "token-r-0", "assume role");
    sts_seen *s = &d->seen[0];
    cr_assert_str_eq(s->problem, "");   /* the signature checked out */
    cr_assert_str_eq(s->action, "AssumeRole");
    cr_assert_str_eq(s->role, ROLE "r");
    cr_assert_str_eq(s->session, "sess-r");
    cr_assert_str_eq(s->external_id, "ext-1");
    cr_assert_str_eq(s->duration, "1800");
    cr_assert_str_eq(s->access_key, "AKIDBASE");
    cr_assert_str_eq(s->sec_token, "");
    cr_assert_str_eq(s->scope + 8, "/us-east-1/sts/aws4_request", "%s", s->scope);
    Kl_s3_credprov_free(p);

    /* Signed for the configured region; the source's session token
     * goes along (and is signed). */
    setenv("AWS_REGION", "eu-west-1", 1);
    p = prov(1, NULL, NULL, NULL, "rt");
    expect(p, "ASIA-rt-1", "secret-rt", "token-rt-1", NULL);
    s = &d->seen[1];
    cr_assert_str_eq(s->problem, "");
    cr_assert_str_eq(s->access_key, "AKIDTOK");
    cr_assert_str_eq(s->sec_token, "base-session");
    cr_assert_str_eq(s->scope + 8, "/eu-west-1/sts/aws4_request", "%s", s->scope);
    cr_assert_str_eq(s->external_id, "");
    cr_assert_str_eq(s->duration, "");
    Kl_s3_credprov_free(p);

    /* A wrong source secret: STS refuses the signature. */
    write_file(".aws/credentials",
               "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = WRONG\n");
    p = prov(1, NULL, NULL, NULL, "r");
    char msg[600];
    snprintf(msg, sizeof msg,
             "S3 credentials: STS AssumeRole at %s for role " ROLE "r of profile 'r': HTTP 400 "
             "SignatureDoesNotMatch: SignatureDoesNotMatch (request id req-SignatureDoesNotMatch)",
             sts_url(d));
    expect_error(p, KL_EINVAL, msg);
    Kl_s3_credprov_free(p);
    sts_stop(d);
}

/* a -> b -> base: B's temporary credentials sign the AssumeRole of A. */
Test(sts, assume_role_chain, .timeout = 30)
{
    clean_env();
    assume_files();
    sts_double *d = assume_double();
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, "a");
    expect(p, "ASIA-A-1", "secret-A", "token-A-1", "assume role");
    cr_assert_eq(d->n_seen, 2);
    cr_assert_str_eq(d->seen[0].role, ROLE "B");
    cr_assert_str_eq(d->seen[0].access_key, "AKIDBASE");
    cr_assert_str_eq(d->seen[1].role, ROLE "A");
    cr_assert_str_eq(d->seen[1].access_key, "ASIA-B-0");
    cr_assert_str_eq(d->seen[1].sec_token, "token-B-0");
    cr_assert_str_eq(d->seen[0].problem, "");
    cr_assert_str_eq(d->seen[1].problem, "");
    Kl_s3_credprov_free(p);

    /* A profile may be its own source when it holds keys... */
    p = prov(1, NULL, NULL, NULL, "self");
    expect(p, "ASIA-self-2", "secret-self", "token-self-2", "assume role");
    cr_assert_str_eq(d->seen[2].access_key, "AKIDSELF");
    Kl_s3_credprov_free(p);
    /* ... any other loop is refused before STS is asked. */
    p = prov(1, NULL, NULL, NULL, "x");
    expect_error(p, KL_EINVAL,
                 "S3 credentials: source_profile loop: x -> y -> x (a profile may be its own "
                 "source only when it has aws_access_key_id/aws_secret_access_key)");
    Kl_s3_credprov_free(p);
    p = prov(1, NULL, NULL, NULL, "selfloop");
    expect_error(p, KL_EINVAL,
                 "S3 credentials: source_profile loop: selfloop -> selfloop (a profile may be "
                 "its own source only when it has aws_access_key_id/aws_secret_access_key)");
    Kl_s3_credprov_free(p);
    cr_assert_eq(d->n_seen, 3);
    sts_stop(d);
}

/* credential_source=Environment signs with the environment's keys, even
 * when the configuration names the profile (which ignores those keys as
 * credentials of their own). */
Test(sts, assume_role_with_credential_source, .timeout = 30)
{
    clean_env();
    assume_files();
    sts_double *d = assume_double();
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, "env");
    expect(p, "ASIA-env-0", "secret-env", "token-env-0", "assume role");
    cr_assert_str_eq(d->seen[0].access_key, "AKIDENV");
    cr_assert_str_eq(d->seen[0].problem, "");
    Kl_s3_credprov_free(p);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    p = prov(1, NULL, NULL, NULL, "env");
    expect_error(p, KL_EINVAL,
                 "S3 credentials: no credentials from credential_source Environment of profile "
                 "'env' (AWS_ACCESS_KEY_ID is not set)");
    Kl_s3_credprov_free(p);
    sts_stop(d);
}

Test(sts, assume_role_configuration_errors, .timeout = 30)
{
    clean_env();
    assume_files();
    sts_double *d = assume_double();
    char ghost[600];
    snprintf(ghost, sizeof ghost,
             "S3 credentials: source_profile 'nobody' of profile 'ghost' is in neither "
             "%s/.aws/credentials nor %s/.aws/config",
             home, home);
    const struct {
        const char *profile, *msg;
    } bad[] = {
        {"both", "S3 credentials: profile 'both' has both source_profile and credential_source; "
                 "it must have one"},
        {"neither", "S3 credentials: profile 'neither' has role_arn but neither source_profile "
                    "nor credential_source"},
        {"mfa", "S3 credentials: profile 'mfa' has mfa_serial: assuming its role needs an MFA "
                "code typed in, which klstore cannot ask for"},
        {"dur", "S3 credentials: duration_seconds of profile 'dur' is 'an hour'; it must be a "
                "number of seconds from 900 to 43200"},
        {"magic", "S3 credentials: credential_source 'Magic' of profile 'magic' is not valid "
                  "(Environment, Ec2InstanceMetadata or EcsContainer)"},
        {"ecs", "S3 credentials: no credentials from credential_source EcsContainer of profile "
                "'ecs' (neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor _FULL_URI is set)"},
        {"ghost", ghost},
        {"fromempty", "S3 credentials: source_profile 'empty' of profile 'fromempty' has no "
                      "credentials"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kl_s3_credprov *p = prov(1, NULL, NULL, NULL, bad[i].profile);
        expect_error(p, KL_EINVAL, bad[i].msg);
        Kl_s3_credprov_free(p);
    }
    cr_assert_eq(d->n_seen, 0);
    sts_stop(d);
}

/* ---- the order between sources ------------------------------------ */

Test(sts, precedence, .timeout = 30)
{
    clean_env();
    sts_double *d = assume_double();
    write_file(".aws/credentials",
               "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = basesecret\n"
               "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = defsecret\n");
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token_file("token", "jwt"), 1);
    setenv("AWS_ROLE_ARN", ROLE "web", 1);

    /* 1. The environment's keys before anything else. */
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "AKIDENV", "envsecret", NULL, "environment");
    Kl_s3_credprov_free(p);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    cr_assert_eq(d->n_seen, 0);

    /* 2b. Web identity (environment) before the profile's static keys. */
    p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ASIA-web-0", "secret-web", "token-web-0", "web identity");
    Kl_s3_credprov_free(p);

    /* 2a. The profile's assume role before web identity (botocore puts
     * AssumeRoleProvider ahead of AssumeRoleWithWebIdentityProvider). */
    write_file(".aws/config", "[default]\nrole_arn = " ROLE "r\nsource_profile = base\n");
    p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ASIA-r-1", "secret-r", "token-r-1", "assume role");
    Kl_s3_credprov_free(p);

    /* ... but a profile with both role_arn and web_identity_token_file is
     * a web identity profile. */
    static char conf[512];
    snprintf(conf, sizeof conf,
             "[default]\nrole_arn = " ROLE "wp\nweb_identity_token_file = %s\n"
             "source_profile = base\n",
             token_file("t2", "jwt-2"));
    write_file(".aws/config", conf);
    unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    unsetenv("AWS_ROLE_ARN");
    p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ASIA-wp-2", "secret-wp", "token-wp-2", "web identity");
    cr_assert_str_eq(d->seen[2].token, "jwt-2");
    Kl_s3_credprov_free(p);

    /* 2d. Then the static keys. */
    write_file(".aws/config", "");
    p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "AKIDDEF", "defsecret", NULL, "shared credentials file");
    Kl_s3_credprov_free(p);
    cr_assert_eq(d->n_seen, 3);
    sts_stop(d);
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
    if (!ep || !bucket || !ak || !sk)
        cr_skip_test(RGW_SKIP);
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
    if (region)
        cr_assert_eq(kl_config_set(&c, "s3", "region", region, &e), KL_OK, "%s", e.msg);
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
