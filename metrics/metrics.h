/* metrics.h -- observability shared by klstore's daemons (klstorefs and the
 * Kafka bridge): the Prometheus text format, fixed-bucket histograms, the
 * object store's counters rendered one way for both, and an HTTP endpoint
 * serving /metrics and /healthz.
 *
 * Why a module of its own: both daemons need the same endpoint and the same
 * store metrics, and neither belongs in libklstore (a storage library has no
 * business listening on a port).  The HTTP server is libmicrohttpd's; this
 * file only adds routing, the listen-address syntax and the text format.
 *
 * Thread-safety: histograms are updated with relaxed atomics from any
 * thread.  The server calls the render and health callbacks on its own
 * thread, one request at a time, so they must read the daemon's state in a
 * thread-safe way (atomics, or the daemon's own lock). */
#ifndef KL_METRICS_H
#define KL_METRICS_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "klstore.h"

/* --- the text format (version 0.0.4) --------------------------------- */

/* "# HELP" and "# TYPE" lines of a metric family. */
void km_family(FILE *f, const char *name, const char *type, const char *help);
/* One sample: name{labels} value.  `labels` is NULL or the inside of the
 * braces, e.g. "op=\"get\"", already escaped (km_label escapes a value). */
void km_sample(FILE *f, const char *name, const char *labels, double value);
/* Writes `value` as a label value (backslash, quote and newline escaped)
 * into buf; returns buf.  Longer values are cut to fit. */
char *km_label(char *buf, size_t cap, const char *value);

/* --- histograms ------------------------------------------------------ */

#define KM_MAX_BUCKETS 16
typedef struct km_histogram {
    const double *bounds; /* upper bounds in seconds, ascending; borrowed */
    int n;
    _Atomic uint64_t counts[KM_MAX_BUCKETS + 1]; /* the last is +Inf */
    _Atomic uint64_t sum_us;                     /* sum of observations, microseconds */
} km_histogram;

/* The bucket bounds both daemons use for latencies: 5 ms .. 120 s. */
extern const double km_latency_bounds[];
extern const int km_latency_n;

void km_hist_init(km_histogram *h, const double *bounds, int n);
void km_hist_observe(km_histogram *h, double seconds);
/* The whole family: _bucket{le=...} (cumulative), _sum, _count. */
void km_hist_write(FILE *f, const char *name, const char *help, km_histogram *h);

/* --- the object store ------------------------------------------------ */

/* klstore_store_requests_total{op}, klstore_store_errors_total{op,kind},
 * klstore_store_request_seconds_total{op} and klstore_store_bytes_total
 * {direction="put"|"get"} from kl_os_stats_read(os). */
void km_write_store(FILE *f, kl_objstore *os);

/* --- the endpoint ---------------------------------------------------- */

/* Writes the daemon's metrics.  Runs on the server's thread. */
typedef void (*km_render_fn)(FILE *out, void *ctx);
/* 0 when healthy; otherwise writes why (one line) into `why`. */
typedef int (*km_health_fn)(char *why, size_t cap, void *ctx);

typedef struct km_server km_server;

/* Binds `addr` ("HOST:PORT", "[IPV6]:PORT"; PORT 0 picks a free one)
 * without serving yet: a daemon binds before it forks into the background,
 * so that a port in use is an error on the terminal, and serves after
 * (threads do not survive fork).  NULL on failure, with a one-line reason
 * in err. */
km_server *km_server_bind(const char *addr, char *err, size_t errlen);
/* Serves GET /metrics (render) and GET /healthz (health: 200 "ok" or 503
 * and the reason) on a thread of its own; anything else is 404, other
 * methods 405.  health may be NULL (always healthy).  0, or -1 with a
 * reason in err. */
int km_server_run(km_server *s, km_render_fn render, km_health_fn health, void *ctx, char *err,
                  size_t errlen);
/* km_server_bind and km_server_run in one. */
km_server *km_server_start(const char *addr, km_render_fn render, km_health_fn health, void *ctx,
                           char *err, size_t errlen);
/* The port actually bound (useful with PORT 0). */
int km_server_port(const km_server *s);
/* Stops serving (waits for a request in progress), closes the socket and
 * frees.  NULL is a no-op. */
void km_server_stop(km_server *s);
/* Checks a listen address without binding: 0, or -1 with a reason. */
int km_listen_check(const char *listen, char *err, size_t errlen);
#endif
