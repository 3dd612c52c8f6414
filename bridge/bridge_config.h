/* bridge_config.h -- everything klstore-kafka-bridge reads from its INI
 * file, checked completely before anything is started.
 *
 *   [s3] / [local] / [batcher]   the store, through kl_config_load_file
 *   [kafka]   topic, offset_commit_interval_seconds,
 *             stats_interval_seconds (bridge's own), and every other key
 *             handed to librdkafka unchanged (rd_kafka_conf_set)
 *   [parser]  keyspace_parser, key_parser, nonce_parser,
 *             timestamp_parser, on_error (stop | skip)
 *   [metrics] listen (HOST:PORT of /metrics and /healthz; none = off),
 *             health_commit_intervals (default 3)
 *
 * Any problem is one message naming the file, section and key; the caller
 * exits with code 2. */
#ifndef BR_CONFIG_H
#define BR_CONFIG_H

#include <librdkafka/rdkafka.h>

#include "klstore.h"
#include "parsers.h"

typedef enum br_on_error { BR_ON_ERROR_STOP = 0, BR_ON_ERROR_SKIP } br_on_error;

typedef struct br_config {
    char *path;
    kl_config store; /* [s3], [local], [batcher] */
    char **topics;   /* [kafka] topic: one or a comma list */
    size_t n_topics;
    unsigned commit_interval_s; /* default 60 */
    unsigned stats_interval_ms; /* default 10 s, 0 = never */
    char *group_id;             /* copies, for messages */
    char *bootstrap;
    rd_kafka_conf_t *kconf; /* validated; forced settings applied */
    br_parser keyspace, key, nonce, timestamp;
    br_on_error on_error;
    char *metrics_listen;      /* [metrics] listen, NULL = no endpoint */
    unsigned health_intervals; /* /healthz fails after this many commit
                                  intervals without a successful commit */
} br_config;

/* Loads and validates path.  Returns 0, or -1 with a message in err. */
int br_config_load(const char *path, br_config *c, char *err, size_t errlen);

/* Hands the librdkafka configuration over (the caller then owns it:
 * rd_kafka_new takes it). */
rd_kafka_conf_t *br_config_take_kafka_conf(br_config *c);

void br_config_free(br_config *c);

/* A one-line summary for the start-up log and --check. */
void br_config_describe(const br_config *c, char *buf, size_t cap);

#endif
