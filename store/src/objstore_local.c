/* objstore_local.c -- the local-directory object store, klstore's embedded
 * default: no server needed.
 *
 * Object K is the file ROOT/K, so a store directory is a faithful mirror of
 * a bucket: syncing it to S3 with any S3 tool gives a valid klstore bucket,
 * and back.  To keep that promise it behaves like S3 where callers could
 * notice:
 *  - a PUT is atomic and durable: write a temporary file in the target
 *    directory, fsync it, rename (or link, for put-if-absent) it into place,
 *    fsync the directory.  Readers never see a partial object;
 *  - LIST returns names in byte order (S3's order), recursively unless a
 *    delimiter rolls subdirectories up into common prefixes, and never
 *    shows empty directories or our temporary files;
 *  - a missing object is KL_ENOTFOUND.
 * Temporary files are named ".kltmp.*"; klstore names never start with '.'.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "klstore.h"
#include "local_os.h"
#include "recycle.h"

static local_os *L(kl_objstore *os) { return (local_os *)os; }

/* One object of a put on its way in: its directory (shared with earlier
 * items in the same directory, closed by the owner) and temporary name. */
typedef struct staged {
    int dfd;
    int owns_dfd;
    const char *base; /* last component of the name */
    char tmp[64];     /* temporary name in dfd, "" once gone */
} staged;

/* Finds or opens the directory of item i, reusing an earlier item's. */
static kl_status stage_dir(local_os *l, const kl_put_item *items, staged *v, size_t i,
                           kl_error *err)
{
    size_t dl = Kl_local_dir_len(items[i].name);
    v[i].base = items[i].name + (dl ? dl + 1 : 0);
    for (size_t j = 0; j < i; j++)
        if (Kl_local_dir_len(items[j].name) == dl &&
            memcmp(items[j].name, items[i].name, dl) == 0) {
            v[i].dfd = v[j].dfd;
            return KL_OK;
        }
    v[i].dfd = Kl_local_open_parent(l->rootfd, items[i].name, dl);
    if (v[i].dfd < 0) return Kl_local_io_err(err, "create directories for", items[i].name);
    v[i].owns_dfd = 1;
    return KL_OK;
}

/* Writes item i to a temporary file next to its target and syncs it. */
static kl_status stage_data(local_os *l, const kl_put_item *it, staged *sv, kl_error *err)
{
    snprintf(sv->tmp, sizeof sv->tmp, TMP_PREFIX "%d.%lu", (int)getpid(),
             atomic_fetch_add(&l->tmp_seq, 1));
    int fd = openat(sv->dfd, sv->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        sv->tmp[0] = 0;
        return Kl_local_io_err(err, "create temporary file for", it->name);
    }
    if (Kl_local_write_all(fd, KL_BODY_ONE(it->data, it->len)) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return Kl_local_io_err(err, "write", it->name);
    }
    close(fd);
    return KL_OK;
}

/* Moves a synced temporary file into place: rename, or link(2) for
 * put-if-absent (it fails if the target exists: atomic create-if-absent). */
static kl_status publish(const kl_put_item *it, staged *sv, kl_error *err)
{
    int r;
    if (it->flags & KL_PUT_IF_ABSENT) {
        r = linkat(sv->dfd, sv->tmp, sv->dfd, sv->base, 0);
        int e = errno;
        unlinkat(sv->dfd, sv->tmp, 0);
        sv->tmp[0] = 0;
        errno = e;
        if (r != 0 && e == EEXIST)
            return kl_seterr(err, KL_EEXIST, "object '%s' already exists", it->name);
    } else {
        r = renameat(sv->dfd, sv->tmp, sv->dfd, sv->base);
    }
    if (r != 0) return Kl_local_io_err(err, "store", it->name);
    sv->tmp[0] = 0;
    return KL_OK;
}

/* Stages every object (temporary file, fsync), publishes them in order,
 * then syncs each directory once: with n objects in one directory that is
 * n+1 syncs instead of 2n.  Nothing is acknowledged before the directory
 * syncs succeed, so a failed sync fails the whole batch. */
static kl_status local_put_batch(kl_objstore *os, const kl_put_item *items, size_t n, kl_error *err)
{
    local_os *l = L(os);
    staged one[4], *v = n <= 4 ? one : calloc(n, sizeof *v);
    if (!v) return kl_seterr(err, KL_ENOMEM, "put: out of memory");
    memset(v, 0, n * sizeof *v);
    kl_status st = KL_OK;
    size_t opened = 0;
    for (size_t i = 0; i < n && !st; i++)
        if (!(st = Kl_local_check_name(items[i].name, err)) &&
            !(st = stage_dir(l, items, v, i, err)))
            opened = i + 1;
    for (size_t i = 0; i < n && !st; i++) st = stage_data(l, &items[i], &v[i], err);
    for (size_t i = 0; i < n && !st; i++) st = publish(&items[i], &v[i], err);
    for (size_t i = 0; i < opened && !st; i++)
        if (v[i].owns_dfd && fsync(v[i].dfd) != 0)
            st = Kl_local_io_err(err, "sync directory of", items[i].name);
    /* Items share directory fds: every unlink before any close. */
    for (size_t i = 0; i < opened; i++)
        if (v[i].tmp[0]) unlinkat(v[i].dfd, v[i].tmp, 0);
    for (size_t i = 0; i < opened; i++)
        if (v[i].owns_dfd) close(v[i].dfd);
    if (v != one) free(v);
    return st;
}

static kl_status local_put(kl_objstore *os, const char *name, const void *data, size_t len,
                           int flags, kl_error *err)
{
    kl_put_item it = {.name = name, .data = data, .len = len, .flags = flags};
    return local_put_batch(os, &it, 1, err);
}

/* Opens an object for reading: a regular file (a directory is "not
 * found", as a common prefix is not an object on S3, unless it is a claim
 * in directory form, which reads as its body). */
static kl_status open_object(local_os *l, const char *name, int *fd, uint64_t *size, kl_error *err)
{
    kl_status st = Kl_local_check_name(name, err);
    if (st) return st;
    *fd = openat(l->rootfd, name, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) return Kl_local_io_err(err, "open", name);
    struct stat sb;
    if (fstat(*fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        int body = Kl_local_claim_body(*fd, name), e = errno;
        close(*fd);
        errno = e;
        if ((*fd = body) < 0) return Kl_local_io_err(err, "open", name);
    }
    if (fstat(*fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (S_ISDIR(sb.st_mode)) errno = ENOENT;
        close(*fd);
        return Kl_local_io_err(err, "stat", name);
    }
    *size = (uint64_t)sb.st_size;
    return KL_OK;
}

static kl_status local_get(kl_objstore *os, const char *name, uint64_t off, uint64_t len,
                           uint8_t **data, size_t *out_len, kl_error *err)
{
    int fd;
    uint64_t size;
    kl_status st = open_object(L(os), name, &fd, &size, err);
    if (st) return st;
    uint64_t n = off >= size ? 0 : (len > size - off ? size - off : len);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return kl_seterr(err, KL_ENOMEM, "get '%s': out of memory", name);
    }
    uint64_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0) errno = EIO; /* shrank under us: objects are immutable */
            free(buf);
            close(fd);
            return Kl_local_io_err(err, "read", name);
        }
        got += (uint64_t)r;
    }
    close(fd);
    *data = buf;
    *out_len = n;
    return KL_OK;
}

static void free_view(kl_mapping *m)
{
    Kl_recycle_put((void *)m->data);
    *m = (kl_mapping){0};
}

/* A "map" of an immutable object is one pread into a private buffer, not
 * mmap: measured on page-cached objects of 140 KB - 1 MB, mmap with
 * MAP_POPULATE plus the munmap (a TLB flush each, very dear under a
 * hypervisor) cost 5-10x a plain copy, and readers touch every byte once
 * anyway.  Buffers are recycled (recycle.h): fresh memory costs page
 * faults.  Like a mapping, the buffer stays exact even if a compaction
 * deletes the object meanwhile.  Kept as a map op so the reader knows that
 * fetching is local and skips its readahead threads. */
static kl_status local_map(kl_objstore *os, const char *name, kl_mapping *out, kl_error *err)
{
    int fd;
    uint64_t size;
    kl_status st = open_object(L(os), name, &fd, &size, err);
    if (st) return st;
    uint8_t *buf = size <= SIZE_MAX / 2 ? Kl_recycle_get((size_t)size) : NULL;
    if (!buf) {
        close(fd);
        return kl_seterr(err, KL_ENOMEM, "map '%s': out of memory", name);
    }
    for (uint64_t got = 0; got < size;) {
        ssize_t r = pread(fd, buf + got, (size_t)(size - got), (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0) errno = EIO; /* shrank under us: objects are immutable */
            Kl_recycle_put(buf);
            close(fd);
            return Kl_local_io_err(err, "read", name);
        }
        got += (uint64_t)r;
    }
    close(fd);
    *out = (kl_mapping){.data = buf, .len = (size_t)size, .release = free_view};
    return KL_OK;
}

static kl_status local_head(kl_objstore *os, const char *name, uint64_t *size, kl_error *err)
{
    kl_status st = Kl_local_check_name(name, err);
    if (st) return st;
    struct stat sb;
    if (fstatat(L(os)->rootfd, name, &sb, 0) != 0) return Kl_local_io_err(err, "stat", name);
    if (!S_ISREG(sb.st_mode)) return kl_seterr(err, KL_ENOTFOUND, "object '%s' not found", name);
    if (size) *size = (uint64_t)sb.st_size;
    return KL_OK;
}

/* ---- LIST ---------------------------------------------------------- */

typedef struct entry {
    char *name; /* full object name, or common prefix ending in '/' */
    int is_prefix;
} entry;

typedef struct entries {
    entry *v;
    size_t n, cap;
    size_t keep; /* max names the caller can use (0 = all) */
} entries;

static int entry_cmp(const void *a, const void *b);

static int entries_add(entries *es, char *name, int is_prefix)
{
    if (!name) return -1;
    if (es->n == es->cap) {
        size_t cap = es->cap ? es->cap * 2 : 64;
        entry *v = realloc(es->v, cap * sizeof *v);
        if (!v) {
            free(name);
            return -1;
        }
        es->v = v;
        es->cap = cap;
    }
    es->v[es->n++] = (entry){name, is_prefix};
    /* A LIST returns at most `keep` names: once well past that, keep only
     * the smallest keep+1 (the +1 says "truncated"), so a probe into a big
     * directory costs O(n log k), not a sort of everything. */
    if (es->keep && es->n >= 4 * es->keep + 64) {
        qsort(es->v, es->n, sizeof *es->v, entry_cmp);
        for (size_t i = es->keep + 1; i < es->n; i++) free(es->v[i].name);
        es->n = es->keep + 1;
    }
    return 0;
}

static void entries_free(entries *es)
{
    for (size_t i = 0; i < es->n; i++) free(es->v[i].name);
    free(es->v);
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static int is_dir_at(int dfd, struct dirent *d)
{
    if (d->d_type != DT_UNKNOWN) return d->d_type == DT_DIR;
    struct stat sb;
    return fstatat(dfd, d->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode);
}

/* Does the directory hold at least one object anywhere below it?  S3 has
 * no directories, so an empty one must not show up as a common prefix. */
static int has_objects(int dfd)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (is_dir_at(dirfd(d), e)) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            found = sub >= 0 && has_objects(sub);
        } else {
            found = 1;
        }
    }
    closedir(d);
    return found;
}

/* strcmp(dir + name, after) without building the string. */
static int name_cmp(const char *dir, const char *name, const char *after)
{
    size_t dl = strlen(dir);
    int c = strncmp(dir, after, dl);
    if (c) return c;
    return strcmp(name, after + dl);
}

/* Collects the names below directory `dir` (an object-name prefix ending in
 * '/' or ""), keeping those that start with dir+base and sort after
 * `after`.  With a delimiter, subdirectories become prefixes. */
static int collect(int rootfd, const char *dir, const char *base, int delim, const char *after,
                   entries *es)
{
    int dfd = openat(rootfd, *dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return (errno == ENOENT || errno == ENOTDIR) ? 0 : -1;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -1;
    }
    size_t blen = strlen(base);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, base, blen) != 0) continue;
        int dirent_is_dir = is_dir_at(dirfd(d), e);
        /* A file at or before `after` is skipped before any allocation:
         * a probe of a key's tail reads the whole key directory. */
        if (!dirent_is_dir && after && name_cmp(dir, e->d_name, after) <= 0) continue;
        char *full;
        if (asprintf(&full, "%s%s%s", dir, e->d_name, dirent_is_dir ? "/" : "") < 0) {
            rc = -1;
            break;
        }
        if (!dirent_is_dir) {
            if (after && strcmp(full, after) <= 0) {
                free(full);
                continue;
            }
            rc = entries_add(es, full, 0);
        } else if (delim) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if ((after && strcmp(full, after) <= 0) || sub < 0 || !has_objects(sub)) {
                free(full);
                continue;
            }
            rc = entries_add(es, full, 1);
        } else {
            /* Skip whole subtrees that sort entirely before `after`. */
            if (after && strcmp(full, after) < 0 && strncmp(after, full, strlen(full)) != 0) {
                free(full);
                continue;
            }
            rc = collect(rootfd, full, "", 0, after, es);
            free(full);
        }
    }
    closedir(d);
    return rc;
}

static kl_status local_list(kl_objstore *os, const kl_list_req *req, kl_listing *out, kl_error *err)
{
    const char *prefix = req->prefix ? req->prefix : "";
    if (req->delimiter && req->delimiter != '/')
        return kl_seterr(err, KL_EINVAL, "directory store lists with delimiter '/' only");
    const char *slash = strrchr(prefix, '/');
    size_t dirlen = slash ? (size_t)(slash - prefix) + 1 : 0;
    char *dir = strndup(prefix, dirlen);
    if (!dir) return kl_seterr(err, KL_ENOMEM, "list: out of memory");

    /* The continuation token is the last name returned: stateless, and
     * "strictly after it" continues exactly where the last page ended. */
    const char *after = req->start_after;
    if (req->continuation && (!after || strcmp(req->continuation, after) > 0))
        after = req->continuation;

    size_t max = req->max_keys ? req->max_keys : 1000;
    entries es = {.keep = max};
    int rc = collect(L(os)->rootfd, dir, prefix + dirlen, req->delimiter, after, &es);
    free(dir);
    if (rc != 0) {
        entries_free(&es);
        return Kl_local_io_err(err, "list", prefix);
    }
    if (es.n) qsort(es.v, es.n, sizeof *es.v, entry_cmp);

    size_t take = es.n < max ? es.n : max;
    char *last_copy = NULL;
    *out = (kl_listing){0};
    out->objects = calloc(take ? take : 1, sizeof *out->objects);
    out->prefixes = calloc(take ? take : 1, sizeof *out->prefixes);
    if (!out->objects || !out->prefixes) goto nomem;
    if (take < es.n && !(last_copy = strdup(es.v[take - 1].name))) goto nomem;
    for (size_t i = 0; i < take; i++) {
        entry *en = &es.v[i];
        if (en->is_prefix) {
            out->prefixes[out->n_prefixes++] = en->name;
        } else if (req->names_only) {
            out->objects[out->n_objects++] = (kl_objinfo){en->name, 0, 0};
        } else {
            struct stat sb;
            if (fstatat(L(os)->rootfd, en->name, &sb, 0) != 0) {
                free(en->name); /* deleted since readdir: as if never listed */
            } else {
                int64_t ms = (int64_t)sb.st_ctim.tv_sec * 1000 + sb.st_ctim.tv_nsec / 1000000;
                out->objects[out->n_objects++] = (kl_objinfo){en->name, (uint64_t)sb.st_size, ms};
            }
        }
        en->name = NULL;
    }
    if (take < es.n) {
        /* The continuation is the last name this page covered (even if it
         * vanished before we could stat it): the next page starts after it. */
        out->next = last_copy;
        last_copy = NULL;
    }
    entries_free(&es);
    return KL_OK;
nomem:
    free(last_copy);
    entries_free(&es);
    kl_listing_free(out);
    return kl_seterr(err, KL_ENOMEM, "list: out of memory");
}

static kl_status local_del(kl_objstore *os, const char *const *names, size_t n, kl_error *err)
{
    for (size_t i = 0; i < n; i++) {
        kl_status st = Kl_local_check_name(names[i], err);
        if (st) return st;
        if (unlinkat(L(os)->rootfd, names[i], 0) != 0 && errno != ENOENT)
            return Kl_local_io_err(err, "delete", names[i]);
    }
    return KL_OK;
}

static const char *local_describe(kl_objstore *os) { return L(os)->desc; }

static void local_destroy(kl_objstore *os)
{
    if (!os) return;
    close(L(os)->rootfd);
    free(L(os)->desc);
    free(os);
}

static const kl_objstore_ops local_ops = {
    .put = local_put,
    .get = local_get,
    .head = local_head,
    .list = local_list,
    .del = local_del,
    .map = local_map,
    .describe = local_describe,
    .destroy = local_destroy,
    .put_batch = local_put_batch,
    .claim = Kl_local_claim,
    .claim_target = Kl_local_claim_target,
    .publish = Kl_local_publish,
    .unclaim = Kl_local_unclaim,
};

/* mkdir -p for the root itself. */
static int mkdir_p(const char *path)
{
    char *p = strdup(path);
    if (!p) return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int r = (mkdir(p, 0755) != 0 && errno != EEXIST) ? -1 : 0;
    free(p);
    return r;
}

kl_status kl_objstore_local_new(const char *root, kl_objstore **out, kl_error *err)
{
    if (!root || !*root) return kl_seterr(err, KL_EINVAL, "store directory is empty");
    if (mkdir_p(root) != 0)
        return kl_seterr(err, KL_EIO, "cannot create store directory '%s': %s", root,
                         strerror(errno));
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return kl_seterr(err, KL_EIO, "cannot open store directory '%s': %s", root,
                         strerror(errno));
    local_os *l = calloc(1, sizeof *l);
    if (!l || asprintf(&l->desc, "dir:%s", root) < 0) {
        free(l);
        close(fd);
        return kl_seterr(err, KL_ENOMEM, "out of memory");
    }
    l->base.ops = &local_ops;
    l->rootfd = fd;
    *out = &l->base;
    return KL_OK;
}
