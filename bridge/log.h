/* log.h -- the bridge's one-line log messages on stderr.
 *
 * A supervisor (systemd, a container runtime) captures stderr, so that is
 * where everything goes: the bridge's own messages, libklstore's
 * diagnostics (kl_set_log_handler) and librdkafka's logs (log_cb), all in
 * one format with a UTC timestamp and a level, written atomically so that
 * lines from librdkafka's threads do not interleave. */
#ifndef BR_LOG_H
#define BR_LOG_H

enum { BR_ERROR = 0, BR_WARN = 1, BR_INFO = 2, BR_DEBUG = 3 };

void br_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Routes libklstore's diagnostics through br_log. */
void br_log_install(void);

#endif
