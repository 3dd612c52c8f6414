/* util.c -- the two helpers every klstorefs module needs: a monotonic
 * clock for rate limits (the wall clock can jump) and the errno a library
 * status becomes at the FUSE boundary. */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h>

#include "fs.h"

int64_t klfs_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int klfs_errno(kl_status st)
{
    switch (st) {
    case KL_OK: return 0;
    case KL_EINVAL: return EINVAL;
    case KL_ENOKEYSPACE:
    case KL_ENOTFOUND: return ENOENT;
    case KL_EEXIST: return EEXIST;
    case KL_ENOMEM: return ENOMEM;
    case KL_ENOSPC: return ENOSPC;
    default: return EIO; /* EIO, EBADDATA, EBADTOKEN, ECLOSED */
    }
}
