/* local_claim.c -- slot claims of the local store (klstore.h "Slot
 * claims"; the protocol is FORMAT.md "Concurrent writers").
 *
 * A claim C holding object O is a file C with O's body and O's name in
 * the extended attribute user.klstore.object.  It is written as an
 * O_TMPFILE (no name, so a crash leaves nothing behind), synced, and
 * linked in as C: link(2) fails if C exists, so the claim is create-only
 * and appears atomically, name and body together.  Publishing links the
 * same inode as O, so the body is written and synced once, and one inode
 * serves claim and object: a claim costs no mkdir, rename or second file
 * (those were a third of a small object's cost on ext4).
 *
 * File systems without O_TMPFILE or user xattrs (e.g. tmpfs before Linux
 * 6.6) get the earlier form, which every function here also reads: the
 * directory C holding one file named O, made in a temporary directory and
 * renamed into place with RENAME_NOREPLACE.
 *
 * Claims are not synced on their own: publish syncs the key directory,
 * which holds both names.  A crash before that may lose the claim or (for
 * the directory form) leave it empty; it was never acknowledged, and
 * claim_target reports an empty claim so that a writer can remove it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "local_os.h"

#define XATTR_OBJECT "user.klstore.object"

static const char *base_of(const char *name)
{
    const char *s = strrchr(name, '/');
    return s ? s + 1 : name;
}

/* Links the file open as fd as `name` in dfd.  AT_EMPTY_PATH needs
 * CAP_DAC_READ_SEARCH; without it the /proc link does the same. */
static int link_fd(int fd, int dfd, const char *name)
{
    if (linkat(fd, "", dfd, name, AT_EMPTY_PATH) == 0) return 0;
    if (errno != ENOENT && errno != EPERM && errno != EINVAL) return -1;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, dfd, name, AT_SYMLINK_FOLLOW);
}

static int unsupported(int e) { return e == EOPNOTSUPP || e == EISDIR || e == EINVAL; }

/* The file form: 0 done, -1 errno (EEXIST: taken), 1 not supported here. */
static int file_claim(int dfd, const char *cb, const char *ob, const kl_body *body)
{
    int fd = openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return unsupported(errno) ? 1 : -1;
    int rc = -1;
    if (fsetxattr(fd, XATTR_OBJECT, ob, strlen(ob), XATTR_CREATE) != 0)
        rc = errno == EOPNOTSUPP ? 1 : -1;
    else if (Kl_local_write_all(fd, body) == 0 && fsync(fd) == 0)
        rc = link_fd(fd, dfd, cb);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* Removes what a failed directory claim left in its temporary directory. */
static void drop_tmpdir(int dfd, const char *tmp, const char *file)
{
    int t = openat(dfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (t >= 0) {
        unlinkat(t, file, 0);
        close(t);
    }
    unlinkat(dfd, tmp, AT_REMOVEDIR);
}

/* The directory form: 0 done, -1 errno (EEXIST or ENOTEMPTY: taken). */
static int dir_claim(local_os *l, int dfd, const char *cb, const char *ob, const kl_body *body)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, TMP_PREFIX "%d.%lu.d", (int)getpid(),
             atomic_fetch_add(&l->tmp_seq, 1));
    int fd = -1, tfd = -1, r = -1;
    if (mkdirat(dfd, tmp, 0755) != 0) return -1;
    if ((tfd = openat(dfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0 &&
        (fd = openat(tfd, ob, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) >= 0 &&
        Kl_local_write_all(fd, body) == 0 && fsync(fd) == 0) {
        r = renameat2(dfd, tmp, dfd, cb, RENAME_NOREPLACE);
        if (r != 0 && errno == EINVAL)       /* a file system without the flag: a   */
            r = renameat(dfd, tmp, dfd, cb); /* non-empty target still fails */
    }
    int e = errno;
    if (fd >= 0) close(fd);
    if (tfd >= 0) close(tfd);
    if (r != 0) drop_tmpdir(dfd, tmp, ob);
    errno = e;
    return r;
}

kl_status Kl_local_claim(kl_objstore *os, const char *claim, const char *object,
                         const kl_body *body, char **tag, kl_error *err)
{
    (void)tag; /* the file form checks the inode's name instead (publish) */
    local_os *l = (local_os *)os;
    kl_status st = Kl_local_check_name(claim, err);
    if (st || (st = Kl_local_check_name(object, err))) return st;
    const char *cb = base_of(claim), *ob = base_of(object);
    int dfd = Kl_local_open_parent(l->rootfd, claim, Kl_local_dir_len(claim));
    if (dfd < 0) return Kl_local_io_err(err, "create directories for", claim);
    int r = atomic_load(&l->dir_claims) ? 1 : file_claim(dfd, cb, ob, body);
    if (r == 1) {
        atomic_store(&l->dir_claims, 1);
        r = dir_claim(l, dfd, cb, ob, body);
    }
    int e = errno;
    close(dfd);
    if (r == 0) return KL_OK;
    if (e == EEXIST || e == ENOTEMPTY)
        return kl_seterr(err, KL_EEXIST, "claim '%s' is taken", claim);
    errno = e;
    return Kl_local_io_err(err, "claim", claim);
}

/* The name of the object claim `fd` holds, into buf: 0 found, 1 none
 * (an empty claim directory, or a file without the attribute), -1 errno. */
static int claim_object(int fd, char *buf, size_t cap)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) return -1;
    if (!S_ISDIR(sb.st_mode)) {
        ssize_t n = fgetxattr(fd, XATTR_OBJECT, buf, cap - 1);
        if (n < 0) return errno == ENODATA ? 1 : -1;
        buf[n] = 0;
        return n == 0 || memchr(buf, '/', (size_t)n) || strlen(buf) != (size_t)n ? 1 : 0;
    }
    int dup_fd = dup(fd);
    DIR *d = dup_fd < 0 ? NULL : fdopendir(dup_fd);
    if (!d) {
        if (dup_fd >= 0) close(dup_fd);
        return -1;
    }
    int rc = 1;
    struct dirent *ent;
    while (rc == 1 && (ent = readdir(d)))
        if (ent->d_name[0] != '.' && snprintf(buf, cap, "%s", ent->d_name) < (int)cap) rc = 0;
    closedir(d);
    return rc;
}

int Kl_local_claim_body(int fd, const char *name)
{
    char ent[256];
    int rc = strncmp(base_of(name), "claim_o", 7) == 0 ? claim_object(fd, ent, sizeof ent) : 1;
    if (rc == 1) errno = ENOENT;
    return rc ? -1 : openat(fd, ent, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

kl_status Kl_local_claim_target(kl_objstore *os, const char *claim, char **object, char **tag,
                                kl_error *err)
{
    (void)tag;
    kl_status st = Kl_local_check_name(claim, err);
    if (st) return st;
    char ent[256];
    int fd = openat(((local_os *)os)->rootfd, claim, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int rc = fd < 0 ? -1 : claim_object(fd, ent, sizeof ent);
    int e = errno;
    if (fd >= 0) close(fd);
    errno = e;
    if (rc < 0) return Kl_local_io_err(err, "read claim", claim);
    if (rc == 1)
        return kl_seterr(err, KL_EBADDATA,
                         "claim '%s' holds no object (left by a crash "
                         "before it was published)",
                         claim);
    size_t dl = (size_t)(base_of(claim) - claim);
    if (asprintf(object, "%.*s%s", (int)dl, claim, ent) < 0)
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    return Kl_local_check_name(*object, err);
}

static kl_status not_held(kl_error *err, const char *object, const char *claim)
{
    return kl_seterr(err, KL_ENOTFOUND, "object '%s' not found: claim '%s' holds another", object,
                     claim);
}

/* Whether `name` in dfd is the file open as fd, or one that carries the
 * same object name (a claim made again for the same object): 1 yes, 0 no,
 * -1 cannot tell (errno).  A name gone already (merged away) counts as
 * the same: nothing to undo. */
static int links_same(int fd, int dfd, const char *name)
{
    struct stat a, b;
    if (fstat(fd, &a) != 0) return -1;
    if (fstatat(dfd, name, &b, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 1 : -1;
    if (a.st_ino == b.st_ino && a.st_dev == b.st_dev) return 1;
    int nfd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (nfd < 0) return errno == ENOENT ? 1 : -1;
    char held[256];
    int rc = claim_object(nfd, held, sizeof held), e = errno;
    close(nfd);
    errno = e;
    return rc < 0 ? -1 : rc == 0 && strcmp(held, name) == 0;
}

/* Links the claim's body as the object, if the claim holds that object:
 * the claim's name is checked on the open file, linked by name, and the
 * link checked to be that file, so a claim removed and made again
 * meanwhile (by a writer with a stale view) cannot lend its body to our
 * name, and a claim removed cannot be published.  No tag is needed. */
kl_status Kl_local_publish(kl_objstore *os, const char *claim, const char *object, const char *tag,
                           const kl_body *body, kl_error *err)
{
    (void)tag, (void)body;
    local_os *l = (local_os *)os;
    kl_status st = Kl_local_check_name(claim, err);
    if (st || (st = Kl_local_check_name(object, err))) return st;
    int fd = openat(l->rootfd, claim, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return Kl_local_io_err(err, "publish from claim", claim);
    struct stat sb;
    int dfd = -1, r = fstat(fd, &sb);
    if (r == 0 && S_ISDIR(sb.st_mode)) { /* the directory form: its file's name is O */
        char src[4096];
        if (snprintf(src, sizeof src, "%s/%s", claim, base_of(object)) >= (int)sizeof src) {
            close(fd);
            return kl_seterr(err, KL_EINVAL, "claim name '%s' is too long", claim);
        }
        r = linkat(l->rootfd, src, l->rootfd, object, 0);
    } else if (r == 0) {
        char held[256];
        int rc = claim_object(fd, held, sizeof held);
        if (rc != 0 || strcmp(held, base_of(object)) != 0) {
            close(fd);
            if (rc < 0) return Kl_local_io_err(err, "read claim", claim);
            return not_held(err, object, claim);
        }
        /* Linked by name, not from the open file: a claim deleted meanwhile
         * must not come back as an object, because its deleter has already
         * looked for such copies (FORMAT.md "Skipping the check"). */
        dfd = Kl_local_open_parent(l->rootfd, object, Kl_local_dir_len(object));
        r = dfd < 0 ? -1 : linkat(l->rootfd, claim, dfd, base_of(object), 0);
        int same = r == 0 ? links_same(fd, dfd, base_of(object)) : 1;
        if (same <= 0) {
            int e = errno;
            if (same == 0) /* the claim was made again (by a writer with a */
                unlinkat(dfd, base_of(object), 0); /* stale view) since: not our body */
            close(dfd);
            close(fd);
            errno = e;
            /* Cannot tell: the link stays (it is most likely right) and the
             * append fails, as after any I/O error of unknown outcome. */
            return same == 0 ? not_held(err, object, claim)
                             : Kl_local_io_err(err, "check the published", object);
        }
    }
    int e = errno;
    close(fd);
    if (r != 0 && e != EEXIST) {
        if (dfd >= 0) close(dfd);
        errno = e;
        return Kl_local_io_err(err, "publish", object);
    }
    if (dfd < 0) dfd = Kl_local_open_parent(l->rootfd, object, Kl_local_dir_len(object));
    r = dfd < 0 ? -1 : fsync(dfd);
    if (dfd >= 0) close(dfd);
    if (r != 0) return Kl_local_io_err(err, "sync directory of", object);
    return KL_OK;
}

/* Empties and removes a claim of the directory form. */
static kl_status unclaim_dir(local_os *l, const char *claim, kl_error *err)
{
    /* ENOTEMPTY: the claim went and a new one of the same slot came (from
     * a writer with a stale view, which its check will catch); removing
     * that one too is as harmless, a few times at most. */
    for (int round = 0;; round++) {
        char ent[256];
        int rc;
        for (;;) {
            int fd = openat(l->rootfd, claim, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            rc = fd < 0 ? -1 : claim_object(fd, ent, sizeof ent);
            if (rc == 0) {
                int u = unlinkat(fd, ent, 0);
                int e = errno;
                close(fd);
                if (u != 0 && e != ENOENT) {
                    errno = e;
                    return Kl_local_io_err(err, "delete claim", claim);
                }
                continue;
            }
            if (fd >= 0) close(fd);
            break;
        }
        if (rc < 0 && errno != ENOENT && errno != ENOTDIR)
            return Kl_local_io_err(err, "read claim", claim);
        if (unlinkat(l->rootfd, claim, AT_REMOVEDIR) == 0 || errno == ENOENT) return KL_OK;
        if (errno == ENOTDIR) return KL_OK; /* replaced by a file claim: the next pass */
        if (errno != ENOTEMPTY) return Kl_local_io_err(err, "delete claim", claim);
        if (round == 4) return KL_OK;
    }
}

kl_status Kl_local_unclaim(kl_objstore *os, const char *const *claims, size_t n, kl_error *err)
{
    local_os *l = (local_os *)os;
    for (size_t i = 0; i < n; i++) {
        kl_status st = Kl_local_check_name(claims[i], err);
        if (st) return st;
        if (unlinkat(l->rootfd, claims[i], 0) == 0 || errno == ENOENT) continue;
        if (errno != EISDIR && errno != EPERM)
            return Kl_local_io_err(err, "delete claim", claims[i]);
        if ((st = unclaim_dir(l, claims[i], err))) return st;
    }
    return KL_OK;
}
