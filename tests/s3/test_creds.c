/* test_creds.c -- the S3 credential chain.
 *
 * Static configuration, environment, shared credentials/config files and
 * profiles, the container endpoint and EC2 instance metadata (IMDSv2) --
 * the last two played by a loopback stub server (stub_http.c) that the
 * chain is pointed at through the same variables AWS's SDKs honour.
 * (Assume role, web identity and credential_process: test_creds_sts.c and
 * test_creds_proc.c.)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "klstore.h"
#include "s3/s3_creds.h"
#include "s3/s3_meta.h"
#include "creds_helpers.h"
#include "stub_http.h"

Test(creds, static_configuration)
{
    clean_env();
    setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1); /* ignored: not the default chain */
    setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
    kl_s3_credprov *p = prov(0, "AK", "SK", "TOK", NULL);
    expect(p, "AK", "SK", "TOK", "configuration");
    Kl_s3_credprov_free(p);

    kl_error e = {0};
    p = prov(0, "AK", NULL, NULL, NULL);
    cr_assert_eq(expect_fail(p, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "secret_key"), "%s", e.msg);
    Kl_s3_credprov_free(p);
    p = prov(0, NULL, NULL, NULL, NULL);
    cr_assert_eq(expect_fail(p, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "use_default_credentials=false"), "%s", e.msg);
    Kl_s3_credprov_free(p);

    /* session_token and security_token are one setting. */
    kl_config c;
    kl_config_init(&c);
    c.s3.session_token = strdup("a");
    c.s3.security_token = strdup("b");
    cr_assert_eq(Kl_s3_credprov_new(&c.s3, &p, &e), KL_EINVAL);
    free(c.s3.security_token);
    c.s3.security_token = strdup("a");
    c.s3.access_key = strdup("k");
    c.s3.secret_key = strdup("s");
    c.s3.use_default_credentials = 0;
    cr_assert_eq(Kl_s3_credprov_new(&c.s3, &p, &e), KL_OK, "%s", e.msg);
    expect(p, "k", "s", "a", NULL);
    Kl_s3_credprov_free(p);
    kl_config_free(&c);
}

Test(creds, environment)
{
    clean_env();
    setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
    setenv("AWS_SESSION_TOKEN", "ENVTOKEN", 1);
    write_file(".aws/credentials",
               "[default]\naws_access_key_id=FILEKEY\naws_secret_access_key=FS\n");
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ENVKEY", "ENVSECRET", "ENVTOKEN", "environment");
    Kl_s3_credprov_free(p);

    unsetenv("AWS_SESSION_TOKEN");
    setenv("AWS_SECURITY_TOKEN", "LEGACY", 1);
    p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ENVKEY", "ENVSECRET", "LEGACY", NULL);
    Kl_s3_credprov_free(p);

    unsetenv("AWS_SECRET_ACCESS_KEY");
    kl_error e = {0};
    p = prov(1, NULL, NULL, NULL, NULL);
    cr_assert_eq(expect_fail(p, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "AWS_SECRET_ACCESS_KEY"), "%s", e.msg);
    Kl_s3_credprov_free(p);
}

Test(creds, shared_files_and_profiles)
{
    clean_env();
    char tok[1501];
    memset(tok, 'Q', 1500);
    tok[1500] = '\0';
    char creds[2400];
    snprintf(creds, sizeof creds,
             "# comment\n"
             "[default]\n"
             "aws_access_key_id = DEFKEY\n"
             "aws_secret_access_key = DEFSECRET\n"
             "\n"
             "[long]\n"
             "aws_access_key_id=LONGKEY\n"
             "aws_secret_access_key=LONGSECRET\n"
             "aws_session_token=%s\n"
             "[half]\n"
             "aws_access_key_id=HALF\n",
             tok);
    write_file(".aws/credentials", creds);
    write_file(".aws/config",
               "[default]\nregion = eu-west-1\n"
               "[profile dev]\n"
               "region = us-west-2\n"
               "s3 =\n  addressing_style = path\n"
               "aws_access_key_id = DEVKEY\n"
               "aws_secret_access_key = DEVSECRET\n"
               "[profile assume]\nrole_arn = arn:aws:iam::123:role/x\nsource_profile = default\n"
               "[long]\naws_access_key_id=NOT-A-PROFILE-IN-CONFIG\n");

    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "DEFKEY", "DEFSECRET", NULL, "shared credentials file");
    Kl_s3_credprov_free(p);

    /* Session tokens are long: read whole, not cut at some line limit. */
    p = prov(1, NULL, NULL, NULL, "long");
    expect(p, "LONGKEY", "LONGSECRET", tok, NULL);
    Kl_s3_credprov_free(p);

    /* "[profile dev]" in the config file, chosen by AWS_PROFILE. */
    setenv("AWS_PROFILE", "dev", 1);
    p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "DEVKEY", "DEVSECRET", NULL, "shared config file");
    Kl_s3_credprov_free(p);

    /* An explicit profile beats environment keys (as `aws --profile`);
     * AWS_PROFILE does not. */
    setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
    p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ENVKEY", "ENVSECRET", NULL, "environment");
    Kl_s3_credprov_free(p);
    p = prov(1, NULL, NULL, NULL, "dev");
    expect(p, "DEVKEY", "DEVSECRET", NULL, NULL);
    Kl_s3_credprov_free(p);
    /* ... and with use_default_credentials=false, profile alone works. */
    p = prov(0, NULL, NULL, NULL, "dev");
    expect(p, "DEVKEY", "DEVSECRET", NULL, NULL);
    Kl_s3_credprov_free(p);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");

    kl_error e = {0};
    p = prov(1, NULL, NULL, NULL, "nope");
    cr_assert_eq(expect_fail(p, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "'nope'") && strstr(e.msg, ".aws/credentials"), "%s", e.msg);
    Kl_s3_credprov_free(p);
    p = prov(1, NULL, NULL, NULL, "half");
    cr_assert_eq(expect_fail(p, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "aws_secret_access_key"), "%s", e.msg);
    Kl_s3_credprov_free(p);
    /* role_arn: an assume-role profile, which asks STS (here: nothing
     * listens; test_creds_sts.c has STS). */
    setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1", 1);
    p = prov(1, NULL, NULL, NULL, "assume");
    cr_assert_eq(expect_fail(p, &e), KL_EIO);
    cr_assert(strstr(e.msg, "STS AssumeRole at http://127.0.0.1:1 for role "
                            "arn:aws:iam::123:role/x of profile 'assume'"),
              "%s", e.msg);
    Kl_s3_credprov_free(p);

    /* Other file locations. */
    char alt[300];
    snprintf(alt, sizeof alt, "%s/alt-creds", home);
    FILE *f = fopen(alt, "w");
    fputs("[dev]\naws_access_key_id=ALTKEY\naws_secret_access_key=ALTSECRET\n", f);
    fclose(f);
    setenv("AWS_SHARED_CREDENTIALS_FILE", alt, 1);
    p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ALTKEY", "ALTSECRET", NULL, "shared credentials file");
    Kl_s3_credprov_free(p);
}

/* libinih reads lines through a 200-byte buffer and cuts section names at
 * 49 bytes (s3_profile.c): none of that may show. */
Test(creds, shared_files_past_inih_limits)
{
    clean_env();
    char tok[701], pad[198], longname[81], twin[81];
    memset(tok, 'T', 700);
    tok[700] = '\0';
    memset(pad, 'x', 197); /* "#", pad, " ": inih's cut falls before "aws_" */
    pad[197] = '\0';
    /* Two profile names alike in their first 60 bytes. */
    memset(longname, 'p', 80);
    longname[80] = '\0';
    memcpy(twin, longname, sizeof twin);
    twin[79] = 'q';
    static char creds[4096];
    snprintf(creds, sizeof creds,
             "\xEF\xBB\xBF[default]\n"
             "aws_access_key_id = DEFKEY\n"
             "aws_secret_access_key = DEFSECRET\n"
             "  aws_secret_access_key = INDENTED\n"    /* a continuation: not a key */
             "#%s aws_secret_access_key=FROMCOMMENT\n" /* a comment, however long */
             "[%s]\n"
             "aws_access_key_id=TWINKEY\n"
             "aws_secret_access_key=TWINSECRET\n"
             "[%s]\n"
             "aws_access_key_id=LONGKEY\n"
             "aws_secret_access_key : LONGSECRET\n"
             "aws_session_token =   %s   \n"
             "[%s]\n"
             "aws_access_key_id=AFTER\n",
             pad, twin, longname, tok, twin);
    write_file(".aws/credentials", creds);

    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "DEFKEY", "DEFSECRET", NULL, "shared credentials file");
    Kl_s3_credprov_free(p);
    p = prov(1, NULL, NULL, NULL, longname);
    expect(p, "LONGKEY", "LONGSECRET", tok, NULL);
    Kl_s3_credprov_free(p);
    p = prov(1, NULL, NULL, NULL, twin);
    expect(p, "AFTER", "TWINSECRET", NULL, NULL);
    Kl_s3_credprov_free(p);

    /* The same in the config file's "[profile NAME]" sections. */
    static char conf[4096];
    snprintf(conf, sizeof conf,
             "[profile %s]\naws_access_key_id=CONFKEY\naws_secret_access_key=CONFSECRET\n"
             "aws_session_token=%s\n[profile %s]\naws_access_key_id=NO\n",
             longname, tok, twin);
    write_file(".aws/config", conf);
    write_file(".aws/credentials", "");
    p = prov(1, NULL, NULL, NULL, longname);
    expect(p, "CONFKEY", "CONFSECRET", tok, "shared config file");
    Kl_s3_credprov_free(p);
}

static kl_status meta_parse(const char *json, kl_s3_meta_keys *k, kl_error *e)
{
    return Kl_s3_meta_parse(json, strlen(json), "the endpoint", k, e);
}

Test(creds, metadata_answers)
{
    /* Escapes are decoded, members of nested objects and non-string
     * members are not taken for the ones we want. */
    const char *j =
        "{ \"Code\" : \"Success\", \"Nested\": {\"AccessKeyId\": \"no\", \"a\": [1, \"}\"]},"
        " \"N\": 12.5e3, \"B\": true, \"Z\": null, \"Token\": null,"
        " \"AccessKeyId\": \"AS\\u0049A\\\"x\\\\y\\/z\","
        " \"SecretAccessKey\": \"\\u00e9\\ud83d\\ude42\","
        " \"Expiration\": \"2030-01-02T03:04:05Z\" }";
    kl_s3_meta_keys k;
    kl_error e = {0};
    cr_assert_eq(meta_parse(j, &k, &e), KL_OK, "%s", e.msg);
    cr_assert_str_eq(k.key_id, "ASIA\"x\\y/z");
    cr_assert_str_eq(k.secret, "\xc3\xa9\xf0\x9f\x99\x82");
    cr_assert_null(k.token);
    int64_t want;
    cr_assert_eq(kl_parse_time("2030-01-02T03:04:05Z", &want, NULL), KL_OK);
    cr_assert_eq(k.expires_ms, want);
    Kl_s3_meta_keys_free(&k);

    /* No Expiration (or none we can read): an assumed lifetime, not
     * forever.  No Code is fine; an empty Token is none. */
    int64_t now = kl_now_ms();
    cr_assert_eq(meta_parse("{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\",\"Token\":\"\","
                            "\"Expiration\":\"soon\"}",
                            &k, &e),
                 KL_OK, "%s", e.msg);
    cr_assert_null(k.token);
    cr_assert(k.expires_ms > now && k.expires_ms <= kl_now_ms() + 3600 * 1000);
    Kl_s3_meta_keys_free(&k);

    /* The buffer is read to its length, not to a NUL. */
    const char *twice = "{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\"}{\"x\":";
    cr_assert_eq(Kl_s3_meta_parse(twice, strchr(twice, '}') + 1 - twice, "w", &k, &e), KL_OK, "%s",
                 e.msg);
    cr_assert_str_eq(k.secret, "s");
    Kl_s3_meta_keys_free(&k);

    /* Answers that are not credentials say why, and never quote the body
     * (which may hold a secret). */
    static const struct {
        const char *json, *says;
    } bad[] = {
        {"{\"Code\":\"Failure\",\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\"}",
         "Code 'Failure'"},
        {"{\"AccessKeyId\":\"a\"}", "without AccessKeyId/SecretAccessKey"},
        {"{\"AccessKeyId\":12,\"SecretAccessKey\":\"s\"}", "without AccessKeyId/SecretAccessKey"},
        {"{\"AccessKeyId\":\"\",\"SecretAccessKey\":\"s\"}", "without AccessKeyId/SecretAccessKey"},
        {"[\"AccessKeyId\"]", "not an object"},
        {"", "ends too early"},
        {"{\"SecretAccessKey\": \"SECRETunterminated", "ends too early"},
        {"{\"SecretAccessKey\" \"SECRET\"}", "invalid syntax"},
        {"{\"a\": \"b\" \"SecretAccessKey\": \"SECRET\"}", "invalid syntax"},
        {"{\"SecretAccessKey\": \"SECRET\\q\"}", "invalid syntax"},
        {"{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\"} SECRET", "something follows"},
        {"{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\",\"AccessKeyId\":\"SECRET\"}",
         "a key appears twice"},
        {"{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"SECRET\\u0000x\"}", "\\u0000"},
        {"{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"SECRET\xff\"}", "invalid UTF-8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        e = (kl_error){0};
        cr_assert_eq(meta_parse(bad[i].json, &k, &e), KL_EIO, "%s", bad[i].json);
        cr_assert_null(k.key_id);
        cr_assert(strstr(e.msg, "the endpoint") && strstr(e.msg, bad[i].says), "%s: %s",
                  bad[i].json, e.msg);
        cr_assert_null(strstr(e.msg, "SECRET"), "%s", e.msg);
    }
}

/* ---- IMDS and container endpoints played by a stub ----------------- */

typedef struct meta {
    char expiration[40];
    char last_token_hdr[128];
    char last_auth[128];
    int v1_only; /* token endpoint answers 404 */
    int no_role;
    char s3_token[256]; /* x-amz-security-token seen by the "S3" side */
    char s3_auth[512];
} meta;

static char json_buf[1024];

static void meta_handler(void *ud, int n, const stub_req *rq, stub_resp *rs)
{
    meta *m = ud;
    char h[256];
    if (strcmp(rq->target, "/latest/api/token") == 0) {
        if (m->v1_only || strcmp(rq->method, "PUT") != 0 ||
            !stub_header(rq, "X-aws-ec2-metadata-token-ttl-seconds", h, sizeof h)) {
            rs->status = 404;
            return;
        }
        rs->status = 200;
        rs->body = "IMDSTOKEN";
        return;
    }
    const char *tokh = stub_header(rq, "X-aws-ec2-metadata-token", h, sizeof h);
    snprintf(m->last_token_hdr, sizeof m->last_token_hdr, "%s", tokh ? tokh : "");
    if (!m->v1_only && !tokh && strncmp(rq->target, "/latest/", 8) == 0) {
        rs->status = 401;
        return;
    }
    if (strcmp(rq->target, "/latest/meta-data/iam/security-credentials/") == 0) {
        rs->status = m->no_role ? 404 : 200;
        rs->body = "role+name@x\n";
        return;
    }
    if (strcmp(rq->target, "/latest/meta-data/iam/security-credentials/role%2Bname%40x") == 0 ||
        strcmp(rq->target, "/creds") == 0) {
        const char *auth = stub_header(rq, "Authorization", h, sizeof h);
        snprintf(m->last_auth, sizeof m->last_auth, "%s", auth ? auth : "");
        snprintf(json_buf, sizeof json_buf,
                 "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2024-01-01T00:00:00Z\",\n"
                 "  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAMETA%d\",\n"
                 "  \"SecretAccessKey\" : \"metasecret\",\n  \"Token\" : \"metatoken\",\n"
                 "  \"Expiration\" : \"%s\"\n}",
                 n, m->expiration);
        rs->status = 200;
        rs->body = json_buf;
        return;
    }
    /* Anything else plays S3 and records how it was signed. */
    const char *t = stub_header(rq, "x-amz-security-token", h, sizeof h);
    snprintf(m->s3_token, sizeof m->s3_token, "%s", t ? t : "");
    t = stub_header(rq, "Authorization", h, sizeof h);
    snprintf(m->s3_auth, sizeof m->s3_auth, "%s", t ? t : "");
    rs->status = 200;
    rs->body = "s3body";
}

static void point_imds_at(stub *s)
{
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d/", stub_port(s));
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ep, 1);
}

Test(creds, imds_v2_fetch_cache_and_refresh, .timeout = 30)
{
    clean_env();
    meta m = {0};
    iso_in(m.expiration, sizeof m.expiration, 1);
    stub *s = stub_start(meta_handler, &m);
    point_imds_at(s);
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, NULL);
    kl_s3_creds cr;
    kl_error e = {0};
    cr_assert_eq(Kl_s3_credprov_get(p, &cr, &e), KL_OK, "%s", e.msg);
    cr_assert_str_eq(cr.access_key, "ASIAMETA2");
    cr_assert_str_eq(cr.secret_key, "metasecret");
    cr_assert_str_eq(cr.token, "metatoken");
    cr_assert_str_eq(cr.source, "instance metadata");
    cr_assert_gt(cr.expires_ms, 0);
    Kl_s3_creds_clear(&cr);
    cr_assert_eq(stub_count(s), 3, "token, role, credentials");
    cr_assert_str_eq(m.last_token_hdr, "IMDSTOKEN");

    /* Still valid and just fetched: served from the cache. */
    expect(p, "ASIAMETA2", "metasecret", "metatoken", NULL);
    cr_assert_eq(stub_count(s), 3);

    /* Expired: fetched again; long-lived ones then stay cached. */
    iso_in(m.expiration, sizeof m.expiration, 6 * 3600);
    sleep(2);
    expect(p, "ASIAMETA5", "metasecret", "metatoken", NULL);
    cr_assert_eq(stub_count(s), 6);
    expect(p, "ASIAMETA5", "metasecret", "metatoken", NULL);
    cr_assert_eq(stub_count(s), 6);
    /* The server said ExpiredToken: invalidate forces a new fetch. */
    Kl_s3_credprov_invalidate(p);
    expect(p, "ASIAMETA8", "metasecret", "metatoken", NULL);
    Kl_s3_credprov_free(p);
    stub_stop(s);
}

Test(creds, imds_v1_fallback_and_no_role, .timeout = 30)
{
    clean_env();
    meta m = {.v1_only = 1};
    iso_in(m.expiration, sizeof m.expiration, 3600);
    stub *s = stub_start(meta_handler, &m);
    point_imds_at(s);
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ASIAMETA2", "metasecret", "metatoken", "instance metadata");
    cr_assert_str_eq(m.last_token_hdr, "");
    Kl_s3_credprov_free(p);
    stub_stop(s);

    meta m2 = {.no_role = 1};
    s = stub_start(meta_handler, &m2);
    point_imds_at(s);
    p = prov(1, NULL, NULL, NULL, NULL);
    kl_error e = {0};
    cr_assert_eq(expect_fail(p, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "no IAM role"), "%s", e.msg);
    Kl_s3_credprov_free(p);
    stub_stop(s);
}

Test(creds, imds_disabled_or_absent_gives_a_clear_error, .timeout = 30)
{
    clean_env();
    meta m = {0};
    stub *s = stub_start(meta_handler, &m);
    point_imds_at(s);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, NULL);
    kl_error e = {0};
    cr_assert_eq(expect_fail(p, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "none found") && strstr(e.msg, "AWS_EC2_METADATA_DISABLED"), "%s",
              e.msg);
    cr_assert_eq(stub_count(s), 0);
    Kl_s3_credprov_free(p);
    stub_stop(s);

    /* Nothing listening at the metadata address: not on EC2. */
    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1", 1);
    p = prov(1, NULL, NULL, NULL, NULL);
    cr_assert_eq(expect_fail(p, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "none found") && strstr(e.msg, "access_key"), "%s", e.msg);
    Kl_s3_credprov_free(p);
}

/* A profile that exists but holds no credentials (only a region, say)
 * is passed over, as by the AWS CLI: on EC2 the instance role is used. */
Test(creds, profile_without_credentials_falls_through, .timeout = 30)
{
    clean_env();
    write_file(".aws/config", "[default]\nregion = eu-west-1\n[profile named]\nregion = x\n");
    meta m = {0};
    iso_in(m.expiration, sizeof m.expiration, 3600);
    stub *s = stub_start(meta_handler, &m);
    point_imds_at(s);
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ASIAMETA2", "metasecret", "metatoken", "instance metadata");
    Kl_s3_credprov_free(p);
    p = prov(1, NULL, NULL, NULL, "named");
    expect(p, "ASIAMETA5", "metasecret", "metatoken", "instance metadata");
    Kl_s3_credprov_free(p);
    /* With use_default_credentials=false there is nothing to fall to. */
    p = prov(0, NULL, NULL, NULL, "named");
    kl_error e;
    cr_assert_eq(expect_fail(p, &e), KL_EINVAL);
    cr_assert_str_eq(e.msg, "S3 credentials: profile 'named' has no credentials (no "
                            "aws_access_key_id, role_arn, web_identity_token_file or "
                            "credential_process)");
    Kl_s3_credprov_free(p);
    stub_stop(s);
}

Test(creds, container_full_uri_with_token, .timeout = 30)
{
    clean_env();
    meta m = {0};
    iso_in(m.expiration, sizeof m.expiration, 3600);
    stub *s = stub_start(meta_handler, &m);
    char uri[80];
    snprintf(uri, sizeof uri, "http://127.0.0.1:%d/creds", stub_port(s));
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer abc", 1);
    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ASIAMETA0", "metasecret", "metatoken", "container");
    cr_assert_str_eq(m.last_auth, "Bearer abc");
    Kl_s3_credprov_free(p);

    /* The token file wins over the variable. */
    char tf[300];
    snprintf(tf, sizeof tf, "%s/token", home);
    FILE *f = fopen(tf, "w");
    fputs("from-file\n", f);
    fclose(f);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tf, 1);
    p = prov(1, NULL, NULL, NULL, NULL);
    expect(p, "ASIAMETA1", "metasecret", "metatoken", NULL);
    cr_assert_str_eq(m.last_auth, "from-file");
    Kl_s3_credprov_free(p);
    stub_stop(s);

    /* Plain http to anywhere but loopback/ECS addresses is refused. */
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/creds", 1);
    p = prov(1, NULL, NULL, NULL, NULL);
    kl_error e = {0};
    cr_assert_eq(expect_fail(p, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "FULL_URI"), "%s", e.msg);
    Kl_s3_credprov_free(p);
}

/* End to end: the S3 store signs with metadata credentials and sends the
 * session token. */
Test(creds, s3_requests_carry_the_session_token, .timeout = 30)
{
    clean_env();
    meta m = {0};
    iso_in(m.expiration, sizeof m.expiration, 3600);
    stub *s = stub_start(meta_handler, &m);
    point_imds_at(s);
    kl_config c;
    kl_config_init(&c);
    kl_error e = {0};
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", stub_port(s));
    kl_config_set(&c, "s3", "endpoint", ep, &e);
    kl_config_set(&c, "s3", "bucket_name", "bkt", &e);
    kl_objstore *os;
    cr_assert_eq(kl_objstore_s3_new(&c.s3, &os, &e), KL_OK, "%s", e.msg);
    kl_config_free(&c);
    uint8_t *d;
    size_t n;
    cr_assert_eq(kl_os_get(os, "k", 0, UINT64_MAX, &d, &n, &e), KL_OK, "%s", e.msg);
    free(d);
    cr_assert_str_eq(m.s3_token, "metatoken");
    cr_assert(strstr(m.s3_auth, "Credential=ASIAMETA2/") &&
                  strstr(m.s3_auth, "x-amz-security-token"),
              "%s", m.s3_auth);
    kl_os_destroy(os);
    stub_stop(s);
}
