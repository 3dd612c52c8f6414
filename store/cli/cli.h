/* cli.h -- what the files of the klstore CLI share: exit codes, the
 * command table entry, the per-run context (options common to every
 * command, the opened store), and the helpers for options, errors and
 * output.  The CLI is a front end over the public API (klstore.h) only.
 *
 * Exit codes (also printed by `klstore help`):
 *   0  success
 *   1  runtime error: I/O or object-store failure, out of memory
 *   2  usage error: unknown command or flag, bad or missing argument,
 *      invalid name, bad configuration
 *   3  not found: the store, keyspace or key does not exist
 *   4  bad data: input the store cannot take (record too large, malformed
 *      NONCE<TAB> line) or stored data that is corrupt
 *   5  already exists: create-keyspace of an existing keyspace
 *   130/143  append interrupted by SIGINT/SIGTERM (128 + signal)
 */
#ifndef KL_CLI_H
#define KL_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "klstore.h"

enum {
    CLI_OK = 0,
    CLI_ERUNTIME = 1,
    CLI_EUSAGE = 2,
    CLI_ENOTFOUND = 3,
    CLI_EBADDATA = 4,
    CLI_EEXIST = 5,
    CLI_ENOSPC = 6,
    /* Not an exit code: "stop now and exit 0" (after --help). */
    CLI_DONE = -1,
};

typedef struct cli cli;

/* One entry of the command table (main.c). */
typedef struct cli_cmd {
    const char *name;
    int (*run)(cli *c, int argc, char **argv); /* argv[0] is the name */
    const char *usage;                         /* arguments and flags, after "klstore NAME " */
    const char *summary;                       /* one line for `klstore help` */
    const char *help;                          /* the command's flags and details */
    int writes;                                /* 1: may create the store directory */
} cli_cmd;

/* Options every command takes (before or after the command name), and the
 * store they open. */
struct cli {
    const cli_cmd *cmd;   /* running command, NULL before dispatch */
    const char *store;    /* --store, or NULL for the default */
    const char *config;   /* --config FILE */
    const char *endpoint; /* --endpoint URL */
    const char *region;   /* --region R */
    int path_style;       /* --path-style */
    kl_config cfg;
    int cfg_ready;
    kl_objstore *os;
    kl_reader *reader;
    kl_writer *writer;
};

/* ---- options (opts.c) ------------------------------------------------ */

/* Ids of the common long options; command-specific ids start at
 * CLI_OPT_CMD. */
enum {
    CLI_OPT_STORE = 0x100,
    CLI_OPT_CONFIG,
    CLI_OPT_ENDPOINT,
    CLI_OPT_REGION,
    CLI_OPT_PATH_STYLE,
    CLI_OPT_HELP,
    CLI_OPT_CMD = 0x200,
};

/* Called for each command-specific option; returns CLI_OK or an exit code. */
typedef int (*cli_opt_fn)(cli *c, int id, const char *arg, void *ctx);

/* Parses argv (argv[0] = command name) with getopt_long: the common
 * options plus `opts` (terminated by a zero entry) and `shortopts`.
 * Positional arguments are returned in *pos / *npos (pointing into argv),
 * and must number between min_pos and max_pos.  Returns CLI_OK, CLI_DONE
 * after --help, or an exit code after printing the error. */
int cli_parse(cli *c, int argc, char **argv, const char *shortopts, const struct option *opts,
              cli_opt_fn fn, void *ctx, int min_pos, int max_pos, char ***pos, int *npos);

/* Handles one common option (also used by main for the global ones). */
int cli_common_opt(cli *c, int id, const char *arg);

/* Number and value parsers: print "invalid FLAG 'ARG': why" and return
 * CLI_EUSAGE on failure. */
int cli_u64(cli *c, const char *flag, const char *arg, uint64_t min, uint64_t *out);
int cli_u128(cli *c, const char *flag, const char *arg, kl_u128 *out);
int cli_time(cli *c, const char *flag, const char *arg, int64_t *out);
/* --from first|last|offset:N|timestamp:T|nonce:N */
int cli_start(cli *c, const char *arg, kl_start *out);
/* Checks a keyspace/key name argument (CLI_EUSAGE if invalid). */
int cli_name(cli *c, const char *what, const char *name);

/* ---- errors and the store (common.c) --------------------------------- */

/* Prints "klstore: CMD: MESSAGE" (control characters replaced) to stderr
 * and returns code. */
int cli_err(cli *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same for a library error; the exit code follows from err->code. */
int cli_fail(cli *c, const kl_error *err);
int cli_exit_code(kl_status st);
/* Prints a non-error note (summaries) in the same format. */
void cli_note(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Loads --config and the flag overrides, then opens the object store;
 * idempotent.  cli_reader / cli_writer open those layers over it. */
int cli_open_store(cli *c);
int cli_open_reader(cli *c);
int cli_open_writer(cli *c);
void cli_close(cli *c);

/* Set by SIGINT/SIGTERM once cli_catch_signals was called (0 otherwise). */
extern volatile sig_atomic_t cli_stop_signal;
void cli_catch_signals(void);
/* Sleeps ms milliseconds or until a caught signal; returns 0 if stopped. */
int cli_sleep_ms(long ms);

/* Exit code for a missing key: 3 with a message saying whether the
 * keyspace or only the key is missing (or a store error). */
int cli_key_missing(cli *c, const char *ks, const char *key);

/* ---- output (output.c) ------------------------------------------------ */

typedef enum { CLI_FMT_TEXT = 0, CLI_FMT_JSON } cli_format;
typedef enum { CLI_ENC_TEXT = 0, CLI_ENC_BASE64 } cli_encoding;

int cli_format_arg(cli *c, const char *arg, cli_format *out);
int cli_encoding_arg(cli *c, const char *arg, cli_encoding *out);

/* JSON string (with quotes) of len bytes: valid UTF-8 passes through,
 * '"', '\\' and control characters are escaped, each byte of invalid UTF-8
 * becomes \u00XX (lossy: use base64 for exact bytes). */
void cli_json_str(FILE *f, const void *data, size_t len);
void cli_base64(FILE *f, const void *data, size_t len);
/* One record, in text (payload + '\n') or JSON lines format. */
void cli_print_record(FILE *f, const kl_record *r, cli_format fmt, cli_encoding enc);
/* ISO-8601 UTC with milliseconds ("2024-05-01T12:00:00.000Z"). */
char *cli_iso_time(int64_t ms, char buf[40]);
/* Flushes stdout; on failure prints the error and returns an exit code,
 * except EPIPE (the reader went away) which sets *epipe and returns 0. */
int cli_flush_stdout(cli *c, int *epipe);
/* True when stdout is a pipe whose reader has gone (so that tail -f
 * piped into `head` ends without waiting for the next record). */
int cli_stdout_gone(void);

/* ---- line input (lines.c) ----------------------------------------------- */

/* A bounded line reader over a file descriptor: lines of any bytes but
 * '\n', a final line without '\n' included, longer than `max` refused
 * without reading the rest, optional timeout so that a caller can flush
 * what it holds while its input is idle. */
typedef struct cli_lines {
    int fd;
    size_t max; /* longest accepted line (without '\n') */
    char *buf;  /* [pos, end) is unread input */
    size_t pos, end, cap;
    size_t scanned; /* bytes from pos known to hold no '\n' */
    int eof;
} cli_lines;

enum {
    CLI_LINE = 1, /* *line / *len hold a line (valid until next call) */
    CLI_LINE_EOF = 0,
    CLI_LINE_ERROR = -1, /* read(2) failed; errno says why */
    CLI_LINE_TOO_LONG = -2,
    CLI_LINE_TIMEOUT = -3, /* no complete line within timeout_ms */
    CLI_LINE_STOPPED = -4, /* a caught signal arrived (cli_stop_signal) */
};

void cli_lines_init(cli_lines *r, int fd, size_t max);
void cli_lines_free(cli_lines *r);
/* timeout_ms < 0 waits for ever. */
int cli_lines_next(cli_lines *r, long timeout_ms, const char **line, size_t *len);

/* ---- commands ---------------------------------------------------------- */

int cmd_create_keyspace(cli *c, int argc, char **argv);
int cmd_append(cli *c, int argc, char **argv);
int cmd_read(cli *c, int argc, char **argv);
int cmd_tail(cli *c, int argc, char **argv);
int cmd_meta(cli *c, int argc, char **argv);
int cmd_ls(cli *c, int argc, char **argv);

#endif /* KL_CLI_H */
