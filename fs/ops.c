/* ops.c -- the FUSE operation table: each operation maps one request onto
 * the modules (nodes, appender, xattr) or the key's text view, and replies.
 *
 * The low-level API is used (as libfuse's passthrough_ll does) because the
 * tree is naturally inode-based -- nodes never go away, so an inode number
 * is just the node's address -- and because replies carry per-entry cache
 * timeouts and per-open flags (direct_io), which is how freshness for
 * `tail -f` is controlled.  Key files are opened with direct_io, except on
 * read-only mounts (see open_node): the kernel keeps no page cache for
 * them, so a size or byte seen is at most attr_timeout old, with no
 * invalidation protocol to get wrong.
 *
 * Everything that would change existing data (truncate, unlink, rename,
 * rmdir, writes not at the end, chmod) fails with EPERM and changes nothing;
 * on a read-only mount every write fails with EROFS. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

static klfs *FS(fuse_req_t req) { return fuse_req_userdata(req); }

static fhandle *FH(struct fuse_file_info *fi) { return (fhandle *)(uintptr_t)fi->fh; }

/* A directory listing snapshot taken at opendir, so offsets stay stable. */
typedef struct dirh {
    char **names;
    size_t n;
} dirh;

static int fill_entry(fuse_req_t req, node *n, struct fuse_entry_param *e)
{
    klfs *fs = FS(req);
    memset(e, 0, sizeof *e);
    e->ino = nodes_ino(fs, n);
    e->generation = 1;
    e->entry_timeout = fs->entry_timeout;
    e->attr_timeout = fs->attr_timeout;
    return nodes_stat(fs, n, -1, &e->attr);
}

static void reply_node(fuse_req_t req, node *n)
{
    struct fuse_entry_param e;
    int rc = fill_entry(req, n, &e);
    if (rc)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_entry(req, &e);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    /* O_TRUNC arrives with open(), so it can be refused there instead of
     * as a separate truncate that cannot tell `>` from `truncate`. */
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    /* Cached pages (read-only mounts only) are dropped when the size
     * changes, which is the only way a key's bytes change there; an mtime
     * change alone must not drop them. */
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    node *n;
    int rc = nodes_lookup(FS(req), nodes_get(FS(req), parent), name, &n);
    if (rc)
        fuse_reply_err(req, -rc);
    else
        reply_node(req, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    fuse_reply_none(req); /* nodes live until unmount */
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    klfs *fs = FS(req);
    node *n = nodes_get(fs, ino);
    struct stat st;
    int64_t base = fi && n->kind == N_VIEW ? (int64_t)FH(fi)->base : -1;
    int rc = nodes_stat(fs, n, base, &st);
    if (rc)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_attr(req, &st, fs->attr_timeout);
}

/* Only no-ops are allowed: a "truncate" to the current size, and times
 * (ignored, so that `touch` on an existing key succeeds and changes
 * nothing). */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    klfs *fs = FS(req);
    node *n = nodes_get(fs, ino);
    struct stat st;
    int rc = nodes_stat(fs, n, fi && n->kind == N_VIEW ? (int64_t)FH(fi)->base : -1, &st);
    if (rc == 0 && (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
        rc = fs->ro ? -EROFS : -EPERM;
    if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != st.st_size)
        rc = fs->ro ? -EROFS : -EPERM;
    if (rc)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_attr(req, &st, fs->attr_timeout);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    klfs *fs = FS(req);
    node *n;
    int rc = fs->ro                                  ? -EROFS
             : nodes_get(fs, parent)->kind != N_ROOT ? -EPERM
                                                     : nodes_mkkeyspace(fs, name, &n);
    if (rc)
        fuse_reply_err(req, -rc);
    else
        reply_node(req, n);
}

/* unlink, rmdir, rename, link, symlink: a log is append-only. */
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fuse_reply_err(req, FS(req)->ro ? EROFS : EPERM);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    fuse_reply_err(req, FS(req)->ro ? EROFS : EPERM);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    fuse_reply_err(req, FS(req)->ro ? EROFS : EPERM);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    fuse_reply_err(req, FS(req)->ro ? EROFS : EPERM);
}

/* /.klstore/stats: the text as of open, so that a reader sees one
 * consistent snapshot however it reads. */
static int open_stats(klfs *fs, node *n, struct fuse_file_info *fi)
{
    fhandle *fh = fh_new(fs, n, 0, 0);
    if (!fh || !(fh->snap = stats_snapshot(fs, &fh->snap_len))) {
        if (fh) fh_free(fs, fh);
        return -ENOMEM;
    }
    fi->fh = (uintptr_t)fh;
    fi->direct_io = 1;
    return 0;
}

/* Checks an open of node n with `flags`; creates the handle. */
static int open_node(klfs *fs, node *n, int flags, struct fuse_file_info *fi)
{
    int writing = (flags & O_ACCMODE) != O_RDONLY;
    if (n->kind == N_STATS) return writing ? -EACCES : open_stats(fs, n, fi);
    if (n->kind != N_KEY && n->kind != N_VIEW) return -EISDIR;
    if (writing && fs->ro) return -EROFS;
    if (writing && n->kind == N_VIEW) return -EPERM;
    uint64_t base = 0;
    if (n->kind == N_VIEW) {
        int rc = nodes_view_base(fs, n, &base);
        if (rc) return rc;
    } else if (flags & O_TRUNC) {
        kl_error err = {0};
        kl_textview_info info;
        kl_textview_refresh(n->tv, fs->refresh_ms, &err);
        kl_textview_stat(n->tv, &info);
        if (info.size > 0) return fs->ro ? -EROFS : -EPERM;
    }
    fhandle *fh = fh_new(fs, n, writing, (flags & O_APPEND) != 0);
    if (!fh) return -ENOMEM;
    fh->base = base;
    fi->fh = (uintptr_t)fh;
    /* On a read-only mount a key's bytes never change: no pending lines
     * can move, compaction keeps every byte where it was, and the log only
     * grows.  So its pages may stay in the kernel's cache across opens,
     * and the kernel reads ahead in large requests; a new size (getattr,
     * or a read past the cached end once attr_timeout passed) drops them.
     * Everything else uses direct_io: lines this mount appended sit at the
     * end until listed and may move then, and a view's start depends on
     * when it is opened. */
    int cached = fs->ro && n->kind == N_KEY;
    fi->direct_io = !cached;
    fi->keep_cache = cached;
    return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    klfs *fs = FS(req);
    int rc = open_node(fs, nodes_get(fs, ino), fi->flags, fi);
    if (rc)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_open(req, fi);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    klfs *fs = FS(req);
    node *ks = nodes_get(fs, parent), *k = NULL;
    int rc = fs->ro ? -EROFS : ks->kind != N_KEYSPACE ? -EPERM : 0;
    if (rc == 0 && (fi->flags & O_EXCL) && nodes_lookup(fs, ks, name, &k) == 0) rc = -EEXIST;
    if (rc == 0) rc = nodes_mkkey(fs, ks, name, &k);
    if (rc == 0) rc = open_node(fs, k, fi->flags, fi);
    struct fuse_entry_param e;
    if (rc == 0 && (rc = fill_entry(req, k, &e)) != 0) fh_free(fs, FH(fi));
    if (rc)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_create(req, &e, fi);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    klfs *fs = FS(req);
    node *ks = nodes_get(fs, parent), *k;
    int rc = fs->ro ? -EROFS : (!S_ISREG(mode) || ks->kind != N_KEYSPACE) ? -EPERM : 0;
    if (rc == 0) rc = nodes_mkkey(fs, ks, name, &k);
    if (rc)
        fuse_reply_err(req, -rc);
    else
        reply_node(req, k);
}

/* Each FUSE worker thread reads into its own buffer, kept for its life:
 * a fresh buffer per request (up to 1 MiB with the kernel's readahead)
 * would be a new mapping each time, whose page faults cost more than the
 * copy into it (measured: a cat of 256 MB 0.16 s vs 0.27 s). */
static pthread_key_t read_buf_key;
static pthread_once_t read_buf_once = PTHREAD_ONCE_INIT;
typedef struct read_buf {
    size_t cap;
    uint8_t data[];
} read_buf;

static void read_buf_key_init(void) { pthread_key_create(&read_buf_key, free); }

static uint8_t *read_buffer(size_t size)
{
    pthread_once(&read_buf_once, read_buf_key_init);
    read_buf *b = pthread_getspecific(read_buf_key);
    if (b && b->cap >= size) return b->data;
    read_buf *nb = malloc(sizeof *nb + (size ? size : 1));
    if (!nb || pthread_setspecific(read_buf_key, nb) != 0) {
        free(nb);
        return NULL;
    }
    free(b);
    nb->cap = size;
    return nb->data;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    klfs *fs = FS(req);
    fhandle *fh = FH(fi);
    if (fh->snap) {
        /* Replied from a copy: the kernel may wake the reader, which may
         * close the file (release frees the snapshot on another thread),
         * before our writev of the reply has returned. */
        size_t at = (uint64_t)off < fh->snap_len ? (size_t)off : fh->snap_len;
        size_t n = size < fh->snap_len - at ? size : fh->snap_len - at;
        uint8_t *copy = read_buffer(n);
        if (!copy) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        memcpy(copy, fh->snap + at, n);
        fuse_reply_buf(req, (const char *)copy, n);
        return;
    }
    node *k = fh->n->kind == N_VIEW ? fh->n->base : fh->n;
    uint8_t *buf = read_buffer(size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t got = 0;
    kl_error err = {0};
    kl_status st =
        kl_textview_read(k->tv, fh->base + (uint64_t)off, buf, size, fs->refresh_ms, &got, &err);
    if (st) {
        kl_log(KL_LOG_ERROR, "read %s/%s: %s", k->parent->name, k->name, err.msg);
        fuse_reply_err(req, klfs_errno(st));
    } else {
        KLFS_COUNT(fs, read_bytes, got);
        fuse_reply_buf(req, (const char *)buf, got);
    }
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    klfs *fs = FS(req);
    fhandle *fh = FH(fi);
    ssize_t n = !fh->writable ? -EBADF
                : fs->ro      ? -EROFS
                              : appender_write(fs, fh, (const uint8_t *)buf, size, (uint64_t)off,
                                               fi->lock_owner);
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_write(req, (size_t)n);
}

/* close(2) and fsync(2): durable or EIO.  The lock owner of a flush
 * identifies the closing process's descriptor table. */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fhandle *fh = FH(fi);
    uint64_t owner = fi->lock_owner ? fi->lock_owner : 1;
    fuse_reply_err(req, fh->writable ? -appender_flush(FS(req), fh, owner) : 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    fhandle *fh = FH(fi);
    fuse_reply_err(req, fh->writable ? -appender_flush(FS(req), fh, 0) : 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    klfs *fs = FS(req);
    fhandle *fh = FH(fi);
    int rc = fh->writable ? appender_flush(fs, fh, 0) : 0;
    if (fh->writable) kl_textview_pending_release(fh->n->tv);
    fh_free(fs, fh);
    fuse_reply_err(req, -rc);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    klfs *fs = FS(req);
    dirh *d = calloc(1, sizeof *d);
    int rc = d ? nodes_list(fs, nodes_get(fs, ino), &d->names, &d->n) : -ENOMEM;
    if (rc) {
        free(d);
        fuse_reply_err(req, -rc);
        return;
    }
    fi->fh = (uintptr_t)d;
    fuse_reply_open(req, fi);
}

/* Entries: 0 ".", 1 "..", then the snapshot. */
static const char *entry_name(const dirh *d, size_t i)
{
    return i == 0 ? "." : i == 1 ? ".." : d->names[i - 2];
}

/* An entry's type and the d_ino that stat shows (nodes_path_ino), without
 * looking the name up.  The directories are the root (1) and keyspaces,
 * whose parent is the root. */
static void entry_type(const node *dir, size_t i, const char *name, struct stat *st)
{
    const char *ks = dir->kind != N_ROOT ? dir->name : NULL;
    st->st_mode = i < 2 || dir->kind == N_ROOT ? S_IFDIR : S_IFREG;
    st->st_ino = i == 0 ? nodes_path_ino(NULL, ks) : i == 1 ? 1 : nodes_path_ino(ks, name);
}

/* readdir, and readdirplus (plus = 1): the same entries, the latter with
 * each entry's attributes (the kernel asks for them when it expects stats,
 * as for ls -l), sparing a lookup per name.  In a keyspace the keys a plus
 * reply can hold are loaded first, their listings in parallel
 * (nodes_preload): one overlapped round trip per key.  Names without a
 * node (keyspaces in the root, keys without data) and "." and ".." go
 * without attributes (ino 0), and the kernel looks them up itself. */
static void reply_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      struct fuse_file_info *fi, int plus)
{
    klfs *fs = FS(req);
    dirh *d = (dirh *)(uintptr_t)fi->fh;
    node *dir = nodes_get(fs, ino);
    char *buf = malloc(size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t first = off > 2 ? (size_t)off - 2 : 0;
    if (plus && dir->kind == N_KEYSPACE && first < d->n) {
        size_t fit = size / 160 + 1; /* an entry with attributes is ~160 bytes */
        size_t left = d->n - first;
        /* The kernel asks a page of entries at a time: list well ahead of
         * it, so that the round trips overlap in batches of many keys. */
        nodes_preload(fs, dir, d->names + first, left < fit ? left : fit, left < 256 ? left : 256);
    }
    size_t used = 0;
    for (size_t i = (size_t)off; i < d->n + 2; i++) {
        const char *name = entry_name(d, i);
        struct fuse_entry_param e = {0};
        node *n = plus && i >= 2 && dir->kind == N_KEYSPACE ? nodes_find(fs, dir, name) : NULL;
        if (!n || fill_entry(req, n, &e) != 0) {
            memset(&e, 0, sizeof e);
            entry_type(dir, i, name, &e.attr);
        }
        size_t need =
            plus ? fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)i + 1)
                 : fuse_add_direntry(req, buf + used, size - used, name, &e.attr, (off_t)i + 1);
        if (need > size - used) break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    reply_dir(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    reply_dir(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    dirh *d = (dirh *)(uintptr_t)fi->fh;
    kl_strv_free(d->names, d->n);
    free(d);
    fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs st = {0};
    st.f_bsize = st.f_frsize = 4096;
    st.f_blocks = st.f_bfree = st.f_bavail = 1ull << 40; /* an object store is unbounded */
    st.f_files = st.f_ffree = st.f_favail = 1ull << 32;
    st.f_namemax = KL_NAME_MAX;
    fuse_reply_statfs(req, &st);
}

static void reply_xattr(fuse_req_t req, ssize_t n, const char *buf, size_t size)
{
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else if (size == 0)
        fuse_reply_xattr(req, (size_t)n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    char buf[512];
    klfs *fs = FS(req);
    ssize_t n = xattr_get(fs, nodes_get(fs, ino), name, buf, size < sizeof buf ? size : sizeof buf);
    reply_xattr(req, n, buf, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    char buf[512];
    klfs *fs = FS(req);
    ssize_t n = xattr_list(fs, nodes_get(fs, ino), buf, size < sizeof buf ? size : sizeof buf);
    reply_xattr(req, n, buf, size);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    fuse_reply_err(req, FS(req)->ro ? EROFS : EPERM);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    fuse_reply_err(req, FS(req)->ro ? EROFS : EPERM);
}

const struct fuse_lowlevel_ops klfs_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .create = op_create,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .fsync = op_fsync,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .setxattr = op_setxattr,
    .removexattr = op_removexattr,
};
