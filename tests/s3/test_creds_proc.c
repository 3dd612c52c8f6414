/* test_creds_proc.c -- credential_process: how the command line is split
 * (as the AWS CLI splits it: Python's shlex.split, no shell), running it
 * with a deadline and a cap on its output, reading its JSON, and where it
 * stands in a profile's order -- with small scripts the tests write. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "klstore.h"
#include "s3/s3_creds.h"
#include "s3/s3_proc.h"
#include "creds_helpers.h"

/* Words joined with '|', or "ERR: why". */
static void split(const char *cmd, char *out, size_t cap)
{
    char **argv, why[120];
    int r = Kl_s3_proc_split(cmd, &argv, why, sizeof why);
    if (r) {
        snprintf(out, cap, "ERR: %s", why);
        return;
    }
    size_t o = 0;
    out[0] = '\0';
    for (char **a = argv; *a; a++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", a == argv ? "" : "|", *a);
    Kl_s3_proc_argv_free(argv);
}

/* Expected values are what Python 3's shlex.split gives (and "ERR" where
 * it raises: "No closing quotation", "No escaped character"). */
Test(proc, split_like_shlex)
{
    static const struct {
        const char *cmd, *words;
    } t[] = {
        {"cmd", "cmd"},
        {"  cmd   a  b ", "cmd|a|b"},
        {"cmd 'two words' \"and three words\"", "cmd|two words|and three words"},
        {"cmd \"\"", "cmd|"},
        {"cmd ''x", "cmd|x"},
        {"cmd a\"b c\"d", "cmd|ab cd"},
        {"cmd a\\ b", "cmd|a b"},
        {"cmd \"a\\\"b\" \"c\\\\d\" \"e\\f\"", "cmd|a\"b|c\\d|e\\f"},
        {"cmd 'a\\b'", "cmd|a\\b"},
        {"cmd $HOME *.txt | x > y", "cmd|$HOME|*.txt|||x|>|y"},
        {"cmd \t tab", "cmd|tab"},
        {"cmd #notacomment", "cmd|#notacomment"},
        {"cmd \\\\", "cmd|\\"},
        {"\"\"", ""},
        {"cmd 'unclosed", "ERR: a single quote is not closed"},
        {"cmd \"unclosed", "ERR: a double quote is not closed"},
        {"cmd trailing\\", "ERR: it ends with a backslash"},
        {"", "ERR: it is empty"},
        {"   ", "ERR: it is empty"},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        char got[256];
        split(t[i].cmd, got, sizeof got);
        cr_assert_str_eq(got, t[i].words, "[%s]", t[i].cmd);
    }
}

static kl_status run(const char *cmd, long timeout_ms, size_t max, char **out, kl_error *e)
{
    size_t len;
    *e = (kl_error){0};
    return Kl_s3_proc_run(cmd, "the process", timeout_ms, max, out, &len, e);
}

Test(proc, run, .timeout = 30)
{
    clean_env();
    /* Arguments arrive as split, no shell in between; stdin is empty. */
    const char *echo = write_script("echo.sh", "#!/bin/sh\nfor a; do printf '[%s]' \"$a\"; done\n"
                                               "cat\n");
    char cmd[600], *out;
    kl_error e;
    snprintf(cmd, sizeof cmd, "%s 'two words' $HOME \"*\"", echo);
    cr_assert_eq(run(cmd, 5000, 1000, &out, &e), KL_OK, "%s", e.msg);
    cr_assert_str_eq(out, "[two words][$HOME][*]");
    free(out);

    /* A program in PATH. */
    cr_assert_eq(run("printf %s found-in-path", 5000, 1000, &out, &e), KL_OK, "%s", e.msg);
    cr_assert_str_eq(out, "found-in-path");
    free(out);

    static const struct {
        const char *script;
        kl_status st;
        const char *msg;
    } bad[] = {
        {"#!/bin/sh\necho SECRET\necho 'it broke' >&2\necho more >&2\nexit 3\n", KL_EINVAL,
         "S3 credentials: the process exited with status 3: it broke"},
        {"#!/bin/sh\nkill -TERM $$\n", KL_EINVAL,
         "S3 credentials: the process was killed by signal 15"},
        {"#!/bin/sh\nhead -c 2000 /dev/zero | tr '\\0' x\n", KL_EINVAL,
         "S3 credentials: the process printed more than 1000 bytes; killed it"},
        {"#!/bin/sh\nhead -c 100000000 /dev/zero\n", KL_EINVAL,
         "S3 credentials: the process printed more than 1000 bytes; killed it"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *s = write_script("bad.sh", bad[i].script);
        cr_assert_eq(run(s, 5000, 1000, &out, &e), bad[i].st, "%zu: %s", i, e.msg);
        cr_assert_null(out);
        cr_assert_str_eq(e.msg, bad[i].msg, "%zu: %s", i, e.msg);
    }

    /* It hangs, and what it started holds the pipe: both killed at the
     * deadline, in bounded time. */
    const char *hang = write_script("hang.sh", "#!/bin/sh\nsleep 30 &\nsleep 30\n");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(run(hang, 300, 1000, &out, &e), KL_EIO, "%s", e.msg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_str_eq(e.msg, "S3 credentials: the process did not finish within 300 ms; killed it");
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    cr_assert(ms >= 300 && ms < 3000, "%ld ms", ms);

    /* It exits, leaving a child with the pipe open: its output counts. */
    const char *bg = write_script("bg.sh", "#!/bin/sh\nprintf done\nsleep 30 &\n");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(run(bg, 5000, 1000, &out, &e), KL_OK, "%s", e.msg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_str_eq(out, "done");
    free(out);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    cr_assert(ms < 3000, "%ld ms", ms);

    char nothere[300];
    snprintf(nothere, sizeof nothere, "%s/not-there --flag", home);
    cr_assert_eq(run(nothere, 5000, 1000, &out, &e), KL_EINVAL);
    char want[500];
    snprintf(want, sizeof want,
             "S3 credentials: the process: cannot run '%s/not-there': No such file or directory",
             home);
    cr_assert_str_eq(e.msg, want);
    cr_assert_eq(run("cmd 'open", 5000, 1000, &out, &e), KL_EINVAL);
    cr_assert_str_eq(e.msg, "S3 credentials: the process cannot be split into words: a single "
                            "quote is not closed");
}

Test(proc, parse)
{
    kl_s3_creds c;
    kl_error e = {0};
    const char *j = "{\"Version\": 1, \"AccessKeyId\": \"AK\", \"SecretAccessKey\": \"SK\","
                    " \"SessionToken\": \"TOK\", \"Expiration\": \"2030-01-02T03:04:05Z\"}";
    cr_assert_eq(Kl_s3_proc_parse(j, strlen(j), "P", &c, &e), KL_OK, "%s", e.msg);
    int64_t want;
    cr_assert_eq(kl_parse_time("2030-01-02T03:04:05Z", &want, NULL), KL_OK);
    cr_assert_str_eq(c.access_key, "AK");
    cr_assert_str_eq(c.secret_key, "SK");
    cr_assert_str_eq(c.token, "TOK");
    cr_assert_eq(c.expires_ms, want);
    cr_assert_str_eq(c.source, "credential process");
    Kl_s3_creds_clear(&c);
    /* No SessionToken (or null), no Expiration: long-term keys. */
    j = "{\"Version\": 1.0, \"AccessKeyId\": \"AK\", \"SecretAccessKey\": \"SK\","
        " \"SessionToken\": null, \"AccountId\": \"123\"}";
    cr_assert_eq(Kl_s3_proc_parse(j, strlen(j), "P", &c, &e), KL_OK, "%s", e.msg);
    cr_assert_null(c.token);
    cr_assert_eq(c.expires_ms, 0);
    Kl_s3_creds_clear(&c);

    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"", "S3 credentials: P printed malformed JSON (it ends too early at line 1, column 0)"},
        {"{\"SecretAccessKey\": \"SECRET", "S3 credentials: P printed malformed JSON (it ends too "
                                           "early at line 1, column 27)"},
        {"[1]", "S3 credentials: P printed JSON that is not an object"},
        {"{\"AccessKeyId\": \"AK\", \"SecretAccessKey\": \"SECRET\"}",
         "S3 credentials: P printed no Version (it must be 1)"},
        {"{\"Version\": 2, \"AccessKeyId\": \"AK\", \"SecretAccessKey\": \"SECRET\"}",
         "S3 credentials: P printed an unsupported Version (only 1 is)"},
        {"{\"Version\": \"1\", \"AccessKeyId\": \"AK\", \"SecretAccessKey\": \"SECRET\"}",
         "S3 credentials: P printed an unsupported Version (only 1 is)"},
        {"{\"Version\": 1, \"SecretAccessKey\": \"SECRET\"}",
         "S3 credentials: P printed no AccessKeyId"},
        {"{\"Version\": 1, \"AccessKeyId\": \"AK\"}",
         "S3 credentials: P printed no SecretAccessKey"},
        {"{\"Version\": 1, \"AccessKeyId\": \"AK\", \"SecretAccessKey\": 5}",
         "S3 credentials: P printed a non-string AccessKeyId, SecretAccessKey, SessionToken or "
         "Expiration"},
        {"{\"Version\": 1, \"AccessKeyId\": \"AK\", \"SecretAccessKey\": \"SECRET\", "
         "\"Expiration\": \"tomorrow\"}",
         "S3 credentials: P printed an Expiration that is not an ISO 8601 time ('tomorrow')"},
        {"{\"Version\": 1, \"AccessKeyId\": \"AK\", \"SecretAccessKey\": \"SECRET\", "
         "\"AccessKeyId\": \"AK2\"}",
         "S3 credentials: P printed malformed JSON (a key appears twice at line 1, column 78)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        e = (kl_error){0};
        cr_assert_eq(Kl_s3_proc_parse(bad[i].json, strlen(bad[i].json), "P", &c, &e), KL_EINVAL,
                     "%zu", i);
        cr_assert_null(c.access_key);
        cr_assert_str_eq(e.msg, bad[i].msg, "%zu: %s", i, e.msg);
        cr_assert_null(strstr(e.msg, "SECRET"), "%zu", i);
    }
}

/* Through the chain: a profile's credential_process, its place between
 * the two files' static keys, refresh by Expiration, errors naming the
 * profile. */
Test(proc, in_a_profile, .timeout = 30)
{
    clean_env();
    char exp[40];
    iso_in(exp, sizeof exp, 30);
    static char script[600];
    /* Counts its runs in HOME/runs, prints them in the key. */
    snprintf(
        script, sizeof script,
        "#!/bin/sh\nn=$(cat \"$HOME/runs\" 2>/dev/null || echo 0); n=$((n+1)); "
        "echo $n > \"$HOME/runs\"\n"
        "printf '{\"Version\": 1, \"AccessKeyId\": \"AKPROC%%s-%%s\", \"SecretAccessKey\": "
        "\"procsecret\", \"SessionToken\": \"proctok\", \"Expiration\": \"%s\"}' \"$n\" \"$1\"\n",
        exp);
    const char *cp = write_script("cp.sh", script);
    const char *fail = write_script("fail.sh", "#!/bin/sh\necho 'no credentials for you' >&2\n"
                                               "exit 2\n");
    const char *junk =
        write_script("junk.sh", "#!/bin/sh\necho '{\"SecretAccessKey\": \"SECRET'\n");
    static char conf[2048];
    snprintf(conf, sizeof conf,
             "[profile p]\ncredential_process = %s 'arg one'\n"
             "[profile both]\ncredential_process = %s x\n"
             "aws_access_key_id = AKCONF\naws_secret_access_key = confsecret\n"
             "[profile fail]\ncredential_process = %s\n"
             "[profile junk]\ncredential_process = %s\n",
             cp, cp, fail, junk);
    write_file(".aws/config", conf);
    write_file(".aws/credentials", "[both]\naws_access_key_id = AKCRED\n"
                                   "aws_secret_access_key = credsecret\n");

    kl_s3_credprov *p = prov(1, NULL, NULL, NULL, "p");
    expect(p, "AKPROC1-arg one", "procsecret", "proctok", "credential process");
    expect(p, "AKPROC1-arg one", "procsecret", "proctok", NULL); /* cached */
    Kl_s3_credprov_set_refresh(p, 60 * 1000, 0);
    expect(p, "AKPROC2-arg one", "procsecret", "proctok", NULL); /* 30 s left: run again */
    Kl_s3_credprov_free(p);

    /* Credentials file, then credential_process, then config file. */
    p = prov(1, NULL, NULL, NULL, "both");
    expect(p, "AKCRED", "credsecret", NULL, "shared credentials file");
    Kl_s3_credprov_free(p);
    write_file(".aws/credentials", "");
    p = prov(1, NULL, NULL, NULL, "both");
    expect(p, "AKPROC3-x", "procsecret", "proctok", "credential process");
    Kl_s3_credprov_free(p);

    kl_error e;
    p = prov(1, NULL, NULL, NULL, "fail");
    cr_assert_eq(expect_fail(p, &e), KL_EINVAL);
    cr_assert_str_eq(e.msg, "S3 credentials: credential_process of profile 'fail' exited with "
                            "status 2: no credentials for you");
    Kl_s3_credprov_free(p);
    p = prov(1, NULL, NULL, NULL, "junk");
    cr_assert_eq(expect_fail(p, &e), KL_EINVAL);
    cr_assert_str_eq(e.msg, "S3 credentials: credential_process of profile 'junk' printed "
                            "malformed JSON (invalid syntax at line 1, column 27)");
    Kl_s3_credprov_free(p);

    /* Credentials already expired when it prints them: refused. */
    iso_in(exp, sizeof exp, -60);
    static char old[400];
    snprintf(old, sizeof old,
             "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": "
             "\"S\", \"Expiration\": \"%s\"}'\n",
             exp);
    write_script("cp.sh", old);
    p = prov(1, NULL, NULL, NULL, "p");
    cr_assert_eq(expect_fail(p, &e), KL_EIO);
    cr_assert_str_eq(e.msg, "S3 credentials: the credential process gave credentials that have "
                            "already expired (is the clock right?)");
    Kl_s3_credprov_free(p);
}
