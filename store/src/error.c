/* error.c -- status codes and the caller-owned kl_error.
 *
 * Every failure in libklstore is a kl_status plus a one-line message naming
 * what failed.  The message lives in the caller's kl_error, never in a
 * global, so errors are thread-safe without thread-locals. */
#include <stdarg.h>
#include <stdio.h>

#include "klstore.h"

const char *kl_status_str(kl_status code)
{
    switch (code) {
    case KL_OK: return "ok";
    case KL_EIO: return "I/O error";
    case KL_EBADDATA: return "bad data";
    case KL_EINVAL: return "invalid argument or configuration";
    case KL_EBADTOKEN: return "invalid continuation token";
    case KL_EEXIST: return "keyspace already exists";
    case KL_ENOKEYSPACE: return "keyspace not found";
    case KL_ENOTFOUND: return "not found";
    case KL_ENOMEM: return "out of memory";
    case KL_ECLOSED: return "writer closed or write lost";
    case KL_ENOSPC: return "no space left in the store";
    }
    return "unknown error";
}

const char *kl_status_name(kl_status code)
{
    static const char *const names[KL_STATUS_COUNT] = {
        [KL_OK] = "ok",
        [KL_EIO] = "io",
        [KL_EBADDATA] = "bad_data",
        [KL_EINVAL] = "invalid",
        [KL_EBADTOKEN] = "bad_token",
        [KL_EEXIST] = "exists",
        [KL_ENOKEYSPACE] = "no_keyspace",
        [KL_ENOTFOUND] = "not_found",
        [KL_ENOMEM] = "no_memory",
        [KL_ECLOSED] = "closed",
        [KL_ENOSPC] = "no_space",
    };
    return (unsigned)code < KL_STATUS_COUNT ? names[code] : "unknown";
}

kl_status kl_seterr(kl_error *err, kl_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int kl_status_retryable(kl_status code) { return code == KL_EIO; }

/* ---- log handler ---------------------------------------------------- */

static kl_log_fn log_fn;
static void *log_ctx;

void kl_set_log_handler(kl_log_fn fn, void *ctx)
{
    log_fn = fn;
    log_ctx = ctx;
}

void kl_log(int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_fn) {
        log_fn(level, msg, log_ctx);
    } else {
        static const char *names[] = {"error", "warning", "info"};
        fprintf(stderr, "klstore %s: %s\n", names[level < 0 || level > 2 ? 0 : level], msg);
    }
}
