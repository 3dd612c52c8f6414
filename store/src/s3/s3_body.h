/* s3_body.h -- an HTTP answer collected by curl into a bounded buffer.
 *
 * For the small answers of the credential endpoints (STS, container and
 * EC2 metadata): they carry secrets, so the buffer is wiped when freed,
 * and a server must not be able to make them grow without limit, so the
 * transfer stops past `max` bytes.  Not for S3 object bodies (s3_http.c). */
#ifndef KL_S3_BODY_H
#define KL_S3_BODY_H
#include <stddef.h>

typedef struct kl_s3_body {
    char *data; /* NUL-terminated, malloc'd */
    size_t len;
    size_t max;  /* set by the caller */
    int too_big; /* the answer went past max (the transfer was stopped) */
} kl_s3_body;

/* A CURLOPT_WRITEFUNCTION; CURLOPT_WRITEDATA is the kl_s3_body. */
size_t Kl_s3_body_write(char *p, size_t sz, size_t nm, void *ud);
/* Wipes and frees the data; the struct is empty (max kept) afterwards. */
void Kl_s3_body_wipe(kl_s3_body *b);
#endif
