/* common.c -- what every klstore command needs besides its options: one
 * error format ("klstore: COMMAND: message", one line, exit code from the
 * library status), opening the store from --store/--config/S3 flags, and
 * signal handling for the commands that run until interrupted. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

volatile sig_atomic_t cli_stop_signal;

/* ---- messages ------------------------------------------------------------ */

/* Keeps a message on one line whatever names it quotes. */
static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

static void vmessage(cli *c, const char *fmt, va_list ap)
{
    char msg[2 * KL_ERRMSG_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    one_line(msg);
    if (c && c->cmd)
        fprintf(stderr, "klstore: %s: %s\n", c->cmd->name, msg);
    else
        fprintf(stderr, "klstore: %s\n", msg);
}

int cli_err(cli *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(c, fmt, ap);
    va_end(ap);
    return code;
}

void cli_note(cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(c, fmt, ap);
    va_end(ap);
}

int cli_exit_code(kl_status st)
{
    switch (st) {
    case KL_OK: return CLI_OK;
    case KL_EINVAL: return CLI_EUSAGE;
    case KL_ENOKEYSPACE:
    case KL_ENOTFOUND: return CLI_ENOTFOUND;
    case KL_EBADDATA:
    case KL_EBADTOKEN: return CLI_EBADDATA;
    case KL_EEXIST: return CLI_EEXIST;
    case KL_ENOSPC: return CLI_ENOSPC;
    case KL_EIO:
    case KL_ENOMEM:
    case KL_ECLOSED:
    default: return CLI_ERUNTIME;
    }
}

int cli_fail(cli *c, const kl_error *err)
{
    const char *msg = err->msg[0] ? err->msg : kl_status_str(err->code);
    return cli_err(c, cli_exit_code(err->code), "%s", msg);
}

/* Library diagnostics (a failed background compaction, ...) in our format. */
static void log_handler(int level, const char *msg, void *ctx)
{
    static const char *names[] = {"error", "warning", "info"};
    cli_note(ctx, "%s: %s", names[level < 0 || level > 2 ? 0 : level], msg);
}

/* ---- the store ---------------------------------------------------------------- */

static int load_config(cli *c)
{
    kl_error err = {0};
    kl_config_init(&c->cfg);
    c->cfg_ready = 1;
    if (c->config && kl_config_load_file(&c->cfg, c->config, &err) != KL_OK)
        return cli_err(c, CLI_EUSAGE, "%s", err.msg);
    struct {
        const char *key, *value;
    } flags[] = {
        {"endpoint", c->endpoint},
        {"region", c->region},
        {"path_style", c->path_style ? "true" : NULL},
    };
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        if (flags[i].value &&
            kl_config_set(&c->cfg, "s3", flags[i].key, flags[i].value, &err) != KL_OK)
            return cli_err(c, CLI_EUSAGE, "--%s: %s", flags[i].key, err.msg);
    }
    return CLI_OK;
}

/* A read-only command on a local store path that does not exist would
 * create an empty store as a side effect of a typo: refuse instead. */
static int check_local_exists(cli *c)
{
    const char *path = c->store;
    if (!path || (c->cmd && c->cmd->writes) || strncmp(path, "s3://", 5) == 0) return CLI_OK;
    if (strncmp(path, "file://", 7) == 0) path += 7;
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT)
        return cli_err(c, CLI_ENOTFOUND, "store '%s' does not exist", c->store);
    return CLI_OK;
}

int cli_open_store(cli *c)
{
    if (c->os) return CLI_OK;
    kl_set_log_handler(log_handler, c);
    if (c->store && !*c->store) return cli_err(c, CLI_EUSAGE, "--store is empty");
    int rc = load_config(c);
    if (rc == CLI_OK) rc = check_local_exists(c);
    if (rc != CLI_OK) return rc;
    kl_error err = {0};
    if (kl_objstore_open(c->store, &c->cfg, &c->os, &err) != KL_OK) {
        c->os = NULL;
        int code = cli_exit_code(err.code) == CLI_EUSAGE ? CLI_EUSAGE : CLI_ERUNTIME;
        if (c->store && strstr(err.msg, c->store)) return cli_err(c, code, "%s", err.msg);
        return cli_err(c, code, "cannot open store '%s': %s", c->store ? c->store : "(default)",
                       err.msg);
    }
    return CLI_OK;
}

int cli_open_reader(cli *c)
{
    int rc = cli_open_store(c);
    if (rc != CLI_OK || c->reader) return rc;
    kl_error err = {0};
    if (kl_store_reader_new(c->os, &c->cfg.store, &c->reader, &err) != KL_OK) {
        c->reader = NULL;
        return cli_fail(c, &err);
    }
    return CLI_OK;
}

int cli_open_writer(cli *c)
{
    int rc = cli_open_store(c);
    if (rc != CLI_OK || c->writer) return rc;
    kl_error err = {0};
    if (kl_store_writer_new(c->os, &c->cfg.store, &c->writer, &err) != KL_OK) {
        c->writer = NULL;
        return cli_fail(c, &err);
    }
    return CLI_OK;
}

void cli_close(cli *c)
{
    kl_writer_destroy(c->writer);
    if (c->reader) kl_reader_destroy(c->reader);
    if (c->os) kl_os_destroy(c->os);
    if (c->cfg_ready) kl_config_free(&c->cfg);
    c->writer = NULL;
    c->reader = NULL;
    c->os = NULL;
    c->cfg_ready = 0;
    kl_set_log_handler(NULL, NULL);
}

int cli_key_missing(cli *c, const char *ks, const char *key)
{
    kl_error err = {0};
    kl_keyspace_meta m;
    kl_status st = kl_read_keyspace_metadata(c->reader, ks, &m, &err);
    if (st == KL_ENOKEYSPACE) return cli_err(c, CLI_ENOTFOUND, "keyspace '%s' not found", ks);
    if (st != KL_OK) return cli_fail(c, &err);
    return cli_err(c, CLI_ENOTFOUND, "key '%s' not found in keyspace '%s'", key, ks);
}

/* ---- signals -------------------------------------------------------------- */

static void on_signal(int sig) { cli_stop_signal = sig; }

void cli_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking read returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (!cli_stop_signal && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return !cli_stop_signal;
}
