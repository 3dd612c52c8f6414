/* test_config.c -- kl_config defaults, the INI loader and kl_config_set,
 * and kl_objstore_open's URL forms.  Includes the spec's Kafka bridge
 * example verbatim: its [s3] and [batcher] must load, [kafka] and
 * [parser] must be left alone. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "klstore.h"
#include "common/spec_example.h"

static char path[64];

static const char *write_ini(const char *text)
{
    strcpy(path, "/tmp/klcfg-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static kl_status load(kl_config *c, const char *text, kl_error *e)
{
    kl_config_init(c);
    kl_status st = kl_config_load_file(c, write_ini(text), e);
    unlink(path);
    return st;
}

Test(config, defaults_as_documented)
{
    kl_config c;
    kl_config_init(&c);
    cr_assert(c.store.object_prefix == NULL || strcmp(c.store.object_prefix, "") == 0);
    cr_assert_eq(c.store.default_page_size, 1000);
    cr_assert_eq(c.store.max_cached_keys, 100000);
    cr_assert_eq(c.store.compact_records_threshold, 1000);
    cr_assert_eq(c.store.compact_size_threshold, 1 << 20);
    cr_assert_eq(c.store.compact_objects_threshold, 100);
    cr_assert_eq(c.store.reader_cache_bytes, 64 << 20);
    cr_assert_eq(c.store.reader_readahead, 8);
    cr_assert_null(c.s3.bucket_name);
    cr_assert_null(c.s3.endpoint);
    cr_assert(c.s3.region == NULL || strcmp(c.s3.region, "us-east-1") == 0);
    cr_assert_eq(c.s3.path_style, 0);
    cr_assert_eq(c.s3.use_default_credentials, 1);
    cr_assert_eq(c.s3.connect_timeout_ms, 5000);
    cr_assert_eq(c.s3.request_timeout_ms, 30000);
    cr_assert_eq(c.s3.max_retries, 5);
    cr_assert_eq(c.s3.verify_tls, 1);
    cr_assert_null(c.s3.ca_bundle);
    cr_assert_eq(c.batch.writer_thread_count, 1);
    cr_assert_eq(c.batch.writer_thread_queue_capacity, 0);
    cr_assert_eq(c.batch.batch_check_interval_millis, 100);
    cr_assert_eq(c.batch.batch_flush_interval_millis, 1000);
    cr_assert_eq(c.batch.batch_flush_record_count_threshold, UINT64_MAX);
    cr_assert_eq(c.batch.batch_flush_size_threshold, 1000000);
    cr_assert_eq(c.has_s3, 0);
    cr_assert_null(c.local_root);
    kl_config_free(&c); /* harmless on a config that only has defaults */
}

/* The example of the spec's "Kafka Bridge" section, as published. */
static char spec_example[4096];
static const char *published_spec_example(void)
{
    snprintf(spec_example, sizeof spec_example, KL_SPEC_EXAMPLE, "http://localhost:4566",
             "my-bucket", "test", "test", "test", "test", "", "127.0.0.1:9092", "");
    return spec_example;
}

Test(config, spec_kafka_bridge_example)
{
    kl_config c;
    kl_error e = {0};
    cr_assert_eq(load(&c, published_spec_example(), &e), KL_OK, "%s", e.msg);
    cr_assert(c.has_s3);
    cr_assert_str_eq(c.s3.endpoint, "http://localhost:4566");
    cr_assert_str_eq(c.s3.bucket_name, "my-bucket");
    cr_assert_str_eq(c.s3.region, "us-east-1");
    cr_assert_eq(c.s3.path_style, 1);
    cr_assert_eq(c.s3.use_default_credentials, 0);
    cr_assert_str_eq(c.s3.access_key, "test");
    cr_assert_str_eq(c.s3.secret_key, "test");
    cr_assert_str_eq(c.s3.security_token, "test");
    cr_assert_str_eq(c.s3.session_token, "test");
    cr_assert_str_eq(c.s3.profile, "test");
    cr_assert_eq(c.store.compact_size_threshold, 1000000);
    cr_assert_eq(c.store.compact_records_threshold, 100);
    cr_assert_eq(c.store.compact_objects_threshold, 10);
    cr_assert_eq(c.batch.writer_thread_count, 1);
    cr_assert_eq(c.batch.writer_thread_queue_capacity, 4096);
    cr_assert_eq(c.batch.batch_check_interval_millis, 100);
    cr_assert_eq(c.batch.batch_flush_interval_millis, 1000);
    cr_assert_eq(c.batch.batch_flush_record_count_threshold, 100000);
    cr_assert_eq(c.batch.batch_flush_size_threshold, 1000000);
    kl_config_free(&c);
    cr_assert_null(c.s3.bucket_name); /* re-initialised */
    cr_assert_eq(c.s3.use_default_credentials, 1);
}

Test(config, quoted_and_bare_values_booleans_comments)
{
    kl_config c;
    kl_error e = {0};
    cr_assert_eq(load(&c,
                      "; comment\n# another\n"
                      "[S3]\n"
                      "  bucket_name = bare-bucket  \n"
                      "object_prefix = \"logs/\"\n"
                      "path_style = YES\n"
                      "verify_tls = 0\n"
                      "use_default_credentials = no\n"
                      "max_retries = 0\n"
                      "request_timeout_ms = \"1500\"\n"
                      "ca_bundle = '/etc/ssl/ca.pem'\n"
                      "reader_cache_bytes = 0 ; inline comment\n"
                      "[local]\n"
                      "root = /var/lib/kl\n"
                      "default_page_size = 50\n"
                      "[other]\nanything = goes\n",
                      &e),
                 KL_OK, "%s", e.msg);
    cr_assert_str_eq(c.s3.bucket_name, "bare-bucket");
    cr_assert_str_eq(c.store.object_prefix, "logs/");
    cr_assert_eq(c.s3.path_style, 1);
    cr_assert_eq(c.s3.verify_tls, 0);
    cr_assert_eq(c.s3.use_default_credentials, 0);
    cr_assert_eq(c.s3.max_retries, 0);
    cr_assert_eq(c.s3.request_timeout_ms, 1500);
    cr_assert_str_eq(c.s3.ca_bundle, "/etc/ssl/ca.pem");
    cr_assert_eq(c.store.reader_cache_bytes, 0);
    cr_assert_str_eq(c.local_root, "/var/lib/kl");
    cr_assert_eq(c.store.default_page_size, 50);
    kl_config_free(&c);
}

Test(config, errors_name_file_line_and_key)
{
    kl_config c;
    kl_error e = {0};
    cr_assert_eq(load(&c, "[s3]\nbucket_name=b\n\nbucket_nmae=typo\n", &e), KL_EINVAL);
    cr_assert(strstr(e.msg, path) && strstr(e.msg, ":4:") && strstr(e.msg, "bucket_nmae") &&
                  strstr(e.msg, "[s3]"),
              "%s", e.msg);
    kl_config_free(&c);

    struct {
        const char *text, *needle;
    } bad[] = {
        {"[s3]\nmax_retries=abc\n", "max_retries"},
        {"[s3]\nmax_retries=-1\n", "non-negative"},
        {"[s3]\nmax_retries=5x\n", "5x"},
        {"[s3]\nmax_retries= \n", "max_retries"},
        {"[s3]\nmax_retries=101\n", "too large"},
        {"[s3]\ndefault_page_size=18446744073709551616\n", "too large"},
        {"[s3]\ndefault_page_size=0\n", "too small"},
        {"[s3]\nconnect_timeout_ms=99999999999999999999999\n", "too large"},
        {"[s3]\npath_style=maybe\n", "boolean"},
        {"[s3]\nregion=\n", "empty"},
        {"[batcher]\nwriter_thread_count=0\n", "writer_thread_count"},
        {"[batcher]\nbatch_size=3\n", "unknown key"},
        {"[local]\nbucket_name=x\n", "unknown key"},
        {"[s3]\nthis line has no equals sign\n", "syntax"},
        {"[s3]\n[oops\n", "syntax"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        e = (kl_error){0};
        cr_assert_eq(load(&c, bad[i].text, &e), KL_EINVAL, "case %zu", i);
        cr_assert(strstr(e.msg, bad[i].needle) && strstr(e.msg, ":2:"), "case %zu: %s", i, e.msg);
        kl_config_free(&c);
    }
}

Test(config, long_lines_are_refused_not_truncated)
{
    char text[1200];
    char tok[1000];
    memset(tok, 'T', sizeof tok - 1);
    tok[sizeof tok - 1] = '\0';
    snprintf(text, sizeof text, "[s3]\nbucket_name=b\nsession_token=%s\n", tok);
    kl_config c;
    kl_error e = {0};
    cr_assert_eq(load(&c, text, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, ":3:") && strstr(e.msg, "longer"), "%s", e.msg);
    kl_config_free(&c);
    /* 190 characters still fit. */
    tok[180] = '\0';
    snprintf(text, sizeof text, "[s3]\nsession_token=%s\n", tok);
    cr_assert_eq(load(&c, text, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(strlen(c.s3.session_token), 180);
    kl_config_free(&c);
}

Test(config, missing_file)
{
    kl_config c;
    kl_config_init(&c);
    kl_error e = {0};
    cr_assert_eq(kl_config_load_file(&c, "/nonexistent/kl.ini", &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "/nonexistent/kl.ini"), "%s", e.msg);
    kl_config_free(&c);
}

Test(config, set_is_the_flag_parser)
{
    kl_config c;
    kl_config_init(&c);
    kl_error e = {0};
    cr_assert_eq(kl_config_set(&c, "s3", "bucket_name", "b1", &e), KL_OK);
    cr_assert_eq(kl_config_set(&c, "s3", "bucket_name", "b2", &e), KL_OK); /* replaces, no leak */
    cr_assert_str_eq(c.s3.bucket_name, "b2");
    cr_assert(c.has_s3);
    cr_assert_eq(kl_config_set(&c, "s3", "endpoint", "", &e), KL_OK);
    cr_assert_null(c.s3.endpoint);
    cr_assert_eq(kl_config_set(&c, "local", "compact_objects_threshold", "7", &e), KL_OK);
    cr_assert_eq(c.store.compact_objects_threshold, 7);
    cr_assert_eq(kl_config_set(&c, "batcher", "batch_flush_record_count_threshold",
                               "18446744073709551615", &e),
                 KL_OK);
    cr_assert_eq(c.batch.batch_flush_record_count_threshold, UINT64_MAX);
    /* The file accepts exactly what the batching writer will start with. */
    cr_assert_eq(kl_config_set(&c, "batcher", "writer_thread_count", "1024", &e), KL_OK);
    cr_assert_eq(kl_config_set(&c, "batcher", "writer_thread_count", "1025", &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "writer_thread_count"), "%s", e.msg);
    cr_assert_eq(kl_config_set(&c, "kafka", "topic", "x", &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "[kafka]"), "%s", e.msg);
    cr_assert_eq(kl_config_set(&c, "s3", "nope", "x", &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "nope"), "%s", e.msg);
    /* Secrets never show up in messages, even bad ones. */
    cr_assert_eq(kl_config_set(&c, "s3", "secret_key", "s3cr3t", &e), KL_OK);
    kl_config_free(&c);
}

Test(config, default_store_dir)
{
    char *old_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
    setenv("XDG_DATA_HOME", "/x/data", 1);
    char *d = kl_default_store_dir();
    cr_assert_str_eq(d, "/x/data/klstore");
    free(d);
    setenv("XDG_DATA_HOME", "relative", 1); /* invalid per XDG: ignored */
    d = kl_default_store_dir();
    cr_assert(strstr(d, "/.local/share/klstore"), "%s", d);
    free(d);
    if (old_xdg) {
        setenv("XDG_DATA_HOME", old_xdg, 1);
        free(old_xdg);
    } else {
        unsetenv("XDG_DATA_HOME");
    }
}

Test(config, open_urls)
{
    kl_config c;
    kl_config_init(&c);
    kl_error e = {0};
    kl_objstore *os;
    char dir[] = "/tmp/klopen-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char url[128];

    cr_assert_eq(kl_objstore_open(dir, &c, &os, &e), KL_OK, "%s", e.msg);
    kl_os_destroy(os);
    snprintf(url, sizeof url, "file://%s", dir);
    cr_assert_eq(kl_objstore_open(url, &c, &os, &e), KL_OK, "%s", e.msg);
    kl_os_destroy(os);
    cr_assert_eq(kl_objstore_open("gs://bucket/x", &c, &os, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "scheme"), "%s", e.msg);
    cr_assert_eq(kl_objstore_open("s3://", &c, &os, &e), KL_EINVAL);
    cr_assert(strstr(e.msg, "bucket"), "%s", e.msg);
    cr_assert_eq(kl_objstore_open("file://", &c, &os, &e), KL_EINVAL);

    /* s3:// sets bucket and verbatim prefix; the store is not contacted. */
    unsetenv("AWS_ENDPOINT_URL_S3");
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9", 1);
    cr_assert_eq(kl_objstore_open("s3://bk/logs/", &c, &os, &e), KL_OK, "%s", e.msg);
    cr_assert_str_eq(c.s3.bucket_name, "bk");
    cr_assert_str_eq(c.store.object_prefix, "logs/");
    cr_assert_str_eq(c.s3.endpoint, "http://127.0.0.1:9");
    cr_assert(c.has_s3);
    cr_assert_str_eq(os->ops->describe(os), "s3://bk");
    kl_os_destroy(os);
    unsetenv("AWS_ENDPOINT_URL");
    cr_assert_eq(kl_objstore_open("s3://bk2/logs", &c, &os, &e), KL_OK, "%s", e.msg);
    cr_assert_str_eq(c.store.object_prefix, "logs");
    kl_os_destroy(os);
    cr_assert_eq(kl_objstore_open("s3://bk3", &c, &os, &e), KL_OK, "%s", e.msg);
    cr_assert_str_eq(c.store.object_prefix, "");
    cr_assert_str_eq(c.s3.bucket_name, "bk3");
    kl_os_destroy(os);

    /* NULL: [local] root wins, then the configured bucket. */
    kl_config_set(&c, "local", "root", dir, &e);
    cr_assert_eq(kl_objstore_open(NULL, &c, &os, &e), KL_OK, "%s", e.msg);
    cr_assert(strstr(os->ops->describe(os), dir), "%s", os->ops->describe(os));
    kl_os_destroy(os);
    kl_config_set(&c, "local", "root", "", &e);
    cr_assert_eq(kl_objstore_open(NULL, &c, &os, &e), KL_OK, "%s", e.msg);
    cr_assert_str_eq(os->ops->describe(os), "s3://bk3");
    kl_os_destroy(os);
    kl_config_free(&c);
    rmdir(dir);
}
