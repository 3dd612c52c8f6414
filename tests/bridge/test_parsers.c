/* test_parsers.c -- unit tests of the bridge's parsers (bridge/parsers.c):
 * every keyspace/key and nonce/timestamp parser of the spec's tables,
 * their specification syntax, and the failures that the on_error policy
 * handles (missing header, missing key, bad UTF-8, invalid names,
 * unparsable and out-of-range numbers).  No broker needed: records are
 * br_msg views with headers built by rd_kafka_headers_new. */
#include <criterion/criterion.h>
#include <string.h>

#include "parsers.h"

static char err[1024];

static br_parser parse_ok(const char *spec, int numeric)
{
    br_parser p;
    cr_assert_eq(br_parser_parse(spec, numeric, &p, err, sizeof err), 0, "'%s' refused: %s", spec,
                 err);
    return p;
}

static void parse_bad(const char *spec, int numeric, const char *needle)
{
    br_parser p;
    cr_assert_eq(br_parser_parse(spec, numeric, &p, err, sizeof err), -1, "'%s' accepted", spec);
    cr_assert(strstr(err, needle), "'%s': message '%s' lacks '%s'", spec, err, needle);
}

/* A record: key (may be NULL), partition 3, offset 42, headers. */
typedef struct rec {
    br_msg m;
    rd_kafka_headers_t *h;
} rec;

static void rec_init(rec *r, const void *key, size_t key_len)
{
    memset(r, 0, sizeof *r);
    r->h = rd_kafka_headers_new(4);
    r->m.key = key;
    r->m.key_len = key_len;
    r->m.partition = 3;
    r->m.offset = 42;
    r->m.headers = r->h;
}

static void rec_header(rec *r, const char *name, const void *v, ssize_t len)
{
    cr_assert_eq(rd_kafka_header_add(r->h, name, -1, v, len), 0);
}

static void rec_free(rec *r) { rd_kafka_headers_destroy(r->h); }

static const char *name_of(const char *spec, rec *r, char *buf)
{
    br_parser p = parse_ok(spec, 0);
    const char *out = NULL;
    int rc = br_eval_name(&p, &r->m, "key", buf, &out, err, sizeof err);
    if (!rc && out != buf) /* Static points into the parser */
        memmove(buf, out, strlen(out) + 1);
    br_parser_free(&p);
    return rc ? NULL : buf;
}

static int nonce_of(const char *spec, rec *r, kl_u128 *v)
{
    br_parser p = parse_ok(spec, 1);
    int has = -1;
    int rc = br_eval_nonce(&p, &r->m, &has, v, err, sizeof err);
    br_parser_free(&p);
    return rc ? -1 : has;
}

static int ts_of(const char *spec, rec *r, int64_t *v)
{
    br_parser p = parse_ok(spec, 1);
    int has = -1;
    int rc = br_eval_timestamp(&p, &r->m, &has, v, err, sizeof err);
    br_parser_free(&p);
    return rc ? -1 : has;
}

/* ---- specification syntax ------------------------------------------ */

Test(parsers, spec_syntax)
{
    br_parser p = parse_ok("  Static(my_keyspace) ", 0);
    char d[64];
    br_parser_describe(&p, d, sizeof d);
    cr_assert_str_eq(d, "Static(my_keyspace)");
    br_parser_free(&p);
    p = parse_ok("RecordHeader(a(b))", 0); /* up to the last ')' */
    cr_assert_str_eq(p.arg, "a(b)");
    br_parser_free(&p);
    parse_bad("Static", 0, "needs an argument");
    parse_bad("Static()", 0, "empty");
    parse_bad("Static(a/b)", 0, "'/'");
    parse_bad("Static(x", 0, "closing ')'");
    parse_bad("RecordKey(x)", 0, "takes no argument");
    parse_bad("recordkey", 0, "unknown parser");
    parse_bad("RecordOffset", 0, "unknown parser"); /* not a text parser */
    parse_bad("Static(x)", 1, "unknown parser");    /* not a number parser */
    parse_bad("", 1, "unknown parser");
    parse_bad("RecordHeaderUtf8", 1, "needs an argument");
    parse_bad("None(x)", 1, "takes no argument");
}

/* ---- keyspace / key ------------------------------------------------- */

Test(parsers, static_text)
{
    rec r;
    char buf[KL_NAME_MAX + 1];
    rec_init(&r, NULL, 0);
    cr_assert_str_eq(name_of("Static(logs)", &r, buf), "logs");
    rec_free(&r);
}

Test(parsers, record_header_text)
{
    rec r;
    char buf[KL_NAME_MAX + 1];
    rec_init(&r, NULL, 0);
    rec_header(&r, "tenant", "acme", 4);
    rec_header(&r, "tenant", "acme-2", 6); /* last one wins */
    rec_header(&r, "utf", "s\xc3\xa9rie", 6);
    rec_header(&r, "latin1", "s\xe9rie", 5);
    rec_header(&r, "slash", "a/b", 3);
    rec_header(&r, "dot", ".hidden", 7);
    rec_header(&r, "nul", "a\0b", 3);
    rec_header(&r, "novalue", NULL, 0);
    cr_assert_str_eq(name_of("RecordHeader(tenant)", &r, buf), "acme-2");
    cr_assert_str_eq(name_of("RecordHeader(utf)", &r, buf), "s\xc3\xa9rie");
    cr_assert_null(name_of("RecordHeader(missing)", &r, buf));
    cr_assert(strstr(err, "no header 'missing'"), "%s", err);
    cr_assert_null(name_of("RecordHeader(latin1)", &r, buf));
    cr_assert(strstr(err, "not valid UTF-8"), "%s", err);
    cr_assert_null(name_of("RecordHeader(slash)", &r, buf));
    cr_assert(strstr(err, "not a valid key"), "%s", err);
    cr_assert_null(name_of("RecordHeader(dot)", &r, buf));
    cr_assert_null(name_of("RecordHeader(nul)", &r, buf));
    cr_assert_null(name_of("RecordHeader(novalue)", &r, buf));
    cr_assert(strstr(err, "no value"), "%s", err);
    rec_free(&r);
}

Test(parsers, record_header_text_without_headers)
{
    rec r;
    char buf[KL_NAME_MAX + 1];
    rec_init(&r, NULL, 0);
    r.m.headers = NULL;
    cr_assert_null(name_of("RecordHeader(x)", &r, buf));
    cr_assert(strstr(err, "no header 'x'"), "%s", err);
    rec_free(&r);
}

Test(parsers, record_key_text)
{
    rec r;
    char buf[KL_NAME_MAX + 1], big[KL_NAME_MAX + 2];
    rec_init(&r, "user-7", 6);
    cr_assert_str_eq(name_of("RecordKey", &r, buf), "user-7");
    r.m.key = NULL;
    cr_assert_null(name_of("RecordKey", &r, buf));
    cr_assert(strstr(err, "no key"), "%s", err);
    r.m.key = "..";
    r.m.key_len = 2;
    cr_assert_null(name_of("RecordKey", &r, buf));
    r.m.key = "\xff\xfe";
    cr_assert_null(name_of("RecordKey", &r, buf));
    r.m.key = "";
    r.m.key_len = 0;
    cr_assert_null(name_of("RecordKey", &r, buf)); /* empty name */
    memset(big, 'x', sizeof big);
    r.m.key = big;
    r.m.key_len = KL_NAME_MAX + 1;
    cr_assert_null(name_of("RecordKey", &r, buf));
    cr_assert(strstr(err, "longer"), "%s", err);
    r.m.key_len = KL_NAME_MAX;
    cr_assert_not_null(name_of("RecordKey", &r, buf));
    rec_free(&r);
}

Test(parsers, record_partition_text)
{
    rec r;
    char buf[KL_NAME_MAX + 1];
    rec_init(&r, NULL, 0);
    cr_assert_str_eq(name_of("RecordPartition", &r, buf), "3");
    r.m.partition = 1234;
    cr_assert_str_eq(name_of("RecordPartition", &r, buf), "1234");
    /* The hand-written formatter at its edges. */
    r.m.partition = 0;
    cr_assert_str_eq(name_of("RecordPartition", &r, buf), "0");
    r.m.partition = 10;
    cr_assert_str_eq(name_of("RecordPartition", &r, buf), "10");
    r.m.partition = INT32_MAX;
    cr_assert_str_eq(name_of("RecordPartition", &r, buf), "2147483647");
    rec_free(&r);
}

/* ---- nonce ---------------------------------------------------------- */

Test(parsers, nonce_none_offset_partition)
{
    rec r;
    kl_u128 v = 0;
    rec_init(&r, NULL, 0);
    cr_assert_eq(nonce_of("None", &r, &v), 0);
    cr_assert_eq(nonce_of("RecordOffset", &r, &v), 1);
    cr_assert(v == 42);
    cr_assert_eq(nonce_of("RecordPartition", &r, &v), 1);
    cr_assert(v == 3);
    rec_free(&r);
}

Test(parsers, nonce_big_and_little_endian)
{
    static const unsigned char two[] = {0x01, 0x02};
    static const unsigned char sixteen[16] = {0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
    static const unsigned char all_ff[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                             0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char seventeen[17] = {0};
    rec r;
    kl_u128 v = 0;
    rec_init(&r, two, 2);
    rec_header(&r, "n", two, 2);
    rec_header(&r, "n16", sixteen, 16);
    rec_header(&r, "ff", all_ff, 16);
    rec_header(&r, "n17", seventeen, 17);
    rec_header(&r, "empty", "", 0);
    /* BigEndian parses big-endian (the spec's descriptions are swapped). */
    cr_assert_eq(nonce_of("RecordHeaderBigEndian(n)", &r, &v), 1);
    cr_assert(v == 0x0102);
    cr_assert_eq(nonce_of("RecordHeaderLittleEndian(n)", &r, &v), 1);
    cr_assert(v == 0x0201);
    cr_assert_eq(nonce_of("RecordKeyBigEndian", &r, &v), 1);
    cr_assert(v == 0x0102);
    cr_assert_eq(nonce_of("RecordKeyLittleEndian", &r, &v), 1);
    cr_assert(v == 0x0201);
    cr_assert_eq(nonce_of("RecordHeaderBigEndian(n16)", &r, &v), 1);
    cr_assert(v == (((kl_u128)1 << 127) | 1));
    cr_assert_eq(nonce_of("RecordHeaderLittleEndian(n16)", &r, &v), 1);
    cr_assert(v == (((kl_u128)1 << 120) | 0x80));
    cr_assert_eq(nonce_of("RecordHeaderBigEndian(ff)", &r, &v), -1);
    cr_assert(strstr(err, "reserves"), "%s", err);
    cr_assert_eq(nonce_of("RecordHeaderBigEndian(n17)", &r, &v), -1);
    cr_assert(strstr(err, "1 to 16 bytes"), "%s", err);
    cr_assert_eq(nonce_of("RecordHeaderLittleEndian(empty)", &r, &v), -1);
    cr_assert_eq(nonce_of("RecordHeaderBigEndian(missing)", &r, &v), -1);
    r.m.key = NULL;
    cr_assert_eq(nonce_of("RecordKeyLittleEndian", &r, &v), -1);
    cr_assert(strstr(err, "no key"), "%s", err);
    rec_free(&r);
}

Test(parsers, nonce_utf8)
{
    rec r;
    kl_u128 v = 0;
    char max[] = "340282366920938463463374607431768211454"; /* 2^128 - 2 */
    rec_init(&r, "12345", 5);
    rec_header(&r, "n", "987", 3);
    rec_header(&r, "max", max, (ssize_t)strlen(max));
    rec_header(&r, "none", "340282366920938463463374607431768211455", 39);
    rec_header(&r, "over", "340282366920938463463374607431768211456", 39);
    rec_header(&r, "neg", "-1", 2);
    rec_header(&r, "junk", "12a", 3);
    rec_header(&r, "space", " 12", 3);
    rec_header(&r, "empty", "", 0);
    cr_assert_eq(nonce_of("RecordKeyUtf8", &r, &v), 1);
    cr_assert(v == 12345);
    cr_assert_eq(nonce_of("RecordHeaderUtf8(n)", &r, &v), 1);
    cr_assert(v == 987);
    cr_assert_eq(nonce_of("RecordHeaderUtf8(max)", &r, &v), 1);
    cr_assert(v == KL_NONCE_NONE - 1);
    cr_assert_eq(nonce_of("RecordHeaderUtf8(none)", &r, &v), -1);
    cr_assert_eq(nonce_of("RecordHeaderUtf8(over)", &r, &v), -1);
    cr_assert_eq(nonce_of("RecordHeaderUtf8(neg)", &r, &v), -1);
    cr_assert_eq(nonce_of("RecordHeaderUtf8(junk)", &r, &v), -1);
    cr_assert(strstr(err, "not a decimal"), "%s", err);
    cr_assert_eq(nonce_of("RecordHeaderUtf8(space)", &r, &v), -1);
    cr_assert_eq(nonce_of("RecordHeaderUtf8(empty)", &r, &v), -1);
    cr_assert_eq(nonce_of("RecordHeaderUtf8(missing)", &r, &v), -1);
    rec_free(&r);
}

/* ---- timestamp ------------------------------------------------------ */

Test(parsers, timestamp_none_offset_partition)
{
    rec r;
    int64_t v = 0;
    rec_init(&r, NULL, 0);
    cr_assert_eq(ts_of("None", &r, &v), 0);
    cr_assert_eq(ts_of("RecordOffset", &r, &v), 1);
    cr_assert_eq(v, 42);
    cr_assert_eq(ts_of("RecordPartition", &r, &v), 1);
    cr_assert_eq(v, 3);
    rec_free(&r);
}

Test(parsers, timestamp_binary)
{
    /* 1700000000123 = 0x018BCFE5687B as a Java long, big-endian. */
    static const unsigned char be8[8] = {0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b};
    static const unsigned char le8[8] = {0x7b, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0, 0};
    static const unsigned char minus1[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char four_ff[4] = {0xff, 0xff, 0xff, 0xff};
    static const unsigned char big16[16] = {0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char neg16[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
    rec r;
    int64_t v = 0;
    rec_init(&r, be8, 8);
    rec_header(&r, "be", be8, 8);
    rec_header(&r, "le", le8, 8);
    rec_header(&r, "m1", minus1, 8);
    rec_header(&r, "u32", four_ff, 4);
    rec_header(&r, "big16", big16, 16);
    rec_header(&r, "neg16", neg16, 16);
    cr_assert_eq(ts_of("RecordHeaderBigEndian(be)", &r, &v), 1);
    cr_assert_eq(v, 1700000000123LL);
    cr_assert_eq(ts_of("RecordHeaderLittleEndian(le)", &r, &v), 1);
    cr_assert_eq(v, 1700000000123LL);
    cr_assert_eq(ts_of("RecordKeyBigEndian", &r, &v), 1);
    cr_assert_eq(v, 1700000000123LL);
    cr_assert_eq(ts_of("RecordKeyLittleEndian", &r, &v), 1);
    cr_assert_neq(v, 1700000000123LL);
    cr_assert_eq(ts_of("RecordHeaderBigEndian(m1)", &r, &v), 1);
    cr_assert_eq(v, -1); /* 8 bytes: two's complement */
    cr_assert_eq(ts_of("RecordHeaderBigEndian(u32)", &r, &v), 1);
    cr_assert_eq(v, 0xffffffffLL); /* < 8 bytes: unsigned */
    cr_assert_eq(ts_of("RecordHeaderBigEndian(big16)", &r, &v), -1);
    cr_assert(strstr(err, "does not fit"), "%s", err);
    cr_assert_eq(ts_of("RecordHeaderBigEndian(neg16)", &r, &v), 1);
    cr_assert_eq(v, -2);
    rec_free(&r);
}

Test(parsers, timestamp_utf8)
{
    rec r;
    int64_t v = 0;
    rec_init(&r, "1700000000123", 13);
    rec_header(&r, "neg", "-5", 2);
    rec_header(&r, "min", "-9223372036854775808", 20);
    rec_header(&r, "over", "9223372036854775808", 19);
    rec_header(&r, "iso", "2024-01-01T00:00:00Z", 20);
    cr_assert_eq(ts_of("RecordKeyUtf8", &r, &v), 1);
    cr_assert_eq(v, 1700000000123LL);
    cr_assert_eq(ts_of("RecordHeaderUtf8(neg)", &r, &v), 1);
    cr_assert_eq(v, -5);
    cr_assert_eq(ts_of("RecordHeaderUtf8(min)", &r, &v), 1);
    cr_assert_eq(v, INT64_MIN);
    cr_assert_eq(ts_of("RecordHeaderUtf8(over)", &r, &v), -1);
    cr_assert_eq(ts_of("RecordHeaderUtf8(iso)", &r, &v), -1);
    cr_assert(strstr(err, "milliseconds"), "%s", err);
    cr_assert_eq(ts_of("RecordHeaderUtf8(missing)", &r, &v), -1);
    rec_free(&r);
}

Test(parsers, utf8_validation)
{
    cr_assert(br_utf8_valid("plain", 5));
    cr_assert(br_utf8_valid("\xe2\x82\xac", 3));         /* € */
    cr_assert(br_utf8_valid("\xf0\x9f\x98\x80", 4));     /* emoji */
    cr_assert_not(br_utf8_valid("\xc0\xaf", 2));         /* overlong */
    cr_assert_not(br_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    cr_assert_not(br_utf8_valid("\xe2\x82", 2));         /* truncated */
    cr_assert_not(br_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}
