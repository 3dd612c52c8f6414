/* fuzz_creds.c -- the credential sources' parsers: the JSON answers of the
 * container and instance-metadata endpoints, and the AWS shared files
 * (credentials and config, profile sections).  Anything is read or
 * refused, never crashing or reading past the input. */
#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "s3/s3_meta.h"
#include "s3/s3_profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kl_s3_meta_keys mk;
    Kl_s3_meta_parse((const char *)data, size, "fuzz", &mk, NULL); /* bytes as they came */
    Kl_s3_meta_keys_free(&mk);
    char path[] = "/dev/shm/kl-fuzz-profile-XXXXXX"; /* RAM: a file per run */
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        for (int is_config = 0; is_config < 2; is_config++) {
            kl_s3_profile_keys k = {0};
            Kl_s3_profile_read(path, "default", is_config, &k);
            Kl_s3_profile_keys_free(&k);
            Kl_s3_profile_read(path, "prod", is_config, &k);
            Kl_s3_profile_keys_free(&k);
        }
    }
    close(fd);
    unlink(path);
    return 0;
}
