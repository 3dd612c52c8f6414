/* output.c -- how the klstore CLI prints records and values: raw text
 * lines, JSON lines with careful string escaping (records are arbitrary
 * bytes, JSON strings are Unicode), base64, ISO-8601 times, and flushing
 * stdout so that a closed pipe ends a command quietly. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_format_arg(cli *c, const char *arg, cli_format *out)
{
    if (strcmp(arg, "text") == 0)
        *out = CLI_FMT_TEXT;
    else if (strcmp(arg, "json") == 0)
        *out = CLI_FMT_JSON;
    else
        return cli_err(c, CLI_EUSAGE, "invalid --format '%s': expected text or json", arg);
    return CLI_OK;
}

int cli_encoding_arg(cli *c, const char *arg, cli_encoding *out)
{
    if (strcmp(arg, "text") == 0)
        *out = CLI_ENC_TEXT;
    else if (strcmp(arg, "base64") == 0)
        *out = CLI_ENC_BASE64;
    else
        return cli_err(c, CLI_EUSAGE, "invalid --value-encoding '%s': expected text or base64",
                       arg);
    return CLI_OK;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0.
 * Rejects overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned min, cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

static void json_escape_byte(FILE *f, unsigned char b)
{
    switch (b) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    case '\b': fputs("\\b", f); break;
    case '\f': fputs("\\f", f); break;
    default: fprintf(f, "\\u%04x", b); break;
    }
}

void cli_json_str(FILE *f, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t i = 0;
    fputc('"', f);
    while (i < len) {
        unsigned char b = p[i];
        size_t n = utf8_len(p + i, len - i);
        if (n == 1 && b >= 0x20 && b != 0x7f && b != '"' && b != '\\') {
            fputc(b, f);
        } else if (n > 1) {
            fwrite(p + i, 1, n, f);
        } else {
            json_escape_byte(f, b); /* control, quote, or invalid UTF-8 */
            n = 1;
        }
        i += n;
    }
    fputc('"', f);
}

void cli_base64(FILE *f, const void *data, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char o[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
        fwrite(o, 1, 4, f);
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        char o[4] = {tab[v >> 18], tab[(v >> 12) & 63], i + 1 < len ? tab[(v >> 6) & 63] : '=',
                     '='};
        fwrite(o, 1, 4, f);
    }
}

static void print_value(FILE *f, const kl_record *r, cli_encoding enc, int json)
{
    if (enc == CLI_ENC_BASE64) {
        if (json) fputc('"', f);
        cli_base64(f, r->data, r->len);
        if (json) fputc('"', f);
    } else if (json) {
        cli_json_str(f, r->data, r->len);
    } else if (r->len) {
        fwrite(r->data, 1, r->len, f);
    }
}

void cli_print_record(FILE *f, const kl_record *r, cli_format fmt, cli_encoding enc)
{
    if (fmt == CLI_FMT_JSON) {
        char nb[40];
        fprintf(f, "{\"offset\":%" PRIu64 ",\"timestamp\":%" PRId64 ",\"nonce\":", r->offset,
                r->timestamp);
        if (r->has_nonce)
            fprintf(f, "\"%s\"", kl_u128_str(r->nonce, nb));
        else
            fputs("null", f);
        fputs(",\"value\":", f);
        print_value(f, r, enc, 1);
        fputs("}\n", f);
    } else {
        print_value(f, r, enc, 0);
        fputc('\n', f);
    }
}

char *cli_iso_time(int64_t ms, char buf[40])
{
    int64_t sec = ms / 1000, rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        snprintf(buf, 40, "(out of range)");
        return buf;
    }
    snprintf(buf, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
    return buf;
}

int cli_flush_stdout(cli *c, int *epipe)
{
    if (fflush(stdout) == 0 && !ferror(stdout)) return CLI_OK;
    if (errno == EPIPE) {
        *epipe = 1;
        return CLI_OK;
    }
    return cli_err(c, CLI_ERUNTIME, "writing output: %s", strerror(errno));
}

int cli_stdout_gone(void)
{
    struct pollfd p = {.fd = STDOUT_FILENO, .events = 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP | POLLNVAL));
}
