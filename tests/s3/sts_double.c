/* sts_double.c -- see sts_double.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sts_double.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s3/sigv4.h"

static void form_value(const char *body, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = body; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t o = 0;
            for (size_t i = nl + 1; i < len && o + 1 < cap; i++) {
                unsigned hx;
                if (p[i] == '%' && i + 2 < len + 1 && sscanf(p + i + 1, "%2x", &hx) == 1) {
                    out[o++] = (char)hx;
                    i += 2;
                } else {
                    out[o++] = p[i] == '+' ? ' ' : p[i];
                }
            }
            out[o] = '\0';
            return;
        }
        p = amp ? amp + 1 : NULL;
    }
}

/* The secret the double knows for an access key, or NULL. */
static const char *secret_of(const sts_double *d, const char *ak, char *buf, size_t cap)
{
    for (int i = 0; i < 4 && d->keys[i][0]; i++)
        if (strcmp(d->keys[i][0], ak) == 0) return d->keys[i][1];
    if (strncmp(ak, "ASIA-", 5) == 0) {
        const char *dash = strrchr(ak, '-');
        snprintf(buf, cap, "secret-%.*s", (int)(dash - ak - 5), ak + 5);
        return buf;
    }
    return NULL;
}

/* Checks the SigV4 Authorization of rq; "" in problem when it is right. */
static void check_sig(const sts_double *d, const stub_req *rq, sts_seen *s)
{
    char auth[1024], h[4096];
    if (!stub_header(rq, "Authorization", auth, sizeof auth)) {
        snprintf(s->problem, sizeof s->problem, "AssumeRole without Authorization");
        return;
    }
    char cred[256] = "", signed_h[256] = "", sig[80] = "";
    const char *c = strstr(auth, "Credential="), *sh = strstr(auth, "SignedHeaders=");
    const char *sg = strstr(auth, "Signature=");
    if (strncmp(auth, "AWS4-HMAC-SHA256 ", 17) != 0 || !c || !sh || !sg) {
        snprintf(s->problem, sizeof s->problem, "malformed Authorization");
        return;
    }
    sscanf(c + 11, "%255[^,]", cred);
    sscanf(sh + 14, "%255[^,]", signed_h);
    sscanf(sg + 10, "%79s", sig);
    char *slash = strchr(cred, '/');
    if (!slash) {
        snprintf(s->problem, sizeof s->problem, "malformed Credential");
        return;
    }
    *slash = '\0';
    snprintf(s->access_key, sizeof s->access_key, "%.127s", cred);
    snprintf(s->scope, sizeof s->scope, "%.127s", slash + 1);
    char region[64] = "", service[64] = "";
    sscanf(slash + 1, "%*8s/%63[^/]/%63[^/]", region, service);
    char buf[128];
    const char *secret = secret_of(d, cred, buf, sizeof buf);
    if (!secret) {
        snprintf(s->problem, sizeof s->problem, "unknown access key %.100s", cred);
        return;
    }
    /* The headers it says it signed, with the values that came. */
    kl_sigv4_kv hv[8];
    static char vals[8][4096];
    char names[8][64];
    size_t n = 0;
    for (char *tok = strtok(signed_h, ";"); tok && n < 8; tok = strtok(NULL, ";"), n++) {
        snprintf(names[n], sizeof names[n], "%s", tok);
        const char *v = stub_header(rq, tok, h, sizeof h);
        snprintf(vals[n], sizeof vals[n], "%s", v ? v : "");
        hv[n] = (kl_sigv4_kv){names[n], vals[n]};
    }
    char date[32], hash[65];
    stub_header(rq, "X-Amz-Date", date, sizeof date);
    Kl_sha256_hex(rq->body, rq->body_len, hash);
    kl_sigv4_req r = {rq->method, "/", NULL, 0, hv, n, hash, date, region, service};
    kl_sigv4_result res;
    if (Kl_sigv4_sign(&r, cred, secret, &res) != 0) {
        snprintf(s->problem, sizeof s->problem, "cannot sign");
        return;
    }
    if (strcmp(res.signature, sig) != 0)
        snprintf(s->problem, sizeof s->problem, "SignatureDoesNotMatch");
    else if (strcmp(service, "sts") != 0)
        snprintf(s->problem, sizeof s->problem, "signed for service %s", service);
    Kl_sigv4_result_free(&res);
}

static char answer[8192];

static void error_answer(stub_resp *rs, int status, const char *code, const char *msg)
{
    snprintf(answer, sizeof answer,
             "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
             "  <Error>\n    <Type>Sender</Type>\n    <Code>%s</Code>\n"
             "    <Message>%s</Message>\n  </Error>\n"
             "  <RequestId>req-%s</RequestId>\n</ErrorResponse>\n",
             code, msg, code);
    rs->status = status;
    rs->body = answer;
}

static void handle(void *ud, int n, const stub_req *rq, stub_resp *rs)
{
    sts_double *d = ud;
    sts_seen tmp, *s = d->n_seen < STS_MAX_SEEN ? &d->seen[d->n_seen++] : &tmp;
    memset(s, 0, sizeof *s);
    const char *body = rq->body ? rq->body : "";
    form_value(body, "Action", s->action, sizeof s->action);
    form_value(body, "Version", s->version, sizeof s->version);
    form_value(body, "RoleArn", s->role, sizeof s->role);
    form_value(body, "RoleSessionName", s->session, sizeof s->session);
    form_value(body, "WebIdentityToken", s->token, sizeof s->token);
    form_value(body, "ExternalId", s->external_id, sizeof s->external_id);
    form_value(body, "DurationSeconds", s->duration, sizeof s->duration);
    char h[256];
    if (stub_header(rq, "X-Amz-Security-Token", h, sizeof h))
        snprintf(s->sec_token, sizeof s->sec_token, "%.127s", h);
    if (strcmp(rq->method, "POST") != 0 || strcmp(rq->target, "/") != 0)
        snprintf(s->problem, sizeof s->problem, "%.15s %.200s", rq->method, rq->target);
    else if (!stub_header(rq, "Content-Type", h, sizeof h) ||
             strncmp(h, "application/x-www-form-urlencoded", 33) != 0)
        snprintf(s->problem, sizeof s->problem, "Content-Type %.200s", h);
    else if (strcmp(s->version, "2011-06-15") != 0 || !s->role[0] || !s->session[0])
        snprintf(s->problem, sizeof s->problem, "missing Version, RoleArn or RoleSessionName");
    else if (strcmp(s->action, "AssumeRoleWithWebIdentity") == 0) {
        if (stub_header(rq, "Authorization", h, sizeof h))
            snprintf(s->problem, sizeof s->problem, "web identity request is signed");
        else if (!s->token[0])
            snprintf(s->problem, sizeof s->problem, "no WebIdentityToken");
    } else if (strcmp(s->action, "AssumeRole") == 0) {
        check_sig(d, rq, s);
    } else {
        snprintf(s->problem, sizeof s->problem, "unknown Action %.60s", s->action);
    }
    if (s->problem[0]) {
        error_answer(rs, 400,
                     strstr(s->problem, "Signature") ? "SignatureDoesNotMatch" : "InvalidRequest",
                     s->problem);
        return;
    }
    switch (d->fail) {
    case STS_ACCESS_DENIED:
        error_answer(rs, 403, "AccessDenied", "Not authorized to perform sts:AssumeRole");
        return;
    case STS_EXPIRED_TOKEN:
        error_answer(rs, 400, "ExpiredTokenException",
                     "Token expired: current date/time is after exp");
        return;
    case STS_UNAVAILABLE: error_answer(rs, 503, "ServiceUnavailable", "try later"); return;
    case STS_MALFORMED:
        rs->status = 200;
        rs->body = "<AssumeRoleResponse><AssumeRoleResult><Credentials>";
        return;
    default: break;
    }
    const char *name = strrchr(s->role, '/');
    name = name ? name + 1 : s->role;
    char exp[40];
    time_t t = time(NULL) + (d->lifetime_s ? d->lifetime_s : 3600);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(exp, sizeof exp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char ak[128], sk[128], tok[128];
    snprintf(ak, sizeof ak, "ASIA-%.100s-%d", name, n);
    snprintf(sk, sizeof sk, "secret-%.100s", name);
    snprintf(tok, sizeof tok, "token-%.100s-%d", name, n);
    snprintf(answer, sizeof answer,
             "<%sResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
             "  <%sResult>\n"
             "    <AssumedRoleUser>\n      <Arn>%s/%s</Arn>\n"
             "      <AssumedRoleId>AROA:%s</AssumedRoleId>\n    </AssumedRoleUser>\n"
             "    <Credentials>\n"
             "      <AccessKeyId>%s</AccessKeyId>\n"
             "      <SecretAccessKey>%s</SecretAccessKey>\n"
             "%s%s%s"
             "      <Expiration>%s</Expiration>\n"
             "    </Credentials>\n  </%sResult>\n"
             "  <ResponseMetadata><RequestId>req-%d</RequestId></ResponseMetadata>\n"
             "</%sResponse>\n",
             s->action, s->action, s->role, s->session, s->session, d->give_key ? d->give_key : ak,
             d->give_secret ? d->give_secret : sk,
             d->fail == STS_NO_TOKEN || (d->give_key && !d->give_token) ? ""
                                                                        : "      <SessionToken>",
             d->fail == STS_NO_TOKEN || (d->give_key && !d->give_token) ? ""
             : d->give_key                                              ? d->give_token
                                                                        : tok,
             d->fail == STS_NO_TOKEN || (d->give_key && !d->give_token) ? "" : "</SessionToken>\n",
             exp, s->action, n, s->action);
    rs->status = 200;
    rs->body = answer;
}

static char url_buf[64];

void sts_start(sts_double *d)
{
    d->s = stub_start(handle, d);
    snprintf(url_buf, sizeof url_buf, "http://127.0.0.1:%d", stub_port(d->s));
    setenv("AWS_ENDPOINT_URL_STS", url_buf, 1);
}

void sts_stop(sts_double *d)
{
    stub_stop(d->s);
    d->s = NULL;
}

const char *sts_url(const sts_double *d)
{
    (void)d;
    return url_buf;
}
