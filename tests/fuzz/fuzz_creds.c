/* fuzz_creds.c -- the credential sources' parsers: the JSON answers of the
 * container and instance-metadata endpoints, the AWS shared files
 * (credentials and config, profile sections), the XML answers of STS
 * (AssumeRole, AssumeRoleWithWebIdentity), and what a credential_process
 * prints (JSON) and how its command line is split.  Anything is read or
 * refused, never crashing or reading past the input. */
#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "s3/s3_meta.h"
#include "s3/s3_proc.h"
#include "s3/s3_profile.h"
#include "s3/s3_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data; /* bytes as they came */
    kl_s3_meta_keys mk;
    Kl_s3_meta_parse(text, size, "fuzz", &mk, NULL);
    Kl_s3_meta_keys_free(&mk);
    kl_s3_creds c;
    Kl_s3_proc_parse(text, size, "fuzz", &c, NULL);
    Kl_s3_creds_clear(&c);
    Kl_s3_sts_answer(200, text, size, "AssumeRole", "fuzz", "fuzz", &c, NULL);
    Kl_s3_creds_clear(&c);
    Kl_s3_sts_answer(403, text, size, "AssumeRoleWithWebIdentity", "fuzz", "fuzz", &c, NULL);
    Kl_s3_creds_clear(&c);
    char *cmd = fuzz_str(data, size), **argv, why[120];
    if (Kl_s3_proc_split(cmd, &argv, why, sizeof why) == 0) Kl_s3_proc_argv_free(argv);
    free(cmd);
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
