/* s3_proc.h -- credentials from an external program: the
 * credential_process setting of an AWS profile.
 *
 * The command line is split as the AWS CLI splits it on Linux and macOS
 * (botocore's compat_shell_split, i.e. Python's shlex.split): words at
 * blanks, '...' and "..." quoting, backslash escapes; no shell runs, so
 * no variables, globs, pipes or redirections.  The program is looked up
 * in PATH, inherits the environment, reads /dev/null, and must print a
 * JSON object on stdout:
 *   {"Version": 1, "AccessKeyId": "...", "SecretAccessKey": "...",
 *    "SessionToken": "...", "Expiration": "2024-05-01T12:00:00Z"}
 * (SessionToken and Expiration optional; without Expiration the
 * credentials never expire).  Whether and when to run it is the profile
 * code's (s3_profcreds.c).  Thread-safe. */
#ifndef KL_S3_PROC_H
#define KL_S3_PROC_H

#include <stddef.h>

#include "klstore.h"
#include "s3/s3_keys.h"

/* The program gets this long to finish ... */
#define KL_S3_PROC_TIMEOUT_MS (60 * 1000)
/* ... and may print at most this much on stdout. */
#define KL_S3_PROC_MAX_OUTPUT (64 * 1024)

/* Splits cmd like shlex.split: *argv is a NULL-terminated malloc'd array
 * (Kl_s3_proc_argv_free).  0, or -1 with `why` saying what is wrong (an
 * unclosed quote, a trailing backslash, no words), or -2 out of memory. */
int Kl_s3_proc_split(const char *cmd, char ***argv, char *why, size_t whycap);
void Kl_s3_proc_argv_free(char **argv);

/* Runs cmd and collects its stdout into *out (malloc'd, NUL-terminated,
 * *len bytes; the caller wipes and frees it).  `what` names it in
 * messages ("credential_process of profile 'x'").  Errors, all naming
 * `what` and never quoting stdout: the command cannot be split or run,
 * it ran longer than timeout_ms (then it and its process group are
 * killed), printed more than max_out bytes, or did not exit 0 (the
 * message gives the exit status and the first line of its stderr). */
kl_status Kl_s3_proc_run(const char *cmd, const char *what, long timeout_ms, size_t max_out,
                         char **out, size_t *len, kl_error *err);

/* Reads the program's output json[0..len) into *out (source text
 * "credential process").  KL_EINVAL naming `what` for anything but the
 * JSON above; the message never quotes a secret. */
kl_status Kl_s3_proc_parse(const char *json, size_t len, const char *what, kl_s3_creds *out,
                           kl_error *err);

/* Kl_s3_proc_run with KL_S3_PROC_MAX_OUTPUT, then Kl_s3_proc_parse. */
kl_status Kl_s3_proc_creds(const char *cmd, const char *what, long timeout_ms, kl_s3_creds *out,
                           kl_error *err);

#endif /* KL_S3_PROC_H */
