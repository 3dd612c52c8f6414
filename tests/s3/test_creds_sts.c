/* test_creds_sts.c -- the STS client: where STS is, and what its answers
 * mean (the calls themselves: test_creds_roles.c, against an STS
 * double). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "klstore.h"
#include "s3/s3_creds.h"
#include "s3/s3_sts.h"

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

/* ---- STS answers -------------------------------------------------- */

Test(sts, answers)
{
    const char *good = "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
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
        {500, "oops", KL_EIO,
         "S3 credentials: STS AssumeRole W: HTTP 500 and the answer is not XML"},
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
         KL_EIO,
         "S3 credentials: STS AssumeRole W: HTTP 200 and the credentials have no SessionToken"},
        {200,
         "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId>"
         "<SecretAccessKey>SECRET</SecretAccessKey><SessionToken>T</SessionToken>"
         "<Expiration>soon</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>",
         KL_EIO, "S3 credentials: STS AssumeRole W: the answer's Expiration 'soon' is not a time"},
        {200, "<!DOCTYPE x [<!ENTITY a \"SECRET\">]><AssumeRoleResponse/>", KL_EIO,
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
