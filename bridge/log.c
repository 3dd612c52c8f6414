/* log.c -- see log.h.  One fprintf per line under flockfile: librdkafka
 * calls log_cb from its own threads. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "klstore.h"
#include "log.h"

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void br_log(int level, const char *fmt, ...)
{
    char msg[2048], stamp[32];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    if (level < BR_ERROR || level > BR_DEBUG) level = BR_INFO;
    flockfile(stderr);
    fprintf(stderr, "%s.%03ldZ %s %s\n", stamp, (long)(tv.tv_usec / 1000), level_names[level], msg);
    fflush(stderr);
    funlockfile(stderr);
}

static void from_klstore(int level, const char *msg, void *ctx)
{
    br_log(level == KL_LOG_ERROR     ? BR_ERROR
           : level == KL_LOG_WARNING ? BR_WARN
                                     : BR_INFO,
           "klstore: %s", msg);
}

void br_log_install(void) { kl_set_log_handler(from_klstore, NULL); }
