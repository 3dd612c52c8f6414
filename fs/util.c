/* util.c -- the errno a library status becomes at the FUSE boundary, the
 * one translation every klstorefs module needs. */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h>

#include "fs.h"

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
