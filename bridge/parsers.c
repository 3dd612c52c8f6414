/* parsers.c -- see parsers.h for the table of parsers and their rules.
 *
 * Specifications are parsed once at start-up, so that a typo is a
 * configuration error, not a stream of bad-message errors; evaluation per
 * record is a switch plus at most one header lookup. */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parsers.h"

/* Longest decimal number we look at: 2^128 has 39 digits. */
#define MAX_DIGITS 48

typedef struct form {
    const char *name;
    br_source source;
    br_encoding enc;
    int takes_arg;
} form;

static const form text_forms[] = {
    {"Static", BR_SRC_STATIC, BR_ENC_UTF8, 1},
    {"RecordHeader", BR_SRC_HEADER, BR_ENC_UTF8, 1},
    {"RecordKey", BR_SRC_KEY, BR_ENC_UTF8, 0},
    {"RecordPartition", BR_SRC_PARTITION, BR_ENC_UTF8, 0},
};

static const form number_forms[] = {
    {"None", BR_SRC_NONE, BR_ENC_UTF8, 0},
    {"RecordHeaderBigEndian", BR_SRC_HEADER, BR_ENC_BIG, 1},
    {"RecordHeaderLittleEndian", BR_SRC_HEADER, BR_ENC_LITTLE, 1},
    {"RecordHeaderUtf8", BR_SRC_HEADER, BR_ENC_UTF8, 1},
    {"RecordKeyBigEndian", BR_SRC_KEY, BR_ENC_BIG, 0},
    {"RecordKeyLittleEndian", BR_SRC_KEY, BR_ENC_LITTLE, 0},
    {"RecordKeyUtf8", BR_SRC_KEY, BR_ENC_UTF8, 0},
    {"RecordOffset", BR_SRC_OFFSET, BR_ENC_UTF8, 0},
    {"RecordPartition", BR_SRC_PARTITION, BR_ENC_UTF8, 0},
};

#define N(a) (sizeof a / sizeof *a)

static const char TEXT_HELP[] = "Static(s), RecordHeader(name), RecordKey, RecordPartition";
static const char NUMBER_HELP[] =
    "None, RecordHeaderBigEndian(name), RecordHeaderLittleEndian(name), "
    "RecordHeaderUtf8(name), RecordKeyBigEndian, RecordKeyLittleEndian, "
    "RecordKeyUtf8, RecordOffset, RecordPartition";

/* ------------------------------------------------------------------ */
/* Specifications                                                      */
/* ------------------------------------------------------------------ */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Splits "Name(arg)" / "Name" (surrounding blanks ignored) into its parts.
 * The argument is everything between the first '(' and the final ')', so
 * a header name may itself contain parentheses. */
static int split_spec(const char *spec, char **name, char **arg)
{
    while (isspace((unsigned char)*spec)) spec++;
    size_t n = strlen(spec);
    while (n && isspace((unsigned char)spec[n - 1])) n--;
    const char *open = memchr(spec, '(', n);
    *arg = NULL;
    if (!open) {
        *name = strndup(spec, n);
        return *name ? 0 : -1;
    }
    if (spec[n - 1] != ')') return -2;
    *name = strndup(spec, (size_t)(open - spec));
    *arg = strndup(open + 1, (size_t)(spec + n - 1 - (open + 1)));
    return *name && *arg ? 0 : -1;
}

int br_parser_parse(const char *spec, int numeric, br_parser *out, char *err, size_t errlen)
{
    const form *forms = numeric ? number_forms : text_forms;
    size_t nforms = numeric ? N(number_forms) : N(text_forms);
    const char *help = numeric ? NUMBER_HELP : TEXT_HELP;
    char *name = NULL, *arg = NULL;
    memset(out, 0, sizeof *out);
    int rc = split_spec(spec ? spec : "", &name, &arg);
    if (rc == -2)
        return fail(err, errlen, "'%s' is missing its closing ')' (one of: %s)", spec, help);
    if (rc < 0) {
        free(name);
        free(arg);
        return fail(err, errlen, "out of memory");
    }
    const form *f = NULL;
    for (size_t i = 0; i < nforms; i++)
        if (strcmp(forms[i].name, name) == 0) f = &forms[i];
    if (!f) {
        rc = fail(err, errlen, "unknown parser '%s' (one of: %s)", spec, help);
    } else if (f->takes_arg && !arg) {
        rc = fail(err, errlen, "'%s' needs an argument: %s(...) (one of: %s)", spec, f->name, help);
    } else if (!f->takes_arg && arg) {
        rc =
            fail(err, errlen, "'%s' takes no argument: write %s (one of: %s)", spec, f->name, help);
    } else if (arg && !*arg) {
        rc = fail(err, errlen, "'%s': the argument is empty", spec);
    } else if (f->source == BR_SRC_STATIC) {
        kl_error e;
        if (kl_validate_name("name", arg, &e) != KL_OK)
            rc = fail(err, errlen, "'%s': %s", spec, e.msg);
    }
    free(name);
    if (rc) {
        free(arg);
        return -1;
    }
    out->source = f->source;
    out->enc = f->enc;
    out->arg = arg;
    out->form = f->name;
    return 0;
}

void br_parser_free(br_parser *p)
{
    if (!p) return;
    free(p->arg);
    memset(p, 0, sizeof *p);
}

void br_parser_describe(const br_parser *p, char *buf, size_t cap)
{
    const char *name = p->form ? p->form : "?";
    if (p->arg)
        snprintf(buf, cap, "%s(%s)", name, p->arg);
    else
        snprintf(buf, cap, "%s", name);
}

/* ------------------------------------------------------------------ */
/* Reading a record                                                    */
/* ------------------------------------------------------------------ */

void br_msg_from_kafka(br_msg *m, rd_kafka_message_t *km)
{
    m->key = km->key;
    m->key_len = km->key_len;
    m->partition = km->partition;
    m->offset = km->offset;
    m->headers = NULL;
    m->km = km; /* headers are parsed on first use */
}

/* librdkafka parses a message's headers on request; most configurations
 * use none, so they are fetched only by a header parser. */
static rd_kafka_headers_t *msg_headers(const br_msg *m)
{
    br_msg *mm = (br_msg *)m;
    if (!mm->headers && mm->km &&
        rd_kafka_message_headers(mm->km, &mm->headers) != RD_KAFKA_RESP_ERR_NO_ERROR)
        mm->headers = NULL;
    mm->km = NULL;
    return mm->headers;
}

int br_utf8_valid(const void *s, size_t n)
{
    const unsigned char *p = s, *end = p + n;
    while (p < end) {
        unsigned c = *p++;
        if (c < 0x80) continue;
        unsigned need, min;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            min = 0x80;
            c &= 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            min = 0x800;
            c &= 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            min = 0x10000;
            c &= 0x07;
        } else
            return 0;
        if ((size_t)(end - p) < need) return 0;
        for (unsigned i = 0; i < need; i++) {
            if ((p[i] & 0xc0) != 0x80) return 0;
            c = (c << 6) | (p[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
        p += need;
    }
    return 1;
}

/* The bytes a header or key source designates.  A header that is present
 * with a NULL value counts as missing: there is nothing to parse. */
static int source_bytes(const br_parser *p, const br_msg *m, const void **v, size_t *n, char *err,
                        size_t errlen)
{
    if (p->source == BR_SRC_KEY) {
        if (!m->key) return fail(err, errlen, "the record has no key");
        *v = m->key;
        *n = m->key_len;
        return 0;
    }
    rd_kafka_headers_t *h = msg_headers(m);
    if (!h || rd_kafka_header_get_last(h, p->arg, v, n) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return fail(err, errlen, "the record has no header '%s'", p->arg);
    if (!*v) return fail(err, errlen, "header '%s' has no value", p->arg);
    return 0;
}

static const char *source_name(const br_parser *p, char *buf, size_t cap)
{
    if (p->source == BR_SRC_KEY)
        snprintf(buf, cap, "the record key");
    else
        snprintf(buf, cap, "header '%s'", p->arg);
    return buf;
}

/* "%d" for the partition key of every record: snprintf was a visible
 * part of the bridge's per-record cost.  buf holds at least 12 bytes. */
static void format_int(char *buf, int32_t v)
{
    char tmp[12];
    size_t n = 0;
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    do tmp[n++] = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0) *buf++ = '-';
    while (n) *buf++ = tmp[--n];
    *buf = '\0';
}

int br_eval_name(const br_parser *p, const br_msg *m, const char *what, char *buf, const char **out,
                 char *err, size_t errlen)
{
    const void *v;
    size_t n;
    char src[KL_NAME_MAX + 40];
    kl_error e;
    switch (p->source) {
    case BR_SRC_STATIC:
        *out = p->arg; /* validated when the spec was parsed */
        return 0;
    case BR_SRC_PARTITION:
        format_int(buf, m->partition);
        *out = buf;
        return 0;
    case BR_SRC_HEADER:
    case BR_SRC_KEY: break;
    default: return fail(err, errlen, "parser cannot produce a %s", what);
    }
    if (source_bytes(p, m, &v, &n, err, errlen)) return -1;
    source_name(p, src, sizeof src);
    if (n > KL_NAME_MAX)
        return fail(err, errlen, "%s is %zu bytes, longer than a %s may be (%d)", src, n, what,
                    KL_NAME_MAX);
    if (!br_utf8_valid(v, n)) return fail(err, errlen, "%s is not valid UTF-8", src);
    if (memchr(v, '\0', n)) return fail(err, errlen, "%s contains a NUL byte", src);
    memcpy(buf, v, n);
    buf[n] = '\0';
    if (kl_validate_name(what, buf, &e) != KL_OK)
        return fail(err, errlen, "%s is not a valid %s: %s", src, what, e.msg);
    *out = buf;
    return 0;
}

/* A binary integer of 1..16 bytes, zero-extended to 128 bits. */
static int decode_binary(const br_parser *p, const void *v, size_t n, unsigned __int128 *out,
                         const char *src, char *err, size_t errlen)
{
    const unsigned char *b = v;
    if (n < 1 || n > 16)
        return fail(err, errlen,
                    "%s is %zu bytes; a %s-endian integer must "
                    "be 1 to 16 bytes",
                    src, n, p->enc == BR_ENC_BIG ? "big" : "little");
    unsigned __int128 x = 0;
    for (size_t i = 0; i < n; i++) x = (x << 8) | b[p->enc == BR_ENC_BIG ? i : n - 1 - i];
    *out = x;
    return 0;
}

/* Copies a decimal number out of a header or key so it is NUL-terminated. */
static int decimal_text(const void *v, size_t n, char *buf, const char *src, char *err,
                        size_t errlen)
{
    if (n == 0) return fail(err, errlen, "%s is empty, not a number", src);
    if (n > MAX_DIGITS || memchr(v, '\0', n))
        return fail(err, errlen, "%s is not a decimal number", src);
    memcpy(buf, v, n);
    buf[n] = '\0';
    return 0;
}

/* Shared by nonce and timestamp: the source's bytes, or the number itself
 * for offset/partition sources (*direct set). */
static int number_source(const br_parser *p, const br_msg *m, const void **v, size_t *n,
                         int64_t *direct, int *is_direct, char *err, size_t errlen)
{
    *is_direct = 0;
    switch (p->source) {
    case BR_SRC_OFFSET:
        *direct = m->offset;
        *is_direct = 1;
        return 0;
    case BR_SRC_PARTITION:
        *direct = m->partition;
        *is_direct = 1;
        return 0;
    case BR_SRC_HEADER:
    case BR_SRC_KEY: return source_bytes(p, m, v, n, err, errlen);
    default: return fail(err, errlen, "parser cannot produce a number");
    }
}

int br_eval_nonce(const br_parser *p, const br_msg *m, int *has, kl_u128 *out, char *err,
                  size_t errlen)
{
    const void *v = NULL;
    size_t n = 0;
    int64_t direct;
    int is_direct;
    char src[KL_NAME_MAX + 40], text[MAX_DIGITS + 1];
    *has = 0;
    if (p->source == BR_SRC_NONE) return 0;
    if (number_source(p, m, &v, &n, &direct, &is_direct, err, errlen)) return -1;
    if (is_direct) {
        if (direct < 0)
            return fail(err, errlen, "negative value %lld cannot be a nonce", (long long)direct);
        *out = (kl_u128)direct;
        *has = 1;
        return 0;
    }
    source_name(p, src, sizeof src);
    if (p->enc == BR_ENC_UTF8) {
        kl_error e;
        if (decimal_text(v, n, text, src, err, errlen)) return -1;
        if (kl_parse_u128(text, out, &e) != KL_OK)
            return fail(err, errlen, "%s ('%s') is not a decimal u128", src, text);
    } else if (decode_binary(p, v, n, out, src, err, errlen)) {
        return -1;
    }
    if (*out == KL_NONCE_NONE)
        return fail(err, errlen,
                    "%s is 2^128-1, which the store reserves for "
                    "'no nonce'",
                    src);
    *has = 1;
    return 0;
}

/* Decimal i64 with an optional leading '-' (no '+', no blanks). */
static int parse_i64(const char *s, int64_t *out)
{
    int neg = *s == '-';
    uint64_t u;
    if (kl_parse_u64(s + neg, &u, NULL) != KL_OK) return -1;
    if (neg ? u > (uint64_t)INT64_MAX + 1 : u > (uint64_t)INT64_MAX) return -1;
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
    return 0;
}

/* Binary timestamps: see parsers.h for the signedness rule. */
static int binary_timestamp(unsigned __int128 x, size_t n, int64_t *out)
{
    if (n < 8) {
        *out = (int64_t)x;
        return 0;
    }
    __int128 s;
    if (n < 16 && (x >> (n * 8 - 1)) & 1) /* sign-extend */
        x |= ~(unsigned __int128)0 << (n * 8);
    s = (__int128)x;
    if (s < INT64_MIN || s > INT64_MAX) return -1;
    *out = (int64_t)s;
    return 0;
}

int br_eval_timestamp(const br_parser *p, const br_msg *m, int *has, int64_t *out, char *err,
                      size_t errlen)
{
    const void *v = NULL;
    size_t n = 0;
    int64_t direct;
    int is_direct;
    char src[KL_NAME_MAX + 40], text[MAX_DIGITS + 1];
    *has = 0;
    if (p->source == BR_SRC_NONE) return 0;
    if (number_source(p, m, &v, &n, &direct, &is_direct, err, errlen)) return -1;
    if (is_direct) {
        *out = direct;
        *has = 1;
        return 0;
    }
    source_name(p, src, sizeof src);
    if (p->enc == BR_ENC_UTF8) {
        if (decimal_text(v, n, text, src, err, errlen)) return -1;
        if (parse_i64(text, out))
            return fail(err, errlen,
                        "%s ('%s') is not a decimal timestamp in "
                        "milliseconds (i64)",
                        src, text);
    } else {
        unsigned __int128 x = 0; /* set by decode_binary; gcc -O3 cannot tell */
        if (decode_binary(p, v, n, &x, src, err, errlen)) return -1;
        if (binary_timestamp(x, n, out))
            return fail(err, errlen, "%s does not fit a 64-bit timestamp", src);
    }
    *has = 1;
    return 0;
}
