/* test_sigv4.c -- SigV4 against AWS's published S3 examples.
 *
 * The four examples of the S3 API reference page "Signature Calculations
 * for the Authorization Header: Transferring Payload in a Single Chunk"
 * (examplebucket, AKIAIOSFODNN7EXAMPLE, 20130524): exact canonical
 * requests, strings to sign and signatures.  If these pass, any S3-
 * compatible server accepts what s3_http.c signs.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "s3/sigv4.h"

#define AK    "AKIAIOSFODNN7EXAMPLE"
#define SK    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define HOST  "examplebucket.s3.amazonaws.com"
#define EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define DATE  "20130524T000000Z"

static kl_sigv4_req base(const char *method, const char *path, const kl_sigv4_kv *h, size_t nh,
                         const kl_sigv4_kv *q, size_t nq, const char *ph)
{
    kl_sigv4_req r = {.method = method,
                      .path = path,
                      .query = q,
                      .n_query = nq,
                      .headers = h,
                      .n_headers = nh,
                      .payload_hash = ph,
                      .amz_date = DATE,
                      .region = "us-east-1",
                      .service = "s3"};
    return r;
}

Test(sigv4, get_object_with_range)
{
    /* Given out of order and in mixed case: the signer sorts and lowers. */
    kl_sigv4_kv h[] = {{"X-Amz-Date", DATE},
                       {"Range", "bytes=0-9"},
                       {"Host", HOST},
                       {"x-amz-content-sha256", EMPTY}};
    kl_sigv4_req r = base("GET", "/test.txt", h, 4, NULL, 0, EMPTY);
    kl_sigv4_result res;
    cr_assert_eq(Kl_sigv4_sign(&r, AK, SK, &res), 0);
    cr_assert_str_eq(res.canonical_request, "GET\n/test.txt\n\n"
                                            "host:examplebucket.s3.amazonaws.com\n"
                                            "range:bytes=0-9\n"
                                            "x-amz-content-sha256:" EMPTY "\n"
                                            "x-amz-date:20130524T000000Z\n\n"
                                            "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY);
    cr_assert_str_eq(res.string_to_sign,
                     "AWS4-HMAC-SHA256\n20130524T000000Z\n"
                     "20130524/us-east-1/s3/aws4_request\n"
                     "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    cr_assert_str_eq(res.signature,
                     "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    cr_assert_str_eq(
        res.authorization,
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    Kl_sigv4_result_free(&res);
}

Test(sigv4, put_object)
{
    const char *body = "Welcome to Amazon S3.";
    char ph[65];
    Kl_sha256_hex(body, strlen(body), ph);
    cr_assert_str_eq(ph, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    kl_sigv4_kv h[] = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                       {"Host", HOST},
                       {"x-amz-content-sha256", ph},
                       {"x-amz-date", DATE},
                       {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
    /* The raw name has a '$': the path must be encoded exactly once. */
    kl_sigv4_req r = base("PUT", "/test$file.text", h, 5, NULL, 0, ph);
    kl_sigv4_result res;
    cr_assert_eq(Kl_sigv4_sign(&r, AK, SK, &res), 0);
    cr_assert_str_eq(
        res.canonical_request,
        "PUT\n/test%24file.text\n\n"
        "date:Fri, 24 May 2013 00:00:00 GMT\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
        "x-amz-date:20130524T000000Z\n"
        "x-amz-storage-class:REDUCED_REDUNDANCY\n\n"
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    cr_assert_str_eq(res.string_to_sign,
                     "AWS4-HMAC-SHA256\n20130524T000000Z\n"
                     "20130524/us-east-1/s3/aws4_request\n"
                     "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
    cr_assert_str_eq(res.signature,
                     "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    Kl_sigv4_result_free(&res);
}

Test(sigv4, get_bucket_lifecycle)
{
    kl_sigv4_kv h[] = {{"host", HOST}, {"x-amz-content-sha256", EMPTY}, {"x-amz-date", DATE}};
    kl_sigv4_kv q[] = {{"lifecycle", ""}};
    kl_sigv4_req r = base("GET", "/", h, 3, q, 1, EMPTY);
    kl_sigv4_result res;
    cr_assert_eq(Kl_sigv4_sign(&r, AK, SK, &res), 0);
    cr_assert_str_eq(res.canonical_request, "GET\n/\nlifecycle=\n"
                                            "host:examplebucket.s3.amazonaws.com\n"
                                            "x-amz-content-sha256:" EMPTY "\n"
                                            "x-amz-date:20130524T000000Z\n\n"
                                            "host;x-amz-content-sha256;x-amz-date\n" EMPTY);
    cr_assert_str_eq(res.string_to_sign,
                     "AWS4-HMAC-SHA256\n20130524T000000Z\n"
                     "20130524/us-east-1/s3/aws4_request\n"
                     "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
    cr_assert_str_eq(res.signature,
                     "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    Kl_sigv4_result_free(&res);
}

Test(sigv4, list_objects)
{
    kl_sigv4_kv h[] = {{"host", HOST}, {"x-amz-content-sha256", EMPTY}, {"x-amz-date", DATE}};
    kl_sigv4_kv q[] = {{"prefix", "J"}, {"max-keys", "2"}}; /* unsorted */
    kl_sigv4_req r = base("GET", "/", h, 3, q, 2, EMPTY);
    kl_sigv4_result res;
    cr_assert_eq(Kl_sigv4_sign(&r, AK, SK, &res), 0);
    cr_assert_str_eq(res.canonical_request, "GET\n/\nmax-keys=2&prefix=J\n"
                                            "host:examplebucket.s3.amazonaws.com\n"
                                            "x-amz-content-sha256:" EMPTY "\n"
                                            "x-amz-date:20130524T000000Z\n\n"
                                            "host;x-amz-content-sha256;x-amz-date\n" EMPTY);
    cr_assert_str_eq(res.string_to_sign,
                     "AWS4-HMAC-SHA256\n20130524T000000Z\n"
                     "20130524/us-east-1/s3/aws4_request\n"
                     "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7");
    cr_assert_str_eq(res.signature,
                     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    Kl_sigv4_result_free(&res);
}

Test(sigv4, uri_encoding)
{
    const char *in = "ks/a b+c=d@e~f_g.h-i/\xc3\xa9\xe2\x82\xac%";
    char *p = Kl_sigv4_uri_encode(in, strlen(in), 1);
    cr_assert_str_eq(p, "ks/a%20b%2Bc%3Dd%40e~f_g.h-i/%C3%A9%E2%82%AC%25");
    free(p);
    char *q = Kl_sigv4_uri_encode(in, strlen(in), 0);
    cr_assert_str_eq(q, "ks%2Fa%20b%2Bc%3Dd%40e~f_g.h-i%2F%C3%A9%E2%82%AC%25");
    free(q);
}

Test(sigv4, query_values_are_encoded_and_sorted)
{
    kl_sigv4_kv h[] = {{"host", "h"}};
    kl_sigv4_kv q[] = {
        {"start-after", "ks/a b+c"}, {"list-type", "2"}, {"delimiter", "/"}, {"prefix", ""}};
    kl_sigv4_req r = base("GET", "/b", h, 1, q, 4, EMPTY);
    kl_sigv4_result res;
    cr_assert_eq(Kl_sigv4_sign(&r, AK, SK, &res), 0);
    cr_assert(strstr(res.canonical_request,
                     "\ndelimiter=%2F&list-type=2&prefix=&start-after=ks%2Fa%20b%2Bc\n"),
              "%s", res.canonical_request);
    Kl_sigv4_result_free(&res);
}

Test(sigv4, header_values_trimmed_and_session_token_signed)
{
    kl_sigv4_kv h[] = {{"host", "h"}, {"X-Amz-Security-Token", "  tok  en "}, {"x-amz-date", DATE}};
    kl_sigv4_req r = base("GET", "/", h, 3, NULL, 0, EMPTY);
    kl_sigv4_result res;
    cr_assert_eq(Kl_sigv4_sign(&r, AK, SK, &res), 0);
    cr_assert(strstr(res.canonical_request, "\nx-amz-security-token:tok en\n"));
    cr_assert_str_eq(res.signed_headers, "host;x-amz-date;x-amz-security-token");
    /* The secret never appears in anything that is sent. */
    cr_assert_null(strstr(res.authorization, SK));
    Kl_sigv4_result_free(&res);
}

Test(sigv4, amz_date_and_incomplete_request)
{
    char d[17];
    Kl_sigv4_amz_date(1369353600, d);
    cr_assert_str_eq(d, "20130524T000000Z");
    kl_sigv4_req r = {0};
    kl_sigv4_result res;
    cr_assert_eq(Kl_sigv4_sign(&r, AK, SK, &res), -1);
    cr_assert_null(res.authorization);
}
