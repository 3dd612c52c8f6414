/* nodes.c -- the inode table: root, keyspaces, keys and time-travel views.
 *
 * The tree is two levels deep (root / keyspace / key), and nothing in it is
 * ever removed (no unlink, rmdir or rename), so a node lives until unmount
 * and its address serves as its inode number: FORGET needs no bookkeeping
 * and an inode can never be reused for another name.  Nodes are found by
 * (parent, name) in the library's hash table (kl_htab).
 *
 * A node is created only for a name that exists in the store (or that this
 * mount creates), so failed lookups cost no memory.  Existence checks are
 * cheap: a keyspace marker GET, or for a key the listing that loads its
 * index (which the lookup's reply needs for the size anyway). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"

/* Nodes are keyed by (parent, name): the parent's address seeds the hash. */
static uint64_t name_hash(const node *parent, const char *name)
{
    uintptr_t p = (uintptr_t)parent;
    return kl_hash(name, strlen(name), kl_hash(&p, sizeof p, KL_HASH_SEED));
}

/* What stat and readdir show as inode numbers: a hash of the path, so a
 * key has the same number in every mount and after a remount (tar, rsync
 * and `find -inum` rely on that), while the node's address stays the FUSE
 * handle.  Never 0 (hidden by some tools) nor 1 (the root). */
ino_t nodes_path_ino(const char *ks, const char *name)
{
    if (!name) return 1;
    uint64_t h = kl_hash(ks ? ks : "", ks ? strlen(ks) : 0, KL_HASH_SEED);
    h = kl_hash("/", 1, h);
    h = kl_hash(name, strlen(name), h);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (ino_t)(h < 2 ? h + 2 : h);
}

static ino_t stable_ino(const node *n)
{
    if (!n->parent) return 1;
    return nodes_path_ino(n->parent->parent ? n->parent->name : NULL, n->name);
}

typedef struct node_key {
    const node *parent;
    const char *name;
} node_key;

static int node_eq(const kl_hnode *h, const void *key)
{
    const node *n = KL_HENTRY(h, node, h);
    const node_key *k = key;
    return n->parent == k->parent && strcmp(n->name, k->name) == 0;
}

static node *find_locked(klfs *fs, node *parent, const char *name)
{
    node_key k = {parent, name};
    kl_hnode *h = kl_htab_find(&fs->nodes, name_hash(parent, name), node_eq, &k);
    return h ? KL_HENTRY(h, node, h) : NULL;
}

static node *find(klfs *fs, node *parent, const char *name)
{
    pthread_mutex_lock(&fs->nodes_mu);
    node *n = find_locked(fs, parent, name);
    pthread_mutex_unlock(&fs->nodes_mu);
    return n;
}

static node *node_new(node_kind kind, node *parent, const char *name)
{
    node *n = calloc(1, sizeof *n);
    if (!n || !(n->name = strdup(name))) {
        free(n);
        return NULL;
    }
    n->kind = kind;
    n->parent = parent;
    pthread_mutex_init(&n->mu, NULL);
    return n;
}

static void node_free(node *n)
{
    kl_strv_free(n->local_keys, n->n_local);
    kl_textview_close(n->tv);
    free(n->name);
    free(n);
}

/* A key's node with its text view (no request yet). */
static node *key_new(klfs *fs, node *ks, const char *name)
{
    node *k = node_new(N_KEY, ks, name);
    kl_error err = {0};
    if (k && kl_textview_open(fs->reader, ks->name, name, &k->tv, &err) != KL_OK) {
        node_free(k);
        return NULL;
    }
    return k;
}

/* Inserts n unless another thread inserted the same name first; returns
 * the node in the table (freeing n if it lost the race). */
static node *insert(klfs *fs, node *n)
{
    pthread_mutex_lock(&fs->nodes_mu);
    node *old = find_locked(fs, n->parent, n->name);
    if (old) {
        pthread_mutex_unlock(&fs->nodes_mu);
        node_free(n);
        return old;
    }
    if (kl_htab_insert(&fs->nodes, &n->h, name_hash(n->parent, n->name)) != 0) {
        pthread_mutex_unlock(&fs->nodes_mu);
        node_free(n);
        return NULL;
    }
    pthread_mutex_unlock(&fs->nodes_mu);
    return n;
}

void nodes_init(klfs *fs)
{
    pthread_mutex_init(&fs->nodes_mu, NULL);
    kl_htab_init(&fs->nodes, 1024); /* on failure: found by nothing, ENOENT */
    fs->root = node_new(N_ROOT, NULL, "");
}

void nodes_free(klfs *fs)
{
    for (size_t i = 0; i < fs->nodes.n_buckets; i++)
        for (kl_hnode *h = fs->nodes.buckets[i], *next; h; h = next) {
            next = h->next;
            node_free(KL_HENTRY(h, node, h));
        }
    kl_htab_free(&fs->nodes);
    if (fs->root) node_free(fs->root);
}

node *nodes_find_key(klfs *fs, const char *ks, const char *key)
{
    node *k = find(fs, fs->root, ks);
    return k ? find(fs, k, key) : NULL;
}

node *nodes_get(klfs *fs, fuse_ino_t ino)
{
    return ino == FUSE_ROOT_ID ? fs->root : (node *)(uintptr_t)ino;
}

fuse_ino_t nodes_ino(klfs *fs, node *n)
{
    return n == fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

/* Reads the keyspace marker once (its creation time is immutable). */
static void keyspace_created(klfs *fs, node *ks)
{
    pthread_mutex_lock(&ks->mu);
    int known = ks->created_known;
    pthread_mutex_unlock(&ks->mu);
    if (known) return;
    kl_keyspace_meta meta;
    kl_status st = kl_read_keyspace_metadata(fs->reader, ks->name, &meta, NULL);
    pthread_mutex_lock(&ks->mu);
    if (st == KL_OK) {
        ks->created_known = 1;
        ks->created = meta.created;
    } else if (st == KL_ENOKEYSPACE) {
        ks->created_known = -1;
    }
    pthread_mutex_unlock(&ks->mu);
}

/* A keyspace exists when it has a marker or any object under "{ks}/". */
static int keyspace_exists(klfs *fs, node *probe)
{
    keyspace_created(fs, probe);
    if (probe->created_known == 1) return 0;
    int found = 0;
    kl_status st = kl_keyspace_has_objects(fs->os, &fs->cfg.store, probe->name, &found, NULL);
    if (st) return -klfs_errno(st);
    return found ? 0 : -ENOENT;
}

/* A key exists when it has a data object. */
/* Whether key k (a node not yet in the table) has data: by loading its
 * index, which the lookup's reply needs anyway (its size), so that a
 * lookup and the stat after it cost one listing, not two.  0 or -errno. */
static int key_exists(klfs *fs, node *k)
{
    kl_error err = {0};
    kl_status st = kl_textview_refresh(k->tv, 0, &err);
    if (st) return -klfs_errno(st);
    kl_textview_info info;
    kl_textview_stat(k->tv, &info);
    return info.objects > 0 ? 0 : -ENOENT; /* not in the table yet: nobody else sees k */
}

/* A name the store cannot hold: too long, or otherwise invalid. */
static int bad_name(const char *name, int otherwise)
{
    return strlen(name) > KL_NAME_MAX ? -ENAMETOOLONG : otherwise;
}

static int lookup_keyspace(klfs *fs, const char *name, node **out)
{
    if (kl_validate_name("keyspace", name, NULL) != KL_OK) return bad_name(name, -ENOENT);
    node *n = node_new(N_KEYSPACE, fs->root, name);
    if (!n) return -ENOMEM;
    int rc = keyspace_exists(fs, n);
    if (rc) {
        node_free(n);
        return rc;
    }
    *out = insert(fs, n);
    return *out ? 0 : -ENOMEM;
}

static int lookup_view(klfs *fs, node *ks, const char *name, node **out)
{
    char key[KL_NAME_MAX + 1];
    view_spec spec;
    if (!names_parse_view(name, key, &spec)) return -ENOENT;
    node *base;
    int rc = nodes_lookup(fs, ks, key, &base);
    if (rc) return rc;
    if (base->kind != N_KEY) return -ENOENT;
    node *v = node_new(N_VIEW, ks, name);
    if (!v) return -ENOMEM;
    v->base = base;
    v->spec = spec;
    *out = insert(fs, v);
    return *out ? 0 : -ENOMEM;
}

static int lookup_key(klfs *fs, node *ks, const char *name, node **out)
{
    if (kl_validate_name("key", name, NULL) != KL_OK) {
        int rc = lookup_view(fs, ks, name, out);
        return rc == -ENOENT ? bad_name(name, rc) : rc;
    }
    node *k = key_new(fs, ks, name);
    if (!k) return -ENOMEM;
    int rc = key_exists(fs, k);
    if (rc) node_free(k);
    if (rc == -ENOENT) return lookup_view(fs, ks, name, out);
    if (rc) return rc;
    *out = insert(fs, k);
    return *out ? 0 : -ENOMEM;
}

node *nodes_find(klfs *fs, node *parent, const char *name) { return find(fs, parent, name); }

/* Whether every name already has a key node listed within refresh_ms. */
static int all_fresh(klfs *fs, node *ks, char *const *names, size_t n)
{
    int64_t now = kl_mono_ms();
    for (size_t i = 0; i < n; i++) {
        node *key = find(fs, ks, names[i]);
        if (!key || key->kind != N_KEY) return 0;
        kl_textview_info info;
        kl_textview_stat(key->tv, &info);
        if (!info.loaded || now - info.listed_ms >= fs->refresh_ms) return 0;
    }
    return 1;
}

void nodes_preload(klfs *fs, node *ks, char *const *names, size_t n, size_t ahead)
{
    if (all_fresh(fs, ks, names, n)) return;
    n = ahead > n ? ahead : n;
    node **keys = calloc(n ? n : 1, sizeof *keys);
    kl_textview **tvs = calloc(n ? n : 1, sizeof *tvs);
    size_t k = 0;
    for (size_t i = 0; keys && tvs && i < n; i++) {
        node *key = find(fs, ks, names[i]);
        if (key && key->kind != N_KEY) continue;
        if (!key && !(key = key_new(fs, ks, names[i]))) continue;
        keys[k] = key;
        tvs[k++] = key->tv;
    }
    kl_error err = {0};
    if (k) kl_textview_refresh_many(tvs, k, fs->refresh_ms, 16, &err);
    for (size_t i = 0; i < k; i++) {
        if (find(fs, ks, keys[i]->name) == keys[i]) continue; /* known already */
        kl_textview_info info;
        kl_textview_stat(keys[i]->tv, &info);
        if (info.objects)
            insert(fs, keys[i]);
        else
            node_free(keys[i]);
    }
    free(tvs);
    free(keys);
}

/* /.klstore and /.klstore/stats exist in every mount, whatever the store. */
static int lookup_info(klfs *fs, node *parent, node_kind kind, const char *name, node **out)
{
    node *n = node_new(kind, parent, name);
    if (!n) return -ENOMEM;
    *out = insert(fs, n);
    return *out ? 0 : -ENOMEM;
}

int nodes_lookup(klfs *fs, node *parent, const char *name, node **out)
{
    node *n = find(fs, parent, name);
    if (n) {
        *out = n;
        return 0;
    }
    if (parent->kind == N_ROOT && strcmp(name, KLFS_INFO_DIR) == 0)
        return lookup_info(fs, parent, N_INFO, name, out);
    if (parent->kind == N_INFO)
        return strcmp(name, KLFS_STATS_FILE) ? -ENOENT
                                             : lookup_info(fs, parent, N_STATS, name, out);
    if (parent->kind == N_ROOT) return lookup_keyspace(fs, name, out);
    if (parent->kind == N_KEYSPACE) return lookup_key(fs, parent, name, out);
    return -ENOTDIR;
}

int nodes_mkkey(klfs *fs, node *ks, const char *name, node **out)
{
    char key[KL_NAME_MAX + 1];
    view_spec spec;
    if (kl_validate_name("key", name, NULL) != KL_OK || names_parse_view(name, key, &spec))
        return bad_name(name, -EINVAL);
    node *k = find(fs, ks, name);
    if (!k) {
        if (!(k = key_new(fs, ks, name)) || !(k = insert(fs, k))) return -ENOMEM;
    }
    if (k->kind != N_KEY) return -EEXIST;
    pthread_mutex_lock(&ks->mu);
    if (!k->local) {
        k->local = 1;
        char **v = realloc(ks->local_keys, (ks->n_local + 1) * sizeof *v);
        if (v) {
            ks->local_keys = v;
            if ((v[ks->n_local] = strdup(name))) ks->n_local++;
        }
    }
    pthread_mutex_unlock(&ks->mu);
    *out = k;
    return 0;
}

int nodes_mkkeyspace(klfs *fs, const char *name, node **out)
{
    kl_error err = {0};
    if (kl_validate_name("keyspace", name, &err) != KL_OK) return bad_name(name, -EINVAL);
    int64_t created = 0;
    kl_status st = kl_create_keyspace(fs->writer, name, &created, &err);
    if (st == KL_EEXIST) return -EEXIST;
    if (st) {
        kl_log(KL_LOG_ERROR, "mkdir %s: %s", name, err.msg);
        return -klfs_errno(st);
    }
    node *n = node_new(N_KEYSPACE, fs->root, name);
    if (!n) return -ENOMEM;
    n->created_known = 1;
    n->created = created;
    *out = insert(fs, n);
    return *out ? 0 : -ENOMEM;
}

static void set_times(struct stat *st, int64_t ms)
{
    st->st_mtim.tv_sec = ms / 1000;
    st->st_mtim.tv_nsec = (ms % 1000) * 1000000;
    if (ms < 0 && st->st_mtim.tv_nsec) {
        st->st_mtim.tv_sec--;
        st->st_mtim.tv_nsec += 1000000000;
    }
    st->st_atim = st->st_ctim = st->st_mtim;
}

static void stat_file(klfs *fs, struct stat *st, uint64_t size, int64_t mtime, mode_t perm)
{
    st->st_mode = S_IFREG | (perm & ~fs->umask);
    st->st_nlink = 1;
    st->st_size = (off_t)size;
    st->st_blksize = 128 * 1024;
    st->st_blocks = (blkcnt_t)((size + 511) / 512);
    set_times(st, mtime);
}

int nodes_stat(klfs *fs, node *n, int64_t view_base, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = stable_ino(n);
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
    kl_error err = {0};
    switch (n->kind) {
    case N_ROOT:
    case N_KEYSPACE:
        st->st_mode = S_IFDIR | (0777 & ~fs->umask);
        st->st_nlink = 2;
        st->st_size = 4096;
        set_times(st, fs->mount_ms);
        if (n->kind == N_KEYSPACE) {
            keyspace_created(fs, n);
            if (n->created_known == 1) set_times(st, n->created);
        }
        return 0;
    case N_INFO:
        st->st_mode = S_IFDIR | (0555 & ~fs->umask);
        st->st_nlink = 2;
        st->st_size = 4096;
        set_times(st, fs->mount_ms);
        return 0;
    case N_STATS: /* size 0, like /proc: the text is made at open */
        stat_file(fs, st, 0, kl_now_ms(), 0444);
        return 0;
    case N_KEY: {
        kl_textview_info ks;
        kl_status rc = kl_textview_refresh(n->tv, fs->refresh_ms, &err);
        kl_textview_stat(n->tv, &ks);
        if (rc != KL_OK && !ks.loaded) {
            kl_log(KL_LOG_ERROR, "stat %s/%s: %s", n->parent->name, n->name, err.msg);
            return -klfs_errno(rc);
        }
        stat_file(fs, st, ks.size, !ks.objects && !ks.mtime ? fs->mount_ms : ks.mtime, 0666);
        return 0;
    }
    case N_VIEW: {
        uint64_t base;
        if (view_base >= 0) {
            base = (uint64_t)view_base;
        } else {
            int rc = nodes_view_base(fs, n, &base);
            if (rc) return rc;
        }
        kl_textview_info ks;
        kl_textview_refresh(n->base->tv, fs->refresh_ms, &err);
        kl_textview_stat(n->base->tv, &ks);
        stat_file(fs, st, ks.size > base ? ks.size - base : 0, ks.mtime, 0444);
        st->st_ino = stable_ino(n);
        return 0;
    }
    }
    return -EIO;
}

int nodes_view_base(klfs *fs, node *v, uint64_t *pos)
{
    kl_start start;
    if (names_view_start(&v->spec, &start) != 0) return -EINVAL;
    kl_error err = {0};
    kl_status st = kl_textview_seek(v->base->tv, &start, pos, &err);
    if (st) {
        kl_log(KL_LOG_ERROR, "view %s/%s: %s", v->parent->name, v->name, err.msg);
        return -klfs_errno(st);
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the keys this mount created (maybe still without data) to a
 * keyspace listing, keeping it sorted and free of duplicates. */
static int merge_local(node *ks, char ***names, size_t *n)
{
    pthread_mutex_lock(&ks->mu);
    size_t total = *n + ks->n_local;
    char **v = realloc(*names, (total + 1) * sizeof *v);
    if (!v) {
        pthread_mutex_unlock(&ks->mu);
        return -ENOMEM;
    }
    for (size_t i = 0; i < ks->n_local; i++) v[*n + i] = strdup(ks->local_keys[i]);
    pthread_mutex_unlock(&ks->mu);
    size_t k = 0;
    for (size_t i = 0; i < total; i++)
        if (v[i]) v[k++] = v[i];
    qsort(v, k, sizeof *v, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < k; i++) {
        if (u && strcmp(v[u - 1], v[i]) == 0)
            free(v[i]);
        else
            v[u++] = v[i];
    }
    *names = v;
    *n = u;
    return 0;
}

int nodes_list(klfs *fs, node *dir, char ***names, size_t *n)
{
    kl_error err = {0};
    kl_status st;
    *names = NULL;
    *n = 0;
    if (dir->kind == N_INFO) {
        if (!(*names = calloc(2, sizeof **names)) || !((*names)[0] = strdup(KLFS_STATS_FILE))) {
            free(*names);
            *names = NULL;
            return -ENOMEM;
        }
        *n = 1;
        return 0;
    }
    if (dir->kind == N_ROOT)
        st = kl_list_keyspaces(fs->os, &fs->cfg.store, names, n, &err);
    else if (dir->kind == N_KEYSPACE)
        st = kl_list_keys(fs->os, &fs->cfg.store, dir->name, names, n, &err);
    else
        return -ENOTDIR;
    if (st) {
        kl_log(KL_LOG_ERROR, "readdir %s: %s", dir->name, err.msg);
        return -klfs_errno(st);
    }
    return dir->kind == N_KEYSPACE ? merge_local(dir, names, n) : 0;
}
