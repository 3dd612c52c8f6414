/* fuzz_config.c -- the INI configuration: arbitrary files and single
 * settings are either taken or refused with a message, never crash. */
#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "klstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p[3];
    fuzz_split(data, size, p, 3);
    kl_config c;
    kl_config_init(&c);
    kl_error err = {0};
    if (kl_config_set(&c, p[0], p[1], p[2], &err) != KL_OK && !err.msg[0]) abort();
    kl_config_free(&c);
    free(p[0]);
    free(p[1]);
    free(p[2]);
    /* The whole input as a file. */
    char path[] = "/dev/shm/kl-fuzz-config-XXXXXX"; /* RAM: a file per run */
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        kl_config_init(&c);
        if (kl_config_load_file(&c, path, &err) != KL_OK && !err.msg[0]) abort();
        kl_config_free(&c);
    }
    close(fd);
    unlink(path);
    return 0;
}
