/* sts_double.h -- AWS STS played on 127.0.0.1 (over stub_http.c) for the
 * credential-chain tests.
 *
 * It checks each request as STS would -- POST / with a form body, the
 * Action and Version, RoleArn and RoleSessionName present, for
 * AssumeRoleWithWebIdentity a WebIdentityToken and no Authorization, for
 * AssumeRole a valid SigV4 signature (recomputed with the library's own
 * sigv4.c from the secret it knows for the access key, service "sts") --
 * and records what it saw.  It answers with credentials named after the
 * role: role ".../NAME" gets AccessKeyId "ASIA-NAME-N" (N: the request's
 * number), SecretAccessKey "secret-NAME", SessionToken "token-NAME-N",
 * expiring `lifetime_s` from now; the secret of "ASIA-NAME-*" keys is
 * known to it, so credentials it gave can sign the next AssumeRole of a
 * chain.  Or it answers what `fail` says. */
#ifndef KL_TEST_STS_DOUBLE_H
#define KL_TEST_STS_DOUBLE_H

#include "stub_http.h"

enum sts_fail {
    STS_OK = 0,
    STS_ACCESS_DENIED, /* 403 ErrorResponse AccessDenied */
    STS_EXPIRED_TOKEN, /* 400 ErrorResponse ExpiredTokenException */
    STS_MALFORMED,     /* 200 with a body that is not XML */
    STS_NO_TOKEN,      /* 200 with Credentials lacking SessionToken */
    STS_UNAVAILABLE,   /* 503 ErrorResponse ServiceUnavailable */
};

/* One request as the double saw it. */
typedef struct sts_seen {
    char action[64], role[256], session[128], token[4096], external_id[64], duration[16];
    char version[16];
    char access_key[128]; /* of the Authorization header, "" if unsigned */
    char sec_token[128];  /* X-Amz-Security-Token, "" if none */
    char scope[128];      /* credential scope: date/region/service/aws4_request */
    char problem[256];    /* what was wrong with the request, "" if nothing */
} sts_seen;

#define STS_MAX_SEEN 16

typedef struct sts_double {
    stub *s;
    int lifetime_s; /* default 3600 */
    enum sts_fail fail;
    /* Long-term keys it knows the secrets of (besides its own ASIA-*). */
    const char *keys[4][2];
    /* Hand out these instead of the role-named ones (the RGW test). */
    const char *give_key, *give_secret, *give_token;
    int n_seen;
    sts_seen seen[STS_MAX_SEEN];
} sts_double;

/* Starts it and points AWS_ENDPOINT_URL_STS at it. */
void sts_start(sts_double *d);
void sts_stop(sts_double *d);
/* The URL it listens on ("http://127.0.0.1:PORT"). */
const char *sts_url(const sts_double *d);

#endif
