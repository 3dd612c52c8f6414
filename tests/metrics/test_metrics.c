/* test_metrics.c -- the daemons' metrics module (metrics/): the text
 * format and histograms byte for byte, and the HTTP endpoint for real --
 * bound on 127.0.0.1, scraped with curl -- including its refusals. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/shell.h"
#include "metrics.h"

static char *render_to_string(void (*fn)(FILE *, void *), void *ctx)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    fn(f, ctx);
    fclose(f);
    return out;
}

static void two_samples(FILE *f, void *ctx)
{
    char v[64];
    km_family(f, "demo_total", "counter", "A demo counter.");
    km_sample(f, "demo_total", NULL, 3);
    char labels[128];
    snprintf(labels, sizeof labels, "name=\"%s\"", km_label(v, sizeof v, "a\"b\\c\nd"));
    km_sample(f, "demo_total", labels, *(double *)ctx);
}

Test(metrics, text_format_and_label_escaping)
{
    double x = 0.25;
    char *got = render_to_string(two_samples, &x);
    cr_assert_str_eq(got, "# HELP demo_total A demo counter.\n"
                          "# TYPE demo_total counter\n"
                          "demo_total 3\n"
                          "demo_total{name=\"a\\\"b\\\\c\\nd\"} 0.25\n");
    free(got);
}

static void hist(FILE *f, void *ctx) { km_hist_write(f, "lat_seconds", "Latency.", ctx); }

Test(metrics, histogram_buckets_are_cumulative_with_sum_and_count)
{
    static const double bounds[] = {0.1, 1};
    km_histogram h;
    km_hist_init(&h, bounds, 2);
    km_hist_observe(&h, 0.05);
    km_hist_observe(&h, 0.1); /* on a bound: that bucket (le) */
    km_hist_observe(&h, 0.5);
    km_hist_observe(&h, 7);
    char *got = render_to_string(hist, &h);
    cr_assert_str_eq(got, "# HELP lat_seconds Latency.\n"
                          "# TYPE lat_seconds histogram\n"
                          "lat_seconds_bucket{le=\"0.1\"} 2\n"
                          "lat_seconds_bucket{le=\"1\"} 3\n"
                          "lat_seconds_bucket{le=\"+Inf\"} 4\n"
                          "lat_seconds_sum 7.65\n"
                          "lat_seconds_count 4\n");
    free(got);
}

typedef struct {
    int healthy;
} app;

static void app_render(FILE *f, void *ctx)
{
    km_family(f, "app_up", "gauge", "Always 1.");
    km_sample(f, "app_up", NULL, 1);
}

static int app_health(char *why, size_t cap, void *ctx)
{
    if (((app *)ctx)->healthy) return 0;
    snprintf(why, cap, "no commit for 3 intervals");
    return 1;
}

/* The body and then the status of `curl OPTS http://127.0.0.1:PORT/PATH`. */
static char *scrape(int port, const char *opts, const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "curl -s -m 5 -w '%%{http_code}\\n' %s http://127.0.0.1:%d%s", opts,
             port, path);
    return kl_sh(cmd, NULL);
}

Test(metrics, endpoint_serves_metrics_and_health_and_refuses_the_rest)
{
    app a = {.healthy = 1};
    char err[256] = "";
    km_server *s = km_server_start("127.0.0.1:0", app_render, app_health, &a, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    int port = km_server_port(s);
    cr_assert_gt(port, 0);
    char *got = scrape(port, "", "/metrics");
    cr_assert_str_eq(got, "# HELP app_up Always 1.\n# TYPE app_up gauge\napp_up 1\n200\n");
    free(got);
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "curl -s -m 5 -o /dev/null -D - http://127.0.0.1:%d/metrics"
             " | grep -i '^content-type' | tr -d '\\r'",
             port);
    got = kl_sh(cmd, NULL);
    cr_assert_str_eq(got, "Content-Type: text/plain; version=0.0.4; charset=utf-8\n");
    free(got);
    got = scrape(port, "", "/healthz");
    cr_assert_str_eq(got, "ok\n200\n");
    free(got);
    a.healthy = 0;
    got = scrape(port, "", "/healthz");
    cr_assert_str_eq(got, "no commit for 3 intervals\n503\n");
    free(got);
    got = scrape(port, "", "/nothing");
    cr_assert_str_eq(got, "not found: try /metrics or /healthz\n404\n");
    free(got);
    got = scrape(port, "-X POST", "/metrics");
    cr_assert_str_eq(got, "only GET\n405\n");
    free(got);

    /* The same port again: the system's reason, not a bare failure. */
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    cr_assert_null(km_server_start(listen, app_render, NULL, NULL, err, sizeof err));
    char want[128];
    snprintf(want, sizeof want, "metrics endpoint %s: Address already in use", listen);
    cr_assert_str_eq(err, want);
    km_server_stop(s);
}

Test(metrics, listen_addresses_are_checked_with_a_clear_reason)
{
    char err[256];
    cr_assert_eq(km_listen_check("127.0.0.1:9464", err, sizeof err), 0, "%s", err);
    cr_assert_eq(km_listen_check("[::1]:9464", err, sizeof err), 0, "%s", err);
    const char *bad[] = {"9464",  "127.0.0.1:", "127.0.0.1:65536",
                         ":9464", "[::1]9464",  "127.0.0.1:94x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(km_listen_check(bad[i], err, sizeof err), -1, "%s", bad[i]);
        char want[160];
        snprintf(want, sizeof want, "metrics listen address '%s' is not HOST:PORT or [IPV6]:PORT",
                 bad[i]);
        cr_assert_str_eq(err, want);
    }
    cr_assert_eq(km_listen_check("no-such-host.invalid:9464", err, sizeof err), -1);
    cr_assert(strstr(err, "metrics listen address 'no-such-host.invalid:9464': ") == err, "%s",
              err);
}

static void store_metrics(FILE *f, void *os) { km_write_store(f, os); }

Test(metrics, store_counters_render_by_operation_and_kind)
{
    char dir[] = "/tmp/kl-metrics-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    kl_objstore *os;
    kl_error e = {0};
    cr_assert_eq(kl_objstore_local_new(dir, &os, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(kl_os_put(os, "a", "abc", 3, 0, &e), KL_OK);
    uint8_t *d;
    size_t n;
    cr_assert_eq(kl_os_get(os, "missing", 0, 10, &d, &n, &e), KL_ENOTFOUND);
    char *got = render_to_string(store_metrics, os);
    /* Times vary: compare everything else whole. */
    char *cmd;
    cr_assert(asprintf(&cmd, "printf '%%s' '%s' | grep -v '^klstore_store_request_seconds_total{'",
                       got) > 0);
    char *fixed = kl_sh(cmd, NULL);
    cr_assert_str_eq(
        fixed,
        "# HELP klstore_store_requests_total Object-store operations completed, by operation.\n"
        "# TYPE klstore_store_requests_total counter\n"
        "klstore_store_requests_total{op=\"put\"} 1\n"
        "klstore_store_requests_total{op=\"get\"} 1\n"
        "klstore_store_requests_total{op=\"head\"} 0\n"
        "klstore_store_requests_total{op=\"list\"} 0\n"
        "klstore_store_requests_total{op=\"del\"} 0\n"
        "klstore_store_requests_total{op=\"claim\"} 0\n"
        "klstore_store_requests_total{op=\"claim_target\"} 0\n"
        "klstore_store_requests_total{op=\"publish\"} 0\n"
        "klstore_store_requests_total{op=\"unclaim\"} 0\n"
        "# HELP klstore_store_errors_total Object-store operations that failed, by operation and "
        "kind (not_found of get/head is often an expected answer).\n"
        "# TYPE klstore_store_errors_total counter\n"
        "klstore_store_errors_total{op=\"get\",kind=\"not_found\"} 1\n"
        "# HELP klstore_store_request_seconds_total Time spent in object-store operations, by "
        "operation.\n"
        "# TYPE klstore_store_request_seconds_total counter\n"
        "# HELP klstore_store_bytes_total Object bodies sent to (put) and received from (get) the "
        "store.\n"
        "# TYPE klstore_store_bytes_total counter\n"
        "klstore_store_bytes_total{direction=\"put\"} 3\n"
        "klstore_store_bytes_total{direction=\"get\"} 0\n");
    free(fixed);
    free(cmd);
    free(got);
    kl_os_destroy(os);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    free(kl_sh(rm, NULL));
}
