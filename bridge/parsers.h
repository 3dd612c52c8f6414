/* parsers.h -- the spec's keyspace/key and nonce/timestamp parsers: how a
 * Kafka record becomes (keyspace, key, nonce, timestamp) for the store.
 *
 * Text parsers (keyspace_parser, key_parser):
 *   Static(s)          the string s
 *   RecordHeader(h)    the value of header h (last one wins), as UTF-8
 *   RecordKey          the record key, as UTF-8
 *   RecordPartition    the partition number in decimal
 * The result must be a valid name (kl_validate_name).
 *
 * Number parsers (nonce_parser -> u128, timestamp_parser -> i64 ms):
 *   None                          no value (no nonce / writer's clock)
 *   RecordHeaderBigEndian(h)      header h as a big-endian integer
 *   RecordHeaderLittleEndian(h)   header h as a little-endian integer
 *   RecordHeaderUtf8(h)           header h as a decimal number
 *   RecordKeyBigEndian, RecordKeyLittleEndian, RecordKeyUtf8   the same
 *                                 for the record key
 *   RecordOffset                  the record's offset
 *   RecordPartition               the record's partition
 * Binary integers are 1..16 bytes.  Nonces are unsigned (2^128-1 is
 * reserved by the format and rejected).  Timestamps: fewer than 8 bytes
 * are unsigned; 8 bytes or more are two's complement (a Java long, as
 * Kafka clients write it) and must fit in an i64.  Decimal timestamps may
 * have a leading '-'.
 *
 * Evaluation never allocates: it works on a br_msg view so that unit
 * tests need no broker, and it fails with a one-line reason instead of
 * guessing, so that the caller can apply the on_error policy. */
#ifndef BR_PARSERS_H
#define BR_PARSERS_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "klstore.h"

typedef enum br_source {
    BR_SRC_NONE,   /* number parsers only */
    BR_SRC_STATIC, /* text parsers only */
    BR_SRC_HEADER,
    BR_SRC_KEY,
    BR_SRC_OFFSET, /* number parsers only */
    BR_SRC_PARTITION
} br_source;

typedef enum br_encoding { BR_ENC_UTF8, BR_ENC_BIG, BR_ENC_LITTLE } br_encoding;

typedef struct br_parser {
    br_source source;
    br_encoding enc;  /* header/key sources of number parsers */
    char *arg;        /* Static string or header name, else NULL */
    const char *form; /* the parser's name, for messages */
} br_parser;

/* What a parser reads from a Kafka record. */
typedef struct br_msg {
    const void *key; /* NULL when the record has no key */
    size_t key_len;
    int32_t partition;
    int64_t offset;
    rd_kafka_headers_t *headers; /* NULL when the record has none */
    rd_kafka_message_t *km;      /* set: headers not fetched yet */
} br_msg;

/* The view of a consumed message (headers fetched lazily by librdkafka). */
void br_msg_from_kafka(br_msg *m, rd_kafka_message_t *km);

/* Parses a parser specification ("Static(logs)", "RecordOffset", ...).
 * `numeric` selects the number table.  Returns 0, or -1 with a message in
 * err naming the problem and the accepted forms. */
int br_parser_parse(const char *spec, int numeric, br_parser *out, char *err, size_t errlen);
void br_parser_free(br_parser *p);
/* The specification back, for messages ("RecordHeader(ks)"). */
void br_parser_describe(const br_parser *p, char *buf, size_t cap);

/* Text parsers.  buf must hold KL_NAME_MAX + 1 bytes; *out points to buf
 * or to the parser's static string.  `what` ("keyspace", "key") is used
 * in messages.  Returns 0, or -1 with a reason in err. */
int br_eval_name(const br_parser *p, const br_msg *m, const char *what, char *buf, const char **out,
                 char *err, size_t errlen);

/* Number parsers.  *has is 0 for None. */
int br_eval_nonce(const br_parser *p, const br_msg *m, int *has, kl_u128 *out, char *err,
                  size_t errlen);
int br_eval_timestamp(const br_parser *p, const br_msg *m, int *has, int64_t *out, char *err,
                      size_t errlen);

/* True if s[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
int br_utf8_valid(const void *s, size_t n);

#endif
