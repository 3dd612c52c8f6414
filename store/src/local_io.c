/* local_io.c -- the file-system helpers of the local store (local_os.h):
 * storable names, errno as a kl_status, key directories made on demand,
 * whole writes.
 *
 * Why a file of its own: objstore_local.c (objects) and local_claim.c
 * (slot claims, reached through objstore_local.c's ops table) both need
 * them; kept in objstore_local.c they made the two files call each other.
 * Below both, the local store's files call each other one way. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "local_os.h"

/* S3 allows names a filesystem cannot hold ("a//b", "../x"); refuse them
 * rather than write somewhere unexpected. */
kl_status Kl_local_check_name(const char *name, kl_error *err)
{
    if (!*name || name[0] == '/' || name[strlen(name) - 1] == '/')
        return kl_seterr(err, KL_EINVAL,
                         "object name '%s' is not storable in a "
                         "directory (empty, or leading/trailing '/')",
                         name);
    const char *p = name;
    while (*p) {
        const char *e = strchrnul(p, '/');
        size_t n = (size_t)(e - p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.') ||
            strncmp(p, TMP_PREFIX, strlen(TMP_PREFIX)) == 0 || n > 255)
            return kl_seterr(err, KL_EINVAL,
                             "object name '%s' has a component "
                             "a directory store cannot hold",
                             name);
        p = *e ? e + 1 : e;
    }
    return KL_OK;
}

kl_status Kl_local_io_err(kl_error *err, const char *op, const char *name)
{
    int e = errno;
    if (e == ENOENT || e == ENOTDIR)
        return kl_seterr(err, KL_ENOTFOUND, "object '%s' not found", name);
    if (e == ENOMEM) return kl_seterr(err, KL_ENOMEM, "%s '%s': out of memory", op, name);
    if (e == ENOSPC || e == EDQUOT)
        return kl_seterr(err, KL_ENOSPC, "%s '%s': %s", op, name, strerror(e));
    return kl_seterr(err, KL_EIO, "%s '%s': %s", op, name, strerror(e));
}

/* mkdir -p of the directories in `name` (all but the last component).
 * New directories are fsync'ed into their parents so the object survives
 * a crash together with its path. */
static int make_parents(int rootfd, const char *name)
{
    char path[4096];
    if (strlen(name) >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(path, name);
    for (char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        if (mkdirat(rootfd, path, 0755) == 0) {
            char *up = strrchr(path, '/');
            if (up) *up = 0;
            int pfd = openat(rootfd, up ? path : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            int r = pfd < 0 ? -1 : fsync(pfd);
            if (pfd >= 0) close(pfd);
            if (r != 0) return -1;
            if (up) *up = '/';
        } else if (errno != EEXIST) {
            return -1;
        }
        *s = '/';
    }
    return 0;
}

/* Opens the directory that holds object `name` (dirlen bytes of it),
 * creating it first only if it is missing: the common case, an existing
 * key directory, costs one open and no mkdir per path component. */
int Kl_local_open_parent(int rootfd, const char *name, size_t dirlen)
{
    char dir[4096];
    if (dirlen >= sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dir, name, dirlen);
    dir[dirlen] = 0;
    const char *path = dirlen ? dir : ".";
    int fd = openat(rootfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && make_parents(rootfd, name) == 0)
        fd = openat(rootfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd;
}

int Kl_local_write_all(int fd, const kl_body *b)
{
    size_t i = 0, off = 0; /* next piece, and how much of it is written */
    while (i < b->n) {
        struct iovec v[64];
        int k = 0;
        for (size_t j = i; j < b->n && k < 64; j++, k++) {
            size_t skip = j == i ? off : 0;
            v[k] = (struct iovec){(char *)b->v[j].iov_base + skip, b->v[j].iov_len - skip};
        }
        ssize_t w = writev(fd, v, k);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        size_t left = (size_t)w;
        while (i < b->n && left >= b->v[i].iov_len - off) {
            left -= b->v[i].iov_len - off;
            i++;
            off = 0;
        }
        off += left;
    }
    return 0;
}

size_t Kl_local_dir_len(const char *name)
{
    const char *slash = strrchr(name, '/');
    return slash ? (size_t)(slash - name) : 0;
}
