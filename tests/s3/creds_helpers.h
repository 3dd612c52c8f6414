/* creds_helpers.h -- what the credential-chain suites (test_creds*.c)
 * share: a clean environment with a HOME of its own per test, files in
 * it, a provider from a few settings, and whole-value checks of what it
 * gives.  Criterion runs every test in
 * its own process, so environment changes do not leak between tests. */
#ifndef KL_TEST_CREDS_HELPERS_H
#define KL_TEST_CREDS_HELPERS_H

#include <stddef.h>

#include "klstore.h"
#include "s3/s3_creds.h"

/* The test's HOME (a fresh directory under /tmp, removed at exit). */
extern char home[64];

/* No AWS variable set; HOME in a fresh directory. */
void clean_env(void);
/* Writes text to HOME/rel (creating HOME/.aws); returns the full path in
 * a static buffer (one of 8, reused in turn). */
const char *write_file(const char *rel, const char *text);
/* The same, made executable (a script). */
const char *write_script(const char *rel, const char *text);

kl_s3_credprov *prov(int use_default, const char *ak, const char *sk, const char *tok,
                     const char *profile);
/* Gets credentials and compares them whole (tok NULL: none; source NULL:
 * not checked). */
void expect(kl_s3_credprov *p, const char *ak, const char *sk, const char *tok, const char *source);
/* Gets and expects a failure; returns its status, *e holds the message. */
kl_status expect_fail(kl_s3_credprov *p, kl_error *e);

/* Gets and expects a failure with status `want` and exactly `msg`. */
void expect_error(kl_s3_credprov *p, kl_status want, const char *msg);
/* write_file, the path kept in one of 4 buffers of its own (token
 * files, which tests rewrite while write_file's buffers turn over). */
const char *token_file(const char *rel, const char *text);

/* An IAM role ARN of the test account: ROLE "name". */
#define ROLE "arn:aws:iam::123456789012:role/"

/* ISO 8601 UTC `seconds` from now. */
void iso_in(char *buf, size_t cap, int seconds);

#endif
