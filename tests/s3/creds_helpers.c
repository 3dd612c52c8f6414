/* creds_helpers.c -- see creds_helpers.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "creds_helpers.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char home[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Each test runs in its own process: its HOME goes when it exits. */
static void remove_home(void)
{
    if (home[0]) nftw(home, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void clean_env(void)
{
    static const char *const vars[] = {"AWS_ACCESS_KEY_ID",
                                       "AWS_SECRET_ACCESS_KEY",
                                       "AWS_SESSION_TOKEN",
                                       "AWS_SECURITY_TOKEN",
                                       "AWS_PROFILE",
                                       "AWS_SHARED_CREDENTIALS_FILE",
                                       "AWS_CONFIG_FILE",
                                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                       "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                       "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                       "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                                       "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                       "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
                                       "AWS_EC2_METADATA_DISABLED",
                                       "AWS_METADATA_SERVICE_TIMEOUT",
                                       "AWS_WEB_IDENTITY_TOKEN_FILE",
                                       "AWS_ROLE_ARN",
                                       "AWS_ROLE_SESSION_NAME",
                                       "AWS_ENDPOINT_URL_STS",
                                       "AWS_ENDPOINT_URL",
                                       "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
                                       "AWS_REGION",
                                       "AWS_DEFAULT_REGION",
                                       "AWS_STS_REGIONAL_ENDPOINTS",
                                       "AWS_CA_BUNDLE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) unsetenv(vars[i]);
    strcpy(home, "/tmp/klhome-XXXXXX");
    cr_assert_not_null(mkdtemp(home));
    setenv("HOME", home, 1);
    atexit(remove_home);
}

const char *write_file(const char *rel, const char *text)
{
    static char paths[8][256];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", home, rel);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/.aws", home);
    mkdir(dir, 0700);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    fputs(text, f);
    fclose(f);
    return p;
}

const char *write_script(const char *rel, const char *text)
{
    const char *p = write_file(rel, text);
    cr_assert_eq(chmod(p, 0755), 0, "%s", p);
    return p;
}

kl_s3_credprov *prov(int use_default, const char *ak, const char *sk, const char *tok,
                     const char *profile)
{
    kl_config c;
    kl_config_init(&c);
    c.s3.use_default_credentials = use_default;
    c.s3.access_key = ak ? strdup(ak) : NULL;
    c.s3.secret_key = sk ? strdup(sk) : NULL;
    c.s3.session_token = tok ? strdup(tok) : NULL;
    c.s3.profile = profile ? strdup(profile) : NULL;
    kl_s3_credprov *p;
    kl_error e = {0};
    cr_assert_eq(Kl_s3_credprov_new(&c.s3, &p, &e), KL_OK, "%s", e.msg);
    kl_config_free(&c);
    return p;
}

void expect(kl_s3_credprov *p, const char *ak, const char *sk, const char *tok, const char *source)
{
    kl_s3_creds cr;
    kl_error e = {0};
    cr_assert_eq(Kl_s3_credprov_get(p, &cr, &e), KL_OK, "%s", e.msg);
    cr_assert_str_eq(cr.access_key, ak);
    cr_assert_str_eq(cr.secret_key, sk);
    if (tok)
        cr_assert_str_eq(cr.token, tok);
    else
        cr_assert_null(cr.token);
    if (source) cr_assert_str_eq(cr.source, source);
    Kl_s3_creds_clear(&cr);
}

kl_status expect_fail(kl_s3_credprov *p, kl_error *e)
{
    kl_s3_creds cr;
    *e = (kl_error){0};
    kl_status st = Kl_s3_credprov_get(p, &cr, e);
    cr_assert_neq(st, KL_OK);
    cr_assert_null(cr.access_key);
    return st;
}

void iso_in(char *buf, size_t cap, int seconds)
{
    time_t t = time(NULL) + seconds;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *token_file(const char *rel, const char *text)
{
    static char path[4][256];
    static int i;
    char *p = path[i++ % 4];
    snprintf(p, 256, "%s", write_file(rel, text));
    return p;
}

void expect_error(kl_s3_credprov *p, kl_status want, const char *msg)
{
    kl_error e;
    cr_assert_eq(expect_fail(p, &e), want, "%s", e.msg);
    cr_assert_str_eq(e.msg, msg);
}
