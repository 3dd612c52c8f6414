/* main.c -- klstorefs: command line, configuration, mount, and shutdown.
 *
 *   klstorefs [STORE] MOUNTPOINT [-o opt,...] [-f] [-d] [-s]
 *
 * Arguments may come in any order (mount(8) helpers run
 * `klstorefs SOURCE MOUNTPOINT -o opts`).  Everything that can fail for a
 * user error -- options, the config file, opening the store and listing it
 * once -- happens before daemonizing, so errors reach the terminal; the
 * threads (batching writer, readahead) start only after the fork.
 *
 * Shutdown (fusermount3 -u, umount, SIGTERM, SIGINT, SIGHUP) leaves the
 * FUSE loop; then held partial lines become records and every pending
 * write is flushed before the process exits, with exit status 1 if
 * anything could not be made durable. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"

extern const struct fuse_lowlevel_ops klfs_ops;

typedef struct opts {
    char *store, *mountpoint;
    char *config, *endpoint, *region, *metrics;
    int path_style;
    int uid, gid, umask;
    unsigned cache_mb, readahead, pending_mb, refresh_ms;
    double attr_timeout, entry_timeout;
    int foreground, debug, single, help, version, ro, nonopts;
} opts;

enum { KEY_RO, KEY_DEBUG, KEY_HELP, KEY_VERSION };

#define OPT(t, field, v)                                                                           \
    {                                                                                              \
        t, offsetof(opts, field), v                                                                \
    }
static const struct fuse_opt opt_spec[] = {
    OPT("config=%s", config, 0),
    OPT("endpoint=%s", endpoint, 0),
    OPT("region=%s", region, 0),
    OPT("path_style", path_style, 1),
    OPT("uid=%d", uid, 0),
    OPT("gid=%d", gid, 0),
    OPT("umask=%o", umask, 0),
    OPT("cache_mb=%u", cache_mb, 0),
    OPT("readahead=%u", readahead, 0),
    OPT("pending_mb=%u", pending_mb, 0),
    OPT("refresh_ms=%u", refresh_ms, 0),
    OPT("attr_timeout=%lf", attr_timeout, 0),
    OPT("entry_timeout=%lf", entry_timeout, 0),
    OPT("metrics=%s", metrics, 0),
    OPT("-f", foreground, 1),
    OPT("-s", single, 1),
    FUSE_OPT_KEY("-d", KEY_DEBUG),
    FUSE_OPT_KEY("debug", KEY_DEBUG),
    FUSE_OPT_KEY("ro", KEY_RO),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    /* fstab options that mean something to mount(8), not to us. */
    FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("nouser", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
    FUSE_OPT_END,
};

static void usage(const char *prog)
{
    printf("usage: %s [STORE] MOUNTPOINT [-o opt,...] [-f] [-d] [-s]\n"
           "\n"
           "Mounts a klstore as a directory tree: MOUNTPOINT/KEYSPACE/KEY.  Each key\n"
           "reads as its records in offset order, one line per record; appending lines\n"
           "to a key appends records.  `mkdir MOUNTPOINT/KS` creates a keyspace.\n"
           "`KEY@t=TIME`, `KEY@o=OFFSET` and `KEY@n=NONCE` read a key from that record\n"
           "on (TIME: ms, ISO-8601 or relative like -15m).  See fs/SEMANTICS.md.\n"
           "\n"
           "STORE: a directory, file://PATH or s3://BUCKET/PREFIX/ (default: [local]\n"
           "root or [s3] bucket of the config file, else the default local store\n"
           "$XDG_DATA_HOME/klstore or ~/.local/share/klstore).\n"
           "\n"
           "klstorefs options:\n"
           "  -f                     stay in the foreground (default: daemonize, log to syslog)\n"
           "  -d, -o debug           FUSE debug output (implies -f)\n"
           "  -s                     single-threaded\n"
           "  -h, --help             this help;  -V, --version  the version\n"
           "  -o config=FILE         INI file with [s3], [local] and [batcher] sections\n"
           "  -o endpoint=URL        S3 endpoint (e.g. http://127.0.0.1:7480)\n"
           "  -o region=REGION       S3 region (default us-east-1)\n"
           "  -o path_style          path-style S3 URLs (needed by RGW/MinIO)\n"
           "  -o uid=N,gid=N         owner of every file (default: the mounting user)\n"
           "  -o umask=OOO           permission mask, octal (default 022)\n"
           "  -o allow_other         let other users in; the kernel checks their access\n"
           "                         against the modes shown (always default_permissions):\n"
           "                         with umask 022 they read, only the owner appends\n"
           "                         and creates keys and keyspaces\n"
           "  -o cache_mb=N          fetched-object cache (default 128; on a local store\n"
           "                         objects a read went through are not kept)\n"
           "  -o readahead=N         objects prefetched ahead of sequential reads (default 8)\n"
           "  -o pending_mb=N        unflushed bytes per key before a write waits (default 8)\n"
           "  -o refresh_ms=N        min interval between listings of one key (default 500)\n"
           "  -o attr_timeout=S      kernel attribute cache, seconds (default 0.5)\n"
           "  -o entry_timeout=S     kernel name cache, seconds (default 1)\n"
           "  -o ro                  read-only: writes fail with EROFS\n"
           "  -o metrics=HOST:PORT   serve /metrics (Prometheus) and /healthz over HTTP\n"
           "The mount's counters (cache, appends, pending lines, store requests and\n"
           "errors) are also in the file MOUNTPOINT/.klstore/stats.\n"
           "S3 credentials come from the config file or the AWS chain (AWS_ACCESS_KEY_ID,\n"
           "AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, instance metadata).\n"
           "\n"
           "/etc/fstab:\n"
           "  /var/lib/kl      /mnt/kl  fuse.klstorefs  defaults,allow_other  0 0\n"
           "  klstorefs#/var/lib/kl  /mnt/kl  fuse  defaults  0 0\n"
           "  s3://bucket/logs/  /mnt/kl  fuse.klstorefs  _netdev,config=/etc/klstore.ini  0 0\n"
           "Unmount with `fusermount3 -u MOUNTPOINT` or `umount MOUNTPOINT`; pending\n"
           "writes are flushed first.\n"
           "\n"
           "FUSE options:\n",
           prog);
    fuse_lowlevel_help();
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    opts *o = data;
    switch (key) {
    case FUSE_OPT_KEY_NONOPT:
        if (o->nonopts == 0)
            o->store = strdup(arg);
        else if (o->nonopts == 1)
            o->mountpoint = strdup(arg);
        else {
            fprintf(stderr, "klstorefs: unexpected argument '%s'\n", arg);
            return -1;
        }
        o->nonopts++;
        return 0;
    case KEY_RO: o->ro = 1; return 1;
    case KEY_DEBUG: o->debug = o->foreground = 1; return 1;
    case KEY_HELP: o->help = 1; return 0;
    case KEY_VERSION: o->version = 1; return 0;
    case FUSE_OPT_KEY_OPT: return strncmp(arg, "x-", 2) == 0 ? 0 : 1; /* x-systemd.* etc. */
    default: return 1;
    }
}

static void log_stderr(int level, const char *msg, void *ctx)
{
    fprintf(stderr, "klstorefs: %s\n", msg);
}

static void log_syslog(int level, const char *msg, void *ctx)
{
    int prio = level == KL_LOG_ERROR ? LOG_ERR : level == KL_LOG_WARNING ? LOG_WARNING : LOG_INFO;
    syslog(prio, "%s", msg);
}

/* A relative directory must survive fuse_daemonize's chdir("/"). */
static char *absolute_store(const char *store)
{
    if (!store || store[0] == '/' || strstr(store, "://")) return store ? strdup(store) : NULL;
    char cwd[PATH_MAX], *abs = NULL;
    if (!getcwd(cwd, sizeof cwd) || asprintf(&abs, "%s/%s", cwd, store) < 0) return NULL;
    return abs;
}

static int configure(klfs *fs, opts *o)
{
    kl_error err = {0};
    kl_config_init(&fs->cfg);
    if (o->config && kl_config_load_file(&fs->cfg, o->config, &err) != KL_OK) goto fail;
    if (o->endpoint && kl_config_set(&fs->cfg, "s3", "endpoint", o->endpoint, &err) != KL_OK)
        goto fail;
    if (o->region && kl_config_set(&fs->cfg, "s3", "region", o->region, &err) != KL_OK) goto fail;
    if (o->path_style && kl_config_set(&fs->cfg, "s3", "path_style", "true", &err) != KL_OK)
        goto fail;
    char *store = absolute_store(o->store);
    kl_status st = kl_objstore_open(store, &fs->cfg, &fs->os, &err);
    free(store);
    if (st) goto fail;
    /* One listing now, so that a wrong bucket or credentials fail the
     * mount command instead of every later operation. */
    char **names;
    size_t n;
    if (kl_list_keyspaces(fs->os, &fs->cfg.store, &names, &n, &err) != KL_OK) goto fail;
    kl_strv_free(names, n);
    fs->ro = o->ro;
    fs->uid = o->uid >= 0 ? (uid_t)o->uid : getuid();
    fs->gid = o->gid >= 0 ? (gid_t)o->gid : getgid();
    fs->umask = o->umask >= 0 ? (mode_t)o->umask & 0777 : 022;
    fs->entry_timeout = o->entry_timeout;
    fs->attr_timeout = o->attr_timeout;
    fs->refresh_ms = o->refresh_ms;
    /* The reader's cache and readahead serve every read of the mount. */
    fs->cfg.store.reader_cache_bytes = (uint64_t)o->cache_mb << 20;
    fs->cfg.store.reader_readahead = o->readahead;
    fs->pending_max = (size_t)o->pending_mb << 20;
    fs->mount_ms = kl_now_ms();
    return 0;
fail:
    fprintf(stderr, "klstorefs: %s\n", err.msg[0] ? err.msg : kl_status_str(err.code));
    return -1;
}

/* The store writer encoded or published an object of this mount's lines:
 * its key's text view knows it as its own, and places it at once when
 * published (kl_textview_report). */
static void on_published(const char *ks, const char *key, kl_publish_event ev,
                         const kl_object_meta *m, void *ctx)
{
    klfs *fs = ctx;
    if (ev == KL_OBJECT_PUBLISHED) {
        uint64_t records = m->last_offset - m->first_offset + 1;
        KLFS_COUNT(fs, published_objects, 1);
        KLFS_COUNT(fs, published_records, records);
        KLFS_COUNT(fs, published_bytes, m->size - KL_RECORD_OVERHEAD * records);
    }
    node *k = nodes_find_key(fs, ks, key);
    if (k) kl_textview_report(k->tv, ev, m);
}

/* /healthz: unhealthy while the newest flush failed (the store refuses or
 * is unreachable: writers get EIO/ENOSPC until it recovers). */
static int health(char *why, size_t cap, void *ctx)
{
    klfs *fs = ctx;
    if (!atomic_load(&fs->stats.flush_failing)) return 0;
    snprintf(why, cap, "the last flush to the store failed (see the log)");
    return 1;
}

/* Writer and reader: after daemonizing, since they start threads. */
static int start(klfs *fs, opts *o)
{
    kl_error err = {0};
    if (!fs->ro && (kl_store_writer_new(fs->os, &fs->cfg.store, &fs->inner, &err) != KL_OK ||
                    kl_store_writer_observe(fs->inner, on_published, fs, &err) != KL_OK ||
                    kl_batch_writer_new(fs->inner, &fs->cfg.batch, &fs->writer, &err) != KL_OK))
        goto fail;
    if (kl_store_reader_new(fs->os, &fs->cfg.store, &fs->reader, &err) != KL_OK) goto fail;
    return 0;
fail:
    kl_log(KL_LOG_ERROR, "%s", err.msg);
    return -1;
}

static void stop(klfs *fs)
{
    km_server_stop(fs->metrics); /* first: it reads everything below */
    /* Handles the kernel never released (files open at SIGTERM). */
    while (fs->open_files) fh_free(fs, fs->open_files);
    kl_writer_destroy(fs->writer);
    kl_writer_destroy(fs->inner);
    kl_reader_destroy(fs->reader);
    nodes_free(fs);
    kl_os_destroy(fs->os);
    kl_config_free(&fs->cfg);
}

/* fsname shows the store in /proc/mounts and df; subtype makes the type
 * fuse.klstorefs, as fstab entries name it.  default_permissions, always:
 * the kernel then checks every access against the mode bits and owner
 * that stat shows, so what `ls -l` says is what holds -- for other users
 * of an allow_other mount above all (reading by mode, appending and
 * creating only by the owner with the default umask).  Checking in each
 * op instead would be a second, weaker copy of the kernel's rules. */
static int add_mount_names(struct fuse_args *args, const char *store)
{
    char *o = NULL;
    if (fuse_opt_add_opt_escaped(&o, store ? store : "klstore") != 0) return -1;
    char *fsname = NULL;
    int rc = asprintf(&fsname, "-ofsname=%s,subtype=klstorefs,default_permissions", o) < 0 ? -1 : 0;
    free(o);
    if (rc == 0) rc = fuse_opt_add_arg(args, fsname);
    free(fsname);
    return rc;
}

static int run(klfs *fs, opts *o, struct fuse_args *args)
{
    int rc = 1;
    fs->se = fuse_session_new(args, &klfs_ops, sizeof klfs_ops, fs);
    if (!fs->se) return 1;
    if (fuse_set_signal_handlers(fs->se) != 0) goto out_session;
    if (fuse_session_mount(fs->se, o->mountpoint) != 0) goto out_signals;
    fuse_daemonize(o->foreground);
    if (!o->foreground) {
        openlog("klstorefs", LOG_PID, LOG_DAEMON);
        kl_set_log_handler(log_syslog, NULL);
    }
    if (start(fs, o) == 0) {
        /* Served once start() made what it reads (the reader, the store). */
        char merr[256];
        if (fs->metrics &&
            km_server_run(fs->metrics, stats_render, health, fs, merr, sizeof merr)) {
            kl_log(KL_LOG_ERROR, "%s", merr); /* the mount itself still works */
            km_server_stop(fs->metrics);
            fs->metrics = NULL;
        }
        struct fuse_loop_config lc = {.clone_fd = 0, .max_idle_threads = 10};
        int loop = o->single ? fuse_session_loop(fs->se) : fuse_session_loop_mt(fs->se, &lc);
        /* Whatever ended the loop, nothing acknowledged may be lost. */
        int frc = appender_flush_all(fs);
        rc = (loop < 0 || frc != 0) ? 1 : 0;
        kl_log(KL_LOG_INFO, "unmounting %s%s", o->mountpoint, frc ? " (some writes failed)" : "");
    }
    fuse_session_unmount(fs->se);
out_signals:
    fuse_remove_signal_handlers(fs->se);
out_session:
    fuse_session_destroy(fs->se);
    return rc;
}

static void opts_free(opts *o)
{
    free(o->store);
    free(o->mountpoint);
    free(o->config);
    free(o->endpoint);
    free(o->region);
    free(o->metrics);
}

int main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    opts o = {.uid = -1,
              .gid = -1,
              .umask = -1,
              .cache_mb = 128,
              .readahead = 8, /* on RGW: a 256 MB cat 7% faster than 4 */
              .pending_mb = 8,
              .refresh_ms = 500,
              .attr_timeout = 0.5,
              .entry_timeout = 1.0};
    /* Object bodies (up to a few MiB, fetched and freed all the time) get
     * their own mappings, returned to the kernel when freed: glibc's
     * adaptive threshold would otherwise serve them from the heap, whose
     * fragments keep the daemon's memory well above the cache's bound
     * (measured on RGW: a 256 MB scan peaked at 188 MB with cache_mb=128,
     * 150 MB with this). */
    mallopt(M_MMAP_THRESHOLD, 256 << 10);
    if (fuse_opt_parse(&args, &o, opt_spec, opt_proc) != 0) return 2;
    if (o.help || o.version) {
        if (o.help)
            usage(argv[0]);
        else
            printf("klstorefs %s (libklstore %s, libfuse %s)\n", KL_VERSION, KL_VERSION,
                   fuse_pkgversion());
        fuse_opt_free_args(&args);
        opts_free(&o);
        return 0;
    }
    if (o.nonopts == 1) { /* only MOUNTPOINT: the default store */
        o.mountpoint = o.store;
        o.store = NULL;
    }
    if (!o.mountpoint) {
        fprintf(stderr, "klstorefs: no mountpoint given (try --help)\n");
        return 2;
    }
    /* Absolute, because the daemon chdirs to / and unmounts by name. */
    char *mp = realpath(o.mountpoint, NULL);
    if (!mp) {
        fprintf(stderr, "klstorefs: bad mountpoint %s: %s\n", o.mountpoint, strerror(errno));
        return 2;
    }
    free(o.mountpoint);
    o.mountpoint = mp;
    kl_set_log_handler(log_stderr, NULL);
    klfs fs = {0};
    pthread_mutex_init(&fs.fh_mu, NULL);
    nodes_init(&fs);
    km_hist_init(&fs.stats.flush_seconds, km_latency_bounds, km_latency_n);
    int rc = 1;
    char merr[256];
    /* Bound before daemonizing, so that a port in use is reported here. */
    if (o.metrics && !(fs.metrics = km_server_bind(o.metrics, merr, sizeof merr))) {
        fprintf(stderr, "klstorefs: %s\n", merr);
        rc = 2;
    } else if (configure(&fs, &o) == 0 && add_mount_names(&args, o.store) == 0) {
        rc = run(&fs, &o, &args);
    }
    stop(&fs);
    fuse_opt_free_args(&args);
    opts_free(&o);
    return rc;
}
