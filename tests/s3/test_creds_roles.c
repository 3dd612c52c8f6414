/* test_creds_roles.c -- assume-role profiles (source_profile chains and
 * loops, credential_source), where STS is from the settings, the order
 * between the credential sources, and every way a role can fail --
 * against an STS double on 127.0.0.1 (sts_double.c) that checks each
 * request, the SigV4 signature of AssumeRole included.  Web identity:
 * test_creds_webid.c. */
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

/* ---- where STS is, from the settings --------------------------- */

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
    cr_assert_str_eq(s->problem, ""); /* the signature checked out */
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
