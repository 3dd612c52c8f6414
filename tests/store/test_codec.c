/* test_codec.c -- the on-bucket format, byte for byte: record encoding,
 * data object names, name validation, and what corrupt input does. */
#include <criterion/criterion.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "klstore.h"

Test(codec, record_bytes_match_format_md)
{
    kl_buf b = {0};
    cr_assert_eq(Kl_codec_put(&b, 1, 1700000000000LL, 1, 5, "hi", 2), 0);
    cr_assert_eq(Kl_codec_put(&b, 2, -3, 0, 0, "", 0), 0);
    static const uint8_t want[] = {
        1,    0,    0,    0,    0,    0,    0,    0, /* offset 1 */
        0x00, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0,    0, /* ts 1700000000000 */
        5,    0,    0,    0,    0,    0,    0,    0,    0, 0,
        0,    0,    0,    0,    0,    0,                      /* nonce 5 (u128) */
        2,    0,    0,    0,    'h',  'i',  38,   0,    0, 0, /* len, payload, trailer 36+2 */
        2,    0,    0,    0,    0,    0,    0,    0,          /* offset 2 */
        0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,       /* ts -3 */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,       /* no nonce: all ones */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0,
        0,    0,    36,   0,    0,    0,
    };
    cr_assert_eq(b.len, sizeof want);
    cr_assert_arr_eq(b.data, want, sizeof want);

    kl_record *r;
    size_t n;
    kl_object_meta m = {.first_offset = 1, .last_offset = 2, .size = sizeof want};
    kl_error err;
    cr_assert_eq(Kl_codec_decode(b.data, b.len, &m, "x", &r, &n, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(r[0].timestamp, 1700000000000LL);
    cr_assert(r[0].has_nonce && r[0].nonce == 5);
    cr_assert_eq(r[0].len, 2);
    cr_assert_eq(memcmp(r[0].data, "hi", 2), 0);
    cr_assert_eq(r[1].timestamp, -3);
    cr_assert_not(r[1].has_nonce);
    cr_assert_eq(r[1].len, 0);
    free(r);
    Kl_buf_free(&b);
}

static void expect_bad(const uint8_t *p, size_t len, const kl_object_meta *m, const char *needle)
{
    kl_record *r = NULL;
    size_t n = 0;
    kl_error err = {0};
    cr_assert_eq(Kl_codec_decode(p, len, m, "obj", &r, &n, &err), KL_EBADDATA);
    cr_assert(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
    cr_assert_null(r);
}

Test(codec, corrupt_bodies_are_bad_data)
{
    kl_buf b = {0};
    Kl_codec_put(&b, 7, 1, 0, 0, "abcdef", 6);
    Kl_codec_put(&b, 8, 1, 0, 0, "xyz", 3);
    kl_object_meta m = {.first_offset = 7, .last_offset = 8, .size = b.len};
    expect_bad(b.data, b.len - 1, NULL, "past the end"); /* truncated payload */
    expect_bad(b.data, 20, NULL, "truncated");
    uint8_t *c = malloc(b.len);
    memcpy(c, b.data, b.len);
    c[36 + 6] ^= 1; /* trailer of record 1 */
    expect_bad(c, b.len, NULL, "trailer");
    memcpy(c, b.data, b.len);
    c[32] = 0xff;
    c[33] = 0xff; /* absurd length */
    expect_bad(c, b.len, NULL, "past the end");
    kl_object_meta wrong = m;
    wrong.first_offset = 6;
    wrong.last_offset = 7;
    expect_bad(b.data, b.len, &wrong, "offset");
    wrong = m;
    wrong.last_offset = 9;
    expect_bad(b.data, b.len, &wrong, "records");
    free(c);
    Kl_buf_free(&b);
}

Test(names, object_name_round_trip)
{
    kl_object_meta m = {.first_offset = 1,
                        .last_offset = 3,
                        .min_ts = 1700000000000LL,
                        .max_ts = 1700000000002LL,
                        .first_nonce = 0,
                        .next_nonce = 0,
                        .size = 123,
                        .prior = 0};
    char buf[256];
    cr_assert_gt(kl_object_name_format(&m, buf, sizeof buf), 0);
    cr_assert_str_eq(
        buf, "data_o00000000000000000001-o3_t1700000000000-t1700000000002_n0-n0_s123_p0.bin");
    m = (kl_object_meta){.first_offset = 18446744073709551615ULL,
                         .last_offset = 18446744073709551615ULL,
                         .min_ts = INT64_MIN,
                         .max_ts = -1,
                         .first_nonce = ~(kl_u128)0 - 1,
                         .next_nonce = ~(kl_u128)0,
                         .size = 40,
                         .prior = 5};
    cr_assert_gt(kl_object_name_format(&m, buf, sizeof buf), 0);
    kl_object_meta p;
    kl_error err;
    cr_assert_eq(kl_object_name_parse(buf, &p, &err), KL_OK, "%s: %s", buf, err.msg);
    cr_assert_eq(memcmp(&p, &m, sizeof m), 0);
    cr_assert_eq(kl_object_name_format(&m, buf, 10), -1);
}

Test(names, unparsable_names_are_bad_data)
{
    static const char *bad[] = {
        "data_o1-o3_t1-t2_n0-n0_s1_p0.bin",                   /* not padded */
        "data_o00000000000000000001-o3_t1-t2_n0-n0_s1_p0.bi", /* suffix */
        "data_o00000000000000000001-o3_t1-t2_n0-n0_s1_p0.binx",
        "data_o00000000000000000003-o1_t1-t2_n0-n0_s1_p0.bin", /* last < first */
        "data_o00000000000000000001-o3_t5-t2_n0-n0_s1_p0.bin", /* min > max */
        "data_o00000000000000000001-o3_t1-t2_n5-n1_s1_p0.bin", /* nonce order */
        "data_o00000000000000000000-o3_t1-t2_n0-n0_s1_p0.bin", /* offset 0 */
        "data_o00000000000000000001-o3_t1-t2_n0-n0_s1_p1.bin", /* prior >= first */
        "data_o00000000000000000001-o99999999999999999999_t1-t2_n0-n0_s1_p0.bin", /* overflow */
        "watermark",
        "",
        "data_o",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kl_object_meta m;
        kl_error err = {0};
        cr_assert_eq(kl_object_name_parse(bad[i], &m, &err), KL_EBADDATA, "accepted '%s'", bad[i]);
        cr_assert(strstr(err.msg, "name"), "%s", err.msg);
    }
    kl_object_meta m;
    cr_assert_eq(kl_object_name_parse(
                     "ks/key/data_o00000000000000000002-o2_t-5-t-5_n7-n8_s41_p1.bin", &m, NULL),
                 KL_OK);
    cr_assert_eq(m.min_ts, -5);
    cr_assert(m.first_nonce == 7 && m.next_nonce == 8);
}

Test(names, validation)
{
    static const char *good[] = {"a",   "web-1", "app.log",    "with space",
                                 "ünï", "a@b=c", "x_config.in"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        cr_assert_eq(kl_validate_name("key", good[i], NULL), KL_OK, "rejected '%s'", good[i]);
    char longname[KL_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    static const char *bad[] = {"",          ".",    "..",           ".hidden",  "a/b",
                                "tab\there", "nl\n", "x_config.ini", "\xff\xfe", "\xc0\xaf"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kl_error err = {0};
        cr_assert_eq(kl_validate_name("key", bad[i], &err), KL_EINVAL, "accepted bad name %zu", i);
        cr_assert(strstr(err.msg, "key"), "%s", err.msg);
    }
    kl_error err = {0};
    cr_assert_eq(kl_validate_name("keyspace", longname, &err), KL_EINVAL);
    cr_assert(strstr(err.msg, "maximum"), "%s", err.msg);
    longname[KL_NAME_MAX] = 0;
    cr_assert_eq(kl_validate_name("keyspace", longname, NULL), KL_OK);
}

Test(util, parse_time)
{
    int64_t ms;
    cr_assert_eq(kl_parse_time("1700000000000", &ms, NULL), KL_OK);
    cr_assert_eq(ms, 1700000000000LL);
    cr_assert_eq(kl_parse_time("-42", &ms, NULL), KL_OK);
    cr_assert_eq(ms, -42);
    cr_assert_eq(kl_parse_time("2023-11-14T22:13:20Z", &ms, NULL), KL_OK);
    cr_assert_eq(ms, 1700000000000LL);
    cr_assert_eq(kl_parse_time("2023-11-14T23:13:20.5+01:00", &ms, NULL), KL_OK);
    cr_assert_eq(ms, 1700000000500LL);
    cr_assert_eq(kl_parse_time("2023-11-14", &ms, NULL), KL_OK);
    cr_assert_eq(ms, 1699920000000LL);
    int64_t now = kl_now_ms();
    cr_assert_eq(kl_parse_time("-15m", &ms, NULL), KL_OK);
    cr_assert(ms <= now - 900000 + 1000 && ms >= now - 900000 - 1000);
    static const char *bad[] = {"", "yesterday", "2023-13-01", "12abc", "-5y", "2023-11-14T25:00"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(kl_parse_time(bad[i], &ms, NULL), KL_EINVAL, "accepted '%s'", bad[i]);
}

Test(util, parse_numbers)
{
    kl_u128 v;
    char buf[40];
    cr_assert_eq(kl_parse_u128("340282366920938463463374607431768211455", &v, NULL), KL_OK);
    cr_assert(v == ~(kl_u128)0);
    cr_assert_str_eq(kl_u128_str(v, buf), "340282366920938463463374607431768211455");
    cr_assert_eq(kl_parse_u128("340282366920938463463374607431768211456", &v, NULL), KL_EINVAL);
    uint64_t u;
    cr_assert_eq(kl_parse_u64("18446744073709551616", &u, NULL), KL_EINVAL);
    cr_assert_eq(kl_parse_u64("-1", &u, NULL), KL_EINVAL);
    cr_assert_eq(kl_parse_u64("12 ", &u, NULL), KL_EINVAL);
    cr_assert_str_eq(kl_u128_str(0, buf), "0");
}
