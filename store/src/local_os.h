/* local_os.h -- what the local store's files share: objstore_local.c
 * (objects), local_claim.c (its slot claims) and local_io.c (helpers
 * both use); nothing here is public. */
#ifndef KL_LOCAL_OS_H
#define KL_LOCAL_OS_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "klstore.h"

/* Temporary names; klstore names never start with '.'. */
#define TMP_PREFIX ".kltmp."

typedef struct local_os {
    kl_objstore base;
    int rootfd;
    char *desc;
    atomic_ulong tmp_seq;
    atomic_int dir_claims; /* 1: the file system lacks O_TMPFILE or user xattrs */
} local_os;

/* File-system helpers (local_io.c). */
/* KL_EINVAL unless `name` is storable as a path under the root. */
kl_status Kl_local_check_name(const char *name, kl_error *err);
/* errno as a kl_status: ENOENT/ENOTDIR are KL_ENOTFOUND. */
kl_status Kl_local_io_err(kl_error *err, const char *op, const char *name);
/* The directory holding `name` (its first dirlen bytes), made if missing;
 * -1 with errno. */
int Kl_local_open_parent(int rootfd, const char *name, size_t dirlen);
/* Writes the whole body at fd's position: 0, or -1 with errno. */
int Kl_local_write_all(int fd, const kl_body *b);
/* Bytes of `name` before its last '/' (0 if none). */
size_t Kl_local_dir_len(const char *name);

/* The objstore ops of slot claims (local_claim.c). */
kl_status Kl_local_claim(kl_objstore *os, const char *claim, const char *object,
                         const kl_body *body, char **tag, kl_error *err);
kl_status Kl_local_claim_target(kl_objstore *os, const char *claim, char **object, char **tag,
                                kl_error *err);
kl_status Kl_local_publish(kl_objstore *os, const char *claim, const char *object, const char *tag,
                           const kl_body *body, kl_error *err);
kl_status Kl_local_unclaim(kl_objstore *os, const char *const *claims, size_t n, kl_error *err);
/* A claim in directory form, open as fd (a directory named `name`), read
 * as its body as every claim is: the file it holds, opened read-only; -1
 * with errno (ENOENT: not a claim, or an empty one). */
int Kl_local_claim_body(int fd, const char *name);
#endif
