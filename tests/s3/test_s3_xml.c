/* test_s3_xml.c -- parsing the S3 XML documents klstore depends on, with
 * bodies shaped as AWS and Ceph RGW send them, plus hostile ones. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3/s3_xml.h"

#define NS "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

Test(s3_xml, list_v2_with_contents_prefixes_and_token)
{
    const char *body =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult " NS "><Name>b</Name><Prefix>p/</Prefix>"
        "<KeyCount>3</KeyCount><MaxKeys>3</MaxKeys><Delimiter>/</Delimiter>"
        "<IsTruncated>true</IsTruncated>"
        "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</"
        "NextContinuationToken>"
        "<Contents><Key>p/a &amp; b "
        "\xc3\xa9</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
        "<ETag>\"x\"</ETag><Size>434234</Size><StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key>p/big</Key><Size>18446744073709551615</Size></Contents>"
        "<Contents><Key>p/c</Key><LastModified>-1d</LastModified><Size>1</Size></Contents>"
        "<CommonPrefixes><Prefix>p/sub/</Prefix></CommonPrefixes>"
        "</ListBucketResult>";
    kl_listing l;
    kl_error e = {0};
    cr_assert_eq(Kl_s3_xml_parse_list(body, strlen(body), &l, &e), KL_OK, "%s", e.msg);
    cr_assert_eq(l.n_objects, 3);
    cr_assert_str_eq(l.objects[0].name, "p/a & b \xc3\xa9");
    cr_assert_eq(l.objects[0].size, 434234);
    cr_assert_eq(l.objects[0].mtime_ms, 1255369830000);
    cr_assert_eq(l.objects[1].size, UINT64_MAX);
    /* missing, or not an ISO time: unknown */
    cr_assert_eq(l.objects[1].mtime_ms, 0);
    cr_assert_eq(l.objects[2].mtime_ms, 0);
    cr_assert_eq(l.n_prefixes, 1);
    cr_assert_str_eq(l.prefixes[0], "p/sub/");
    cr_assert_str_eq(l.next, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    kl_listing_free(&l);
}

Test(s3_xml, list_v2_empty_not_truncated)
{
    const char *body = "<ListBucketResult " NS "><Name>b</Name><KeyCount>0</KeyCount>"
                       "<IsTruncated>false</IsTruncated></ListBucketResult>";
    kl_listing l;
    cr_assert_eq(Kl_s3_xml_parse_list(body, strlen(body), &l, NULL), KL_OK);
    cr_assert_eq(l.n_objects, 0);
    cr_assert_eq(l.n_prefixes, 0);
    cr_assert_null(l.next);
    kl_listing_free(&l);
}

Test(s3_xml, list_rejects_garbage)
{
    const char *bad[] = {
        "",
        "not xml",
        "<Error><Code>x</Code></Error>",
        "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>a</Key><Size>1x</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>a</Key><Size>99999999999999999999</Size></Contents></"
        "ListBucketResult>",
        "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
        "<ListBucketResult><Contents><Key>a</Key><Size>1</Size>",
        "<!DOCTYPE x [<!ENTITY e SYSTEM "
        "\"file:///etc/passwd\">]><ListBucketResult><Contents><Key>&e;</Key><Size>1</Size></"
        "Contents></ListBucketResult>",
        "<!DOCTYPE x [<!ENTITY e "
        "\"a\">]><ListBucketResult><Contents><Key>k</Key><Size>1</Size></Contents></"
        "ListBucketResult>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kl_listing l;
        kl_error e = {0};
        kl_status st = Kl_s3_xml_parse_list(bad[i], strlen(bad[i]), &l, &e);
        /* S3 documents have no DTD: one is refused, whatever it says. */
        cr_assert_eq(st, KL_EIO, "case %zu", i);
        cr_assert_eq(e.code, KL_EIO);
        cr_assert(strlen(e.msg) > 0);
        cr_assert_null(l.objects);
    }
}

Test(s3_xml, error_with_a_dtd_is_not_parsed)
{
    const char *bomb = "<?xml version=\"1.0\"?><!DOCTYPE z [<!ENTITY a \"aaaaaaaaaa\">"
                       "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]>"
                       "<Error><Code>AccessDenied</Code><Message>&b;</Message></Error>";
    kl_s3_xml_error x;
    cr_assert_eq(Kl_s3_xml_parse_error(bomb, strlen(bomb), &x), 0);
}

Test(s3_xml, error_body)
{
    const char *body =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code>"
        "<Message>The specified bucket does not exist</Message>"
        "<BucketName>nope</BucketName><RequestId>tx0001</RequestId>"
        "<HostId>h</HostId></Error>";
    kl_s3_xml_error e;
    cr_assert_eq(Kl_s3_xml_parse_error(body, strlen(body), &e), 1);
    cr_assert_str_eq(e.code, "NoSuchBucket");
    cr_assert_str_eq(e.message, "The specified bucket does not exist");
    cr_assert_str_eq(e.request_id, "tx0001");
    cr_assert_eq(Kl_s3_xml_parse_error("<html>502</html>", 16, &e), 0);
    cr_assert_str_eq(e.code, "");
    cr_assert_eq(Kl_s3_xml_parse_error(NULL, 0, &e), 0);
}

Test(s3_xml, delete_body_escapes_names)
{
    const char *names[] = {"ks/a&b<c>\"d'e", "ks/tab\there", "ks/\xc3\xa9 =+@"};
    size_t len;
    char *b = Kl_s3_xml_delete_body(names, 3, &len, NULL);
    cr_assert_not_null(b);
    cr_assert_eq(strlen(b), len);
    cr_assert(strstr(b, "<Quiet>true</Quiet>"));
    cr_assert(strstr(b, "<Key>ks/a&amp;b&lt;c&gt;&quot;d&apos;e</Key>"));
    cr_assert(strstr(b, "<Key>ks/tab&#9;here</Key>"));
    cr_assert(strstr(b, "<Key>ks/\xc3\xa9 =+@</Key>"));
    free(b);

    const char *bad[] = {"ok", "bell\a"};
    kl_error e = {0};
    cr_assert_null(Kl_s3_xml_delete_body(bad, 2, &len, &e));
    cr_assert_eq(e.code, KL_EINVAL);
}

Test(s3_xml, delete_result_ignores_missing_keys)
{
    const char *body =
        "<DeleteResult " NS ">"
        "<Deleted><Key>a</Key></Deleted>"
        "<Error><Key>b</Key><Code>NoSuchKey</Code><Message>gone</Message></Error>"
        "<Error><Key>c</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        "<Error><Key>d</Key><Code>InternalError</Code><Message>x</Message></Error>"
        "</DeleteResult>";
    size_t n;
    kl_s3_xml_error first;
    cr_assert_eq(Kl_s3_xml_parse_delete(body, strlen(body), &n, &first, NULL), KL_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(first.key, "c");
    cr_assert_str_eq(first.code, "AccessDenied");
    const char *empty = "<DeleteResult " NS "/>";
    cr_assert_eq(Kl_s3_xml_parse_delete(empty, strlen(empty), &n, &first, NULL), KL_OK);
    cr_assert_eq(n, 0);
    kl_error e = {0};
    cr_assert_eq(Kl_s3_xml_parse_delete("x", 1, &n, &first, &e), KL_EIO);
}

/* ---- listing positions (s3_listpage.c) ---- */
#include "s3/s3_listpage.h"

static kl_listing page_of(const char **names, size_t n, const char *next)
{
    kl_listing l = {0};
    l.objects = calloc(n ? n : 1, sizeof *l.objects);
    for (size_t i = 0; i < n; i++) l.objects[i].name = strdup(names[i]);
    l.n_objects = n;
    l.next = next ? strdup(next) : NULL;
    return l;
}

Test(s3_listpage, positions_travel_in_the_token)
{
    kl_s3_list_pos pos;
    kl_error e = {0};
    cr_assert_eq(Kl_s3_list_pos_parse(NULL, &pos, &e), KL_OK);
    cr_assert_null(pos.server_token);
    const char *a[] = {"k/a", "k/b"};
    kl_listing l = page_of(a, 2, "srv-1");
    cr_assert_eq(Kl_s3_list_page_check(&pos, NULL, &l, "LIST", &e), KL_OK, "%s", e.msg);
    kl_s3_list_pos next;
    cr_assert_eq(Kl_s3_list_pos_parse(l.next, &next, &e), KL_OK);
    cr_assert_str_eq(next.server_token, "srv-1");
    cr_assert_str_eq(next.last, "k/b");
    cr_assert_eq(next.empties, 0);
    kl_listing_free(&l);
    /* a page that goes back is refused */
    const char *back[] = {"k/a0"};
    l = page_of(back, 1, NULL);
    cr_assert_eq(Kl_s3_list_page_check(&next, NULL, &l, "LIST x", &e), KL_EBADDATA);
    cr_assert(strstr(e.msg, "does not advance") && strstr(e.msg, "LIST x"), "%s", e.msg);
    kl_listing_free(&l);
    /* so is one out of order, or not after start_after */
    const char *unordered[] = {"k/d", "k/c"};
    l = page_of(unordered, 2, NULL);
    cr_assert_eq(Kl_s3_list_page_check(&next, NULL, &l, "LIST", &e), KL_EBADDATA);
    kl_listing_free(&l);
    kl_s3_list_pos none = {0};
    l = page_of(a, 1, NULL);
    cr_assert_eq(Kl_s3_list_page_check(&none, "k/a", &l, "LIST", &e), KL_EBADDATA);
    kl_listing_free(&l);
    /* the token it was given, again */
    l = page_of(NULL, 0, "srv-1");
    cr_assert_eq(Kl_s3_list_page_check(&next, NULL, &l, "LIST", &e), KL_EBADDATA);
    cr_assert(strstr(e.msg, "continuation token"), "%s", e.msg);
    kl_listing_free(&l);
    Kl_s3_list_pos_free(&next);
    /* a raw server token (not ours) is passed through */
    cr_assert_eq(Kl_s3_list_pos_parse("opaque/+=", &pos, &e), KL_OK);
    cr_assert_str_eq(pos.server_token, "opaque/+=");
    cr_assert_null(pos.last);
    Kl_s3_list_pos_free(&pos);
}

Test(s3_listpage, empty_truncated_pages_end)
{
    kl_s3_list_pos pos = {0};
    kl_error e = {0};
    char tok[32];
    kl_status st = KL_OK;
    int pages = 0;
    for (; pages < 100 && st == KL_OK; pages++) {
        snprintf(tok, sizeof tok, "srv-%d", pages);
        kl_listing l = page_of(NULL, 0, tok);
        st = Kl_s3_list_page_check(&pos, NULL, &l, "LIST", &e);
        Kl_s3_list_pos_free(&pos);
        if (st == KL_OK) cr_assert_eq(Kl_s3_list_pos_parse(l.next, &pos, &e), KL_OK);
        kl_listing_free(&l);
    }
    cr_assert_eq(st, KL_EBADDATA);
    cr_assert_eq(pages, KL_S3_LIST_MAX_EMPTY + 1);
    cr_assert(strstr(e.msg, "empty pages"), "%s", e.msg);
    Kl_s3_list_pos_free(&pos);
}
