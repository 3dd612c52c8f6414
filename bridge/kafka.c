/* kafka.c -- creating the Kafka consumer and wiring librdkafka's
 * callbacks into the bridge: rebalances (rebalance.c), errors, logs.
 *
 * librdkafka retries connections and requests by itself, so most errors
 * are informational: a broker outage shows up as a burst of transport
 * errors, which are logged at most once per 30 s per error code so that a
 * long outage does not flood the log.  Only __FATAL ends the bridge
 * (exit code 3). */
#include <stdio.h>
#include <string.h>

#include "bridge.h"
#include "log.h"

#define ERROR_LOG_INTERVAL_MS 30000

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    br_bridge *b = opaque;
    static int last;
    static long long last_at;
    static unsigned suppressed;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof why);
        br_fatal(b, BR_EXIT_KAFKA, "fatal Kafka error: %s", why);
        return;
    }
    long long now = kl_mono_ms();
    if (err == last && now - last_at < ERROR_LOG_INTERVAL_MS) {
        suppressed++;
        return;
    }
    br_log(BR_WARN, "kafka: %s: %s%s", rd_kafka_err2name(err), reason,
           err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN
               ? " (librdkafka keeps reconnecting; consumption resumes when "
                 "a broker is back)"
               : "");
    if (suppressed) br_log(BR_WARN, "kafka: (%u similar errors not shown)", suppressed);
    last = err;
    last_at = now;
    suppressed = 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    /* syslog levels: 0..3 errors, 4 warning, 5..6 info, 7 debug */
    br_log(level <= 3   ? BR_ERROR
           : level == 4 ? BR_WARN
           : level <= 6 ? BR_INFO
                        : BR_DEBUG,
           "librdkafka: %s: %s", fac, buf);
}

int br_kafka_open(br_bridge *b, rd_kafka_conf_t *conf, char *err, size_t errlen)
{
    rd_kafka_conf_set_opaque(conf, b);
    rd_kafka_conf_set_rebalance_cb(conf, br_rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (!(b->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen))) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    /* Everything (messages, rebalances, errors) through consumer_poll. */
    rd_kafka_poll_set_consumer(b->rk);
    b->commitq = rd_kafka_queue_new(b->rk);
    return 0;
}

int br_kafka_subscribe(br_bridge *b)
{
    const br_config *c = b->cfg;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->n_topics);
    for (size_t i = 0; i < c->n_topics; i++)
        rd_kafka_topic_partition_list_add(l, c->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(b->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        br_fatal(b, BR_EXIT_KAFKA, "cannot subscribe: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

void br_kafka_close(br_bridge *b)
{
    if (!b->rk) return;
    /* Triggers the final revocation: flush, commit (rebalance.c). */
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(b->rk);
    if (err) br_log(BR_WARN, "closing the consumer: %s", rd_kafka_err2str(err));
    rd_kafka_queue_destroy(b->commitq);
    rd_kafka_destroy(b->rk);
    b->rk = NULL;
}
