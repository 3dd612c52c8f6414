/* test_config.c -- klstore-kafka-bridge's configuration handling: every
 * missing required setting, an unknown librdkafka key, bad parser syntax
 * and other bad values end with exit code 2 and a message naming the
 * setting, both with --check and at a real start (which must not get as
 * far as connecting); quoted and bare values mean the same; the command
 * line (--help, --version, usage errors); the librdkafka defaults the
 * bridge changes, and that the file overrides them. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_config.h"
#include "harness.h"

static char dir[256], ini[300], log_path[300];

static void setup(void)
{
    ht_tmpdir(dir, sizeof dir);
    snprintf(ini, sizeof ini, "%s/b.ini", dir);
    snprintf(log_path, sizeof log_path, "%s/out.log", dir);
}

static void teardown(void) { ht_rmtree(dir); }

TestSuite(bridge_config, .init = setup, .fini = teardown, .timeout = 60);

/* A complete configuration with one line replaced (or removed, when the
 * replacement is ""): lines are matched by their "key=" prefix. */
static const char *const BASE[] = {"[local]",
                                   "root=%s/store",
                                   "[kafka]",
                                   "topic=\"inbound\"",
                                   "group.id=\"g\"",
                                   "bootstrap.servers=\"127.0.0.1:1\"",
                                   "auto.offset.reset=earliest",
                                   "[parser]",
                                   "nonce_parser=\"RecordOffset\"",
                                   "keyspace_parser=\"Static(ks)\"",
                                   "key_parser=\"RecordPartition\"",
                                   NULL};

static void write_config(const char *match, const char *replacement)
{
    FILE *f = fopen(ini, "w");
    cr_assert_not_null(f);
    for (int i = 0; BASE[i]; i++) {
        const char *line = BASE[i];
        if (match && !strncmp(line, match, strlen(match))) line = replacement;
        if (!strcmp(line, "root=%s/store"))
            fprintf(f, "root=%s/store\n", dir);
        else if (*line)
            fprintf(f, "%s\n", line);
    }
    fclose(f);
}

static int run_bridge(int check)
{
    const char *argv[] = {BRIDGE_BIN, check ? "--check" : ini, check ? ini : NULL, NULL};
    remove(log_path);
    return ht_run(argv, log_path, 20000);
}

/* Exit code 2 and a message containing `needle`, with and without --check. */
static void expect_config_error(const char *needle)
{
    for (int check = 1; check >= 0; check--) {
        int rc = run_bridge(check);
        char *out = ht_read_file(log_path);
        cr_assert_eq(rc, 2, "%s: exit code %d, expected 2; output:\n%s",
                     check ? "--check" : "start", rc, out);
        cr_assert(out && strstr(out, needle), "output lacks '%s':\n%s", needle, out);
        cr_assert(strstr(out, "configuration error") || strstr(out, "error"), "%s", out);
        free(out);
    }
}

Test(bridge_config, valid_config_checks_ok)
{
    write_config(NULL, NULL);
    cr_assert_eq(run_bridge(1), 0);
    cr_assert(ht_file_contains(log_path, "configuration OK"));
}

Test(bridge_config, quoted_and_bare_values_agree)
{
    FILE *f = fopen(ini, "w");
    fprintf(f,
            "[local]\nroot='%s/store'\n[kafka]\ntopic=inbound\ngroup.id=g\n"
            "bootstrap.servers=127.0.0.1:1\noffset_commit_interval_seconds=\"5\"\n"
            "[parser]\nkeyspace_parser=Static(ks)\nkey_parser='RecordKey'\n"
            "on_error=\"skip\"\n",
            dir);
    fclose(f);
    cr_assert_eq(run_bridge(1), 0);
    char *out = ht_read_file(log_path);
    cr_assert(strstr(out, "topic=inbound group.id=g bootstrap.servers=127.0.0.1:1 "
                          "keyspace=Static(ks) key=RecordKey nonce=None "
                          "timestamp=None on_error=skip commit every 5s"),
              "%s", out);
    free(out);
}

Test(bridge_config, missing_store)
{
    write_config("root=", "");
    expect_config_error("no store");
}

Test(bridge_config, missing_topic)
{
    write_config("topic=", "");
    expect_config_error("[kafka] topic is required");
}

Test(bridge_config, missing_group_id)
{
    write_config("group.id=", "");
    expect_config_error("group.id is required");
}

Test(bridge_config, missing_bootstrap_servers)
{
    write_config("bootstrap.servers=", "");
    expect_config_error("bootstrap.servers is required");
}

Test(bridge_config, missing_keyspace_parser)
{
    write_config("keyspace_parser=", "");
    expect_config_error("keyspace_parser is required");
}

Test(bridge_config, missing_key_parser)
{
    write_config("key_parser=", "");
    expect_config_error("key_parser is required");
}

Test(bridge_config, unknown_kafka_key)
{
    write_config("auto.offset.reset=", "auto.offset.rest=earliest");
    expect_config_error("[kafka] auto.offset.rest: unknown setting");
}

Test(bridge_config, invalid_kafka_value)
{
    write_config("auto.offset.reset=", "auto.offset.reset=sometimes");
    expect_config_error("auto.offset.reset");
}

Test(bridge_config, bad_parser_syntax)
{
    write_config("keyspace_parser=", "keyspace_parser=Static(ks");
    expect_config_error("keyspace_parser: 'Static(ks' is missing its closing ')'");
    write_config("key_parser=", "key_parser=RecordKey(x)");
    expect_config_error("key_parser: 'RecordKey(x)' takes no argument");
    write_config("nonce_parser=", "nonce_parser=RecordOffsets");
    expect_config_error("nonce_parser: unknown parser 'RecordOffsets'");
    write_config("nonce_parser=", "nonce_parser=RecordHeaderBigEndian");
    expect_config_error("needs an argument");
}

Test(bridge_config, bad_bridge_values)
{
    write_config("topic=", "topic=inbound\noffset_commit_interval_seconds=0");
    expect_config_error("offset_commit_interval_seconds");
    write_config("key_parser=", "key_parser=RecordKey\non_error=ignore");
    expect_config_error("on_error");
    write_config("key_parser=", "key_parser=RecordKey\nbogus=1");
    expect_config_error("[parser] bogus: unknown setting");
    write_config("[parser]", "[parsers]");
    expect_config_error("unknown section [parsers]");
    write_config("root=", "root=x\nroots=y");
    expect_config_error("roots"); /* libklstore's own strictness */
    write_config("topic=", "topic=inbound\npartition.assignment.strategy=cooperative-sticky");
    expect_config_error("cooperative");
}

Test(bridge_config, bad_metrics_values)
{
    write_config("key_parser=", "key_parser=RecordKey\n[metrics]\nlisten=9464");
    expect_config_error("[metrics] listen: metrics listen address '9464' is not HOST:PORT or "
                        "[IPV6]:PORT");
    write_config("key_parser=", "key_parser=RecordKey\n[metrics]\nlisten=127.0.0.1:70000");
    expect_config_error("[metrics] listen: metrics listen address '127.0.0.1:70000'");
    write_config("key_parser=", "key_parser=RecordKey\n[metrics]\nhealth_commit_intervals=0");
    expect_config_error("[metrics] health_commit_intervals: '0' is not a whole number from 1 "
                        "to 1000");
    write_config("key_parser=", "key_parser=RecordKey\n[metrics]\nport=9464");
    expect_config_error("[metrics] port: unknown setting (known: listen, "
                        "health_commit_intervals)");
    /* A port in use: the bridge names it and exits 2 (--check does not bind). */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    char line[128], want[160];
    snprintf(line, sizeof line, "key_parser=RecordKey\n[metrics]\nlisten=127.0.0.1:%d",
             ntohs(a.sin_port));
    write_config("key_parser=", line);
    cr_assert_eq(run_bridge(1), 0, "--check only checks the address");
    cr_assert_eq(run_bridge(0), 2);
    snprintf(want, sizeof want, "metrics endpoint 127.0.0.1:%d: Address already in use",
             ntohs(a.sin_port));
    char *out = ht_read_file(log_path);
    cr_assert(out && strstr(out, want), "output lacks '%s':\n%s", want, out);
    free(out);
    close(fd);
}

Test(bridge_config, forced_offset_settings_are_overridden)
{
    write_config("topic=", "topic=inbound\nenable.auto.commit=true");
    cr_assert_eq(run_bridge(1), 0);
    cr_assert(ht_file_contains(log_path, "enable.auto.commit=true is ignored"));
}

/* The value librdkafka will run with for `key`, after loading ini. */
static void kafka_setting(const char *key, char *buf, size_t cap)
{
    br_config c;
    char err[1024];
    cr_assert_eq(br_config_load(ini, &c, err, sizeof err), 0, "%s", err);
    rd_kafka_conf_t *k = br_config_take_kafka_conf(&c);
    cr_assert_eq(rd_kafka_conf_get(k, key, buf, &cap), RD_KAFKA_CONF_OK);
    rd_kafka_conf_destroy(k);
    br_config_free(&c);
}

Test(bridge_config, kafka_defaults_and_overrides)
{
    char v[64];
    write_config(NULL, NULL);
    kafka_setting("queued.min.messages", v, sizeof v);
    cr_assert_str_eq(v, "1000000");
    kafka_setting("enable.auto.commit", v, sizeof v);
    cr_assert_str_eq(v, "false");
    write_config("topic=", "topic=inbound\nqueued.min.messages=5000");
    kafka_setting("queued.min.messages", v, sizeof v);
    cr_assert_str_eq(v, "5000");
}

Test(bridge_config, command_line)
{
    const char *help[] = {BRIDGE_BIN, "--help", NULL};
    cr_assert_eq(ht_run(help, log_path, 5000), 0);
    cr_assert(ht_file_contains(log_path, "Exit codes:"));
    cr_assert(ht_file_contains(log_path, "5  stopped at a record"));
    const char *version[] = {BRIDGE_BIN, "--version", NULL};
    cr_assert_eq(ht_run(version, log_path, 5000), 0);
    cr_assert(ht_file_contains(log_path, "librdkafka 2."));
    const char *none[] = {BRIDGE_BIN, NULL};
    cr_assert_eq(ht_run(none, log_path, 5000), 2);
    const char *bad[] = {BRIDGE_BIN, "--frobnicate", "x.ini", NULL};
    cr_assert_eq(ht_run(bad, log_path, 5000), 2);
    const char *missing[] = {BRIDGE_BIN, "/nonexistent/b.ini", NULL};
    cr_assert_eq(ht_run(missing, log_path, 5000), 2);
}
