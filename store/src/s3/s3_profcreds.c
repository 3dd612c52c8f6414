/* s3_profcreds.c -- a profile's credentials as the AWS CLI v2 finds them
 * (see s3_profcreds.h for the order).
 *
 * Mirrors botocore's AssumeRoleProvider and ProfileProviderBuilder
 * (botocore/credentials.py): the same order, the same merging of the two
 * files, the same rules for source_profile loops (a profile may name
 * itself as its source when it holds static keys; any other repeat is a
 * loop).  Reading a file is s3_profile.c's, STS s3_sts.c's, running
 * credential_process s3_proc.c's, the metadata endpoints (for
 * credential_source) s3_meta.c's.  Deliberate differences, for a
 * library in daemons: mfa_serial is refused (it needs a person to type a
 * code), a duration_seconds that is not a number is an error (botocore
 * drops it silently), and the default RoleSessionName is
 * "klstore-session-SECONDS".
 */
#define _GNU_SOURCE
#include "s3/s3_profcreds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "s3/s3_meta.h"
#include "s3/s3_proc.h"
#include "s3/s3_profile.h"
#include "s3/s3_sts.h"

/* Profiles in one source_profile chain, at most. */
#define MAX_CHAIN 16
/* STS takes tokens of up to 20000 characters; a larger file is not one. */
#define MAX_TOKEN_FILE (64 * 1024)

/* One profile, as both files have it. */
typedef struct view {
    const char *name;
    kl_s3_profile_keys cred, conf;
    int found;
} view;

/* A setting merged over the two files: the credentials file wins. */
#define M(v, f) ((v)->cred.f ? (v)->cred.f : (v)->conf.f)

typedef struct ctx {
    const kl_s3_prof_opts *o;
    char *cred_path, *conf_path;
    const view *active; /* decides where STS is */
    const char *visited[MAX_CHAIN];
    int n_visited;
} ctx;

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int is_true(const char *v)
{
    return v && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static kl_status oom(kl_error *err)
{
    return kl_seterr(err, KL_ENOMEM, "S3 credentials: out of memory");
}

/* ------------------------------------------------------------------ */
/* the files                                                           */
/* ------------------------------------------------------------------ */

static kl_status load(const ctx *c, const char *name, view *v, kl_error *err)
{
    memset(v, 0, sizeof *v);
    v->name = name;
    int a = Kl_s3_profile_read(c->cred_path, name, 0, &v->cred);
    int b = Kl_s3_profile_read(c->conf_path, name, 1, &v->conf);
    if (a < 0 || b < 0) return oom(err);
    v->found = a || b;
    return KL_OK;
}

static void unload(view *v)
{
    Kl_s3_profile_keys_free(&v->cred);
    Kl_s3_profile_keys_free(&v->conf);
}

static int has_static(const view *v) { return M(v, key_id) || M(v, secret); }

static int is_assume_role(const view *v)
{
    return M(v, role_arn) && !M(v, web_identity_token_file);
}

/* ------------------------------------------------------------------ */
/* STS                                                                 */
/* ------------------------------------------------------------------ */

static kl_status sts_setup(const ctx *c, kl_s3_sts_endpoint *ep, kl_s3_sts_call *call,
                           kl_error *err)
{
    const view *a = c->active;
    char from[160] = "";
    const char *url = NULL;
    if (!is_true(env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) &&
        !is_true(M(a, ignore_configured_endpoint_urls))) {
        if ((url = env("AWS_ENDPOINT_URL_STS")))
            snprintf(from, sizeof from, "AWS_ENDPOINT_URL_STS");
        else if ((url = env("AWS_ENDPOINT_URL")))
            snprintf(from, sizeof from, "AWS_ENDPOINT_URL");
        else if ((url = M(a, endpoint_url)) && *url)
            snprintf(from, sizeof from, "endpoint_url of profile '%.100s'", a->name);
    }
    const char *region = c->o->region;
    if (!region && !(region = env("AWS_REGION")) && !(region = env("AWS_DEFAULT_REGION")))
        region = M(a, region);
    const char *regional = env("AWS_STS_REGIONAL_ENDPOINTS");
    kl_s3_sts_where w = {region, regional ? regional : M(a, sts_regional_endpoints), url, from};
    memset(call, 0, sizeof *call);
    call->ep = ep;
    call->connect_timeout_ms = c->o->connect_timeout_ms;
    call->timeout_ms = c->o->request_timeout_ms;
    return Kl_s3_sts_endpoint(&w, ep, err);
}

static void default_session_name(char *buf, size_t cap)
{
    snprintf(buf, cap, "klstore-session-%lld", (long long)(kl_now_ms() / 1000));
}

/* ------------------------------------------------------------------ */
/* the sources of one profile                                          */
/* ------------------------------------------------------------------ */

/* The token file, whole (trailing blanks dropped: a JWT has none). */
static kl_status read_token(const char *path, const char *from, char **tok, kl_error *err)
{
    *tok = NULL;
    FILE *f = fopen(path, "re");
    if (!f)
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: cannot read the web identity token file %.200s (%s): %s",
                         path, from, strerror(errno));
    char *buf = malloc(MAX_TOKEN_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_TOKEN_FILE + 1, f) : 0;
    int bad = buf && ferror(f);
    fclose(f);
    if (!buf) return oom(err);
    kl_status st = KL_OK;
    while (n &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    if (bad)
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: cannot read the web identity token file %.200s (%s)", path,
                       from);
    else if (n > MAX_TOKEN_FILE - 1)
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: the web identity token file %.200s (%s) is larger than "
                       "%d KiB; it is not a token",
                       path, from, MAX_TOKEN_FILE / 1024);
    else if (n == 0 || memchr(buf, '\0', n))
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: the web identity token file %.200s (%s) is %s", path, from,
                       n ? "not text" : "empty");
    if (st) {
        OPENSSL_cleanse(buf, MAX_TOKEN_FILE + 1);
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *tok = buf;
    return KL_OK;
}

/* AssumeRoleWithWebIdentity; *got = 0 when no token file is configured. */
static kl_status web_identity(const ctx *c, const view *v, int env_ok, kl_s3_creds *out, int *got,
                              kl_error *err)
{
    *got = 0;
    const char *file = env_ok ? env("AWS_WEB_IDENTITY_TOKEN_FILE") : NULL;
    const char *role = env_ok ? env("AWS_ROLE_ARN") : NULL;
    const char *session = env_ok ? env("AWS_ROLE_SESSION_NAME") : NULL;
    char from[160];
    if (file)
        snprintf(from, sizeof from, "AWS_WEB_IDENTITY_TOKEN_FILE");
    else
        snprintf(from, sizeof from, "web_identity_token_file of profile '%.100s'", v->name);
    if (!file) file = M(v, web_identity_token_file);
    if (!role) role = M(v, role_arn);
    if (!session) session = M(v, role_session_name);
    if (!file || !*file) return KL_OK;
    *got = 1;
    if (!role || !*role)
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: %s is set but no role ARN is: set AWS_ROLE_ARN, or "
                         "role_arn in profile '%.100s'",
                         from, v->name);
    kl_s3_sts_endpoint ep;
    kl_s3_sts_call call;
    kl_status st = sts_setup(c, &ep, &call, err);
    if (st) return st;
    char *token;
    if ((st = read_token(file, from, &token, err))) return st;
    char sname[64], what[300];
    default_session_name(sname, sizeof sname);
    snprintf(what, sizeof what, "role %.120s (token from %s)", role, from);
    call.role_arn = role;
    call.session_name = session && *session ? session : sname;
    call.what = what;
    st = Kl_s3_sts_assume_role_web_identity(&call, token, "web identity", out, err);
    OPENSSL_cleanse(token, strlen(token));
    free(token);
    return st;
}

/* Static keys of one file's copy of the profile; *got = 0 without
 * aws_access_key_id (botocore looks at that key alone). */
static kl_status static_keys(const kl_s3_profile_keys *k, const char *name, const char *path,
                             const char *label, kl_s3_creds *out, int *got, kl_error *err)
{
    *got = k->key_id != NULL;
    if (!*got) return KL_OK;
    if (!k->secret)
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: profile '%.100s' in %.200s has aws_access_key_id but "
                         "not aws_secret_access_key",
                         name, path);
    return Kl_s3_creds_set(out, k->key_id, k->secret, k->token, 0, label, err);
}

/* botocore's profile providers (2-6 of s3_profcreds.h) for v. */
static kl_status profile_sources(const ctx *c, const view *v, int env_ok, kl_s3_creds *out,
                                 kl_error *err)
{
    int got;
    kl_status st = web_identity(c, v, env_ok, out, &got, err);
    if (st || got) return st;
    const char *sso = v->cred.unsupported[0] ? v->cred.unsupported : v->conf.unsupported;
    if (*sso)
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: profile '%.100s' uses %s (IAM Identity Center), which "
                         "klstore does not support; export AWS_ACCESS_KEY_ID, "
                         "AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (e.g. from `aws configure "
                         "export-credentials`), or use credential_process",
                         v->name, sso);
    st = static_keys(&v->cred, v->name, c->cred_path, "shared credentials file", out, &got, err);
    if (st || got) return st;
    const char *cmd = M(v, credential_process);
    if (cmd) {
        char what[160];
        snprintf(what, sizeof what, "credential_process of profile '%.100s'", v->name);
        return Kl_s3_proc_creds(cmd, what, c->o->process_timeout_ms, out, err);
    }
    st = static_keys(&v->conf, v->name, c->conf_path, "shared config file", out, &got, err);
    if (st || got) return st;
    return KL_ENOTFOUND;
}

/* ------------------------------------------------------------------ */
/* assume role                                                         */
/* ------------------------------------------------------------------ */

static kl_status from_meta(kl_status st, kl_s3_meta_keys *k, const char *label, kl_s3_creds *out,
                           kl_error *err)
{
    if (st == KL_OK)
        st = Kl_s3_creds_set(out, k->key_id, k->secret, k->token, k->expires_ms, label, err);
    Kl_s3_meta_keys_free(k);
    return st;
}

static kl_status no_source(const char *src, const char *parent, const char *why, kl_error *err)
{
    return kl_seterr(err, KL_EINVAL,
                     "S3 credentials: no credentials from credential_source %s of profile "
                     "'%.100s' (%s)",
                     src, parent, why);
}

/* The credentials credential_source names (botocore's canonical names:
 * the environment, the container endpoint, instance metadata). */
static kl_status credential_source(const char *src, const char *parent, kl_s3_creds *out,
                                   kl_error *err)
{
    kl_s3_meta_keys k = {0};
    if (strcmp(src, "Environment") == 0) {
        const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY");
        const char *tok = env("AWS_SESSION_TOKEN");
        if (!ak) return no_source(src, parent, "AWS_ACCESS_KEY_ID is not set", err);
        if (!sk)
            return no_source(src, parent,
                             "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not", err);
        return Kl_s3_creds_set(out, ak, sk, tok ? tok : env("AWS_SECURITY_TOKEN"), 0, "environment",
                               err);
    }
    if (strcmp(src, "Ec2InstanceMetadata") == 0) {
        int reachable = 0;
        char why[160] = "disabled by AWS_EC2_METADATA_DISABLED";
        kl_status st = KL_ENOTFOUND;
        if (!is_true(env("AWS_EC2_METADATA_DISABLED")))
            st = Kl_s3_meta_imds(&k, &reachable, why, sizeof why, err);
        if (!reachable) {
            Kl_s3_meta_keys_free(&k);
            char w[200];
            snprintf(w, sizeof w, "instance metadata: %s", why);
            return no_source(src, parent, w, err);
        }
        return from_meta(st, &k, "instance metadata", out, err);
    }
    if (strcmp(src, "EcsContainer") == 0) {
        if (!env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") &&
            !env("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
            return no_source(src, parent,
                             "neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor _FULL_URI is set",
                             err);
        return from_meta(Kl_s3_meta_container(&k, err), &k, "container", out, err);
    }
    return kl_seterr(err, KL_EINVAL,
                     "S3 credentials: credential_source '%.60s' of profile '%.100s' is not "
                     "valid (Environment, Ec2InstanceMetadata or EcsContainer)",
                     src, parent);
}

static kl_status assume_role(ctx *c, const view *v, kl_s3_creds *out, kl_error *err);

/* The credentials of source_profile `name` of profile `parent`. */
static kl_status source_profile(ctx *c, const view *parent, const char *name, kl_s3_creds *out,
                                kl_error *err)
{
    view sv;
    kl_status st = load(c, name, &sv, err);
    if (st) {
        unload(&sv);
        return st;
    }
    if (!sv.found) {
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: source_profile '%.100s' of profile '%.100s' is in "
                       "neither %.150s nor %.150s",
                       name, parent->name, c->cred_path, c->conf_path);
        goto done;
    }
    int seen = 0;
    for (int i = 0; i < c->n_visited; i++) seen |= strcmp(c->visited[i], name) == 0;
    if (seen && (strcmp(name, parent->name) != 0 || !has_static(&sv))) {
        char chain[300] = "";
        size_t l = 0;
        for (int i = 0; i < c->n_visited && l < sizeof chain; i++)
            l += (size_t)snprintf(chain + l, sizeof chain - l, "%.60s -> ", c->visited[i]);
        if (l < sizeof chain) snprintf(chain + l, sizeof chain - l, "%.60s", name);
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: source_profile loop: %s (a profile may be its own "
                       "source only when it has aws_access_key_id/aws_secret_access_key)",
                       chain);
        goto done;
    }
    if (c->n_visited == MAX_CHAIN) {
        st = kl_seterr(err, KL_EINVAL,
                       "S3 credentials: the source_profile chain from profile '%.100s' is longer "
                       "than %d profiles",
                       c->visited[0], MAX_CHAIN);
        goto done;
    }
    c->visited[c->n_visited++] = name;
    if (has_static(&sv) || !is_assume_role(&sv)) {
        st = profile_sources(c, &sv, 0, out, err);
        if (st == KL_ENOTFOUND)
            st = kl_seterr(err, KL_EINVAL,
                           "S3 credentials: source_profile '%.100s' of profile '%.100s' has no "
                           "credentials",
                           name, parent->name);
    } else {
        st = assume_role(c, &sv, out, err);
    }
done:
    unload(&sv);
    return st;
}

static kl_status assume_role(ctx *c, const view *v, kl_s3_creds *out, kl_error *err)
{
    const char *role = M(v, role_arn), *sp = M(v, source_profile);
    const char *cs = M(v, credential_source), *dur = M(v, duration_seconds);
    if (sp && cs)
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: profile '%.100s' has both source_profile and "
                         "credential_source; it must have one",
                         v->name);
    if (!sp && !cs)
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: profile '%.100s' has role_arn but neither "
                         "source_profile nor credential_source",
                         v->name);
    if (M(v, mfa_serial))
        return kl_seterr(err, KL_EINVAL,
                         "S3 credentials: profile '%.100s' has mfa_serial: assuming its role "
                         "needs an MFA code typed in, which klstore cannot ask for",
                         v->name);
    int duration = 0;
    if (dur) {
        char *end;
        errno = 0;
        long d = strtol(dur, &end, 10);
        if (!*dur || *end || errno || d < 900 || d > 43200)
            return kl_seterr(err, KL_EINVAL,
                             "S3 credentials: duration_seconds of profile '%.100s' is '%.30s'; "
                             "it must be a number of seconds from 900 to 43200",
                             v->name, dur);
        duration = (int)d;
    }
    kl_s3_sts_endpoint ep;
    kl_s3_sts_call call;
    kl_status st = sts_setup(c, &ep, &call, err);
    if (st) return st;
    kl_s3_creds src = {0};
    st = cs ? credential_source(cs, v->name, &src, err) : source_profile(c, v, sp, &src, err);
    if (st) return st;
    char sname[64], what[300];
    default_session_name(sname, sizeof sname);
    snprintf(what, sizeof what, "role %.120s of profile '%.100s'", role, v->name);
    const char *session = M(v, role_session_name);
    call.role_arn = role;
    call.session_name = session && *session ? session : sname;
    call.external_id = M(v, external_id);
    call.duration_s = duration;
    call.what = what;
    st = Kl_s3_sts_assume_role(&call, &src, "assume role", out, err);
    Kl_s3_creds_clear(&src);
    return st;
}

/* ------------------------------------------------------------------ */
/* the profile                                                         */
/* ------------------------------------------------------------------ */

kl_status Kl_s3_profcreds_get(const kl_s3_prof_opts *o, const char *profile, int env_web_identity,
                              int must_exist, kl_s3_creds *out, kl_error *err)
{
    memset(out, 0, sizeof *out);
    ctx c = {.o = o};
    view v = {0};
    kl_status st;
    if (Kl_s3_profile_files(&c.cred_path, &c.conf_path) != 0) {
        st = oom(err);
        goto done;
    }
    if ((st = load(&c, profile, &v, err))) goto done;
    c.active = &v;
    if (!v.found && must_exist)
        st = kl_seterr(err, KL_EINVAL, "S3 credentials: profile '%s' is not in %s nor in %s",
                       profile, c.cred_path, c.conf_path);
    else if (v.found && is_assume_role(&v)) {
        c.visited[c.n_visited++] = profile;
        st = assume_role(&c, &v, out, err);
    } else
        st = profile_sources(&c, &v, env_web_identity, out, err);
done:
    unload(&v);
    free(c.cred_path);
    free(c.conf_path);
    return st;
}
