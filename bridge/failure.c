/* failure.c -- the bridge's two ways of failing: a fatal error (the first
 * reason becomes the exit code) and a failing store (stop, or pause and
 * back off).
 *
 * Why a file of its own: failures are reported from everywhere -- the
 * poll loop, a refused run (pending.c), a failed flush (checkpoint.c), a
 * rebalance -- and reporting one must not need the files that report it.
 * With these below them, the bridge's files call each other one way
 * (consume.c -> outage.c -> checkpoint.c -> pending.c -> here), which
 * scripts/callgraph.sh checks.  Recovering from an outage is outage.c's.
 *
 * A store error that retrying cannot fix (records rejected or lost by the
 * writer, corrupt store data, out of memory) ends the bridge with exit
 * code 4 at once (main.c), without writing or committing anything more:
 * a restart re-delivers from the last commit.  A retryable one (KL_EIO:
 * S3 unreachable, 5xx, a read-only disk; KL_ENOSPC: a full disk) pauses
 * every assigned partition and schedules the next attempt with
 * exponential backoff (0.5 s .. 30 s). */
#include <stdarg.h>
#include <stdio.h>

#include "bridge.h"
#include "log.h"

void br_fatal(br_bridge *b, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    br_log(BR_ERROR, "%s", msg);
    if (!b->exit_code) b->exit_code = code;
}

int br_store_error_retryable(kl_status st)
{
    return st == KL_EIO || st == KL_ENOTFOUND || st == KL_ENOSPC;
}

void br_pause_all(br_bridge *b, int pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t err = rd_kafka_assignment(b->rk, &l);
    if (!err && l && l->cnt)
        err = pause ? rd_kafka_pause_partitions(b->rk, l) : rd_kafka_resume_partitions(b->rk, l);
    if (err)
        br_log(BR_WARN, "cannot %s partitions: %s", pause ? "pause" : "resume",
               rd_kafka_err2str(err));
    if (l) rd_kafka_topic_partition_list_destroy(l);
}

void br_store_failed(br_bridge *b, kl_status st, const kl_error *e)
{
    long long now = kl_mono_ms();
    if (!br_store_error_retryable(st)) {
        br_fatal(b, BR_EXIT_STORE, "store error that retrying cannot fix: %s: %s",
                 kl_status_str(st), e->msg);
        return;
    }
    if (!b->paused) {
        br_pause_all(b, 1);
        b->paused = 1;
        b->paused_since = now;
        b->backoff_ms = BR_BACKOFF_MIN_MS;
        b->failed_attempts = 1;
        br_log(BR_ERROR,
               "store write failed: %s; consumption paused, records "
               "stay pending in the batching writer, nothing is committed; "
               "retrying in %lld ms",
               e->msg, b->backoff_ms);
    } else {
        b->failed_attempts++;
        b->backoff_ms *= 2;
        if (b->backoff_ms > BR_BACKOFF_MAX_MS) b->backoff_ms = BR_BACKOFF_MAX_MS;
        br_log(BR_WARN,
               "store still failing (attempt %u, paused for %lld s): "
               "%s; retrying in %lld ms",
               b->failed_attempts, (now - b->paused_since) / 1000, e->msg, b->backoff_ms);
    }
    b->retry_at = now + b->backoff_ms;
}
