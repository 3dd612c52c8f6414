/* util.c -- clock, number and time parsing shared by the library and its
 * front ends (CLI flags, klstorefs time-travel names, bridge parsers), so
 * that "what is a valid timestamp" has exactly one answer. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "klstore.h"

static int64_t clock_ms(clockid_t which)
{
    struct timespec ts;
    clock_gettime(which, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kl_now_ms(void) { return clock_ms(CLOCK_REALTIME); }

int64_t kl_mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

uint64_t Kl_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t Kl_boot_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

kl_status kl_parse_u128(const char *s, kl_u128 *v, kl_error *err)
{
    kl_u128 x = 0;
    const char *p = s;
    if (!s || !*s) return kl_seterr(err, KL_EINVAL, "empty number");
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return kl_seterr(err, KL_EINVAL, "'%s' is not a non-negative integer", s);
        kl_u128 nx = x * 10 + (kl_u128)(*p - '0');
        if (nx / 10 != x) return kl_seterr(err, KL_EINVAL, "'%s' is too large", s);
        x = nx;
    }
    *v = x;
    return KL_OK;
}

kl_status kl_parse_u64(const char *s, uint64_t *v, kl_error *err)
{
    kl_u128 x;
    kl_status st = kl_parse_u128(s, &x, err);
    if (st) return st;
    if (x > UINT64_MAX) return kl_seterr(err, KL_EINVAL, "'%s' is too large", s);
    *v = (uint64_t)x;
    return KL_OK;
}

char *kl_u128_str(kl_u128 v, char buf[40])
{
    char tmp[40];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    for (int j = 0; j < i; j++) buf[j] = tmp[i - 1 - j];
    buf[i] = 0;
    return buf;
}

/* Reads exactly n digits. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return 0;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 1;
}

/* ISO-8601: DATE[(T| )HH:MM[:SS[.frac]]][Z|(+|-)HH[:]MM]; no zone = UTC. */
static int parse_iso(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi)) return 0;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec)) return 0;
            if (*p == '.' || *p == ',') {
                p++;
                int scale = 100, any = 0;
                while (isdigit((unsigned char)*p)) {
                    frac_ms += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                    any = 1;
                }
                if (!any) return 0;
            }
        }
    }
    int64_t zone_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, zh, zm = 0;
        if (!digits(&p, 2, &zh)) return 0;
        if (*p == ':') p++;
        if (*p && !digits(&p, 2, &zm)) return 0;
        zone_s = sign * (zh * 3600 + zm * 60);
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - zone_s) * 1000 + frac_ms;
    return 1;
}

/* "-15m", "-2h", "-1d", "-30s", "-500ms", "-1w" relative to now. */
static int parse_relative(const char *s, int64_t *ms)
{
    if (*s != '-' || !isdigit((unsigned char)s[1])) return 0;
    char *end;
    long long n = strtoll(s + 1, &end, 10);
    int64_t unit;
    if (strcmp(end, "ms") == 0)
        unit = 1;
    else if (strcmp(end, "s") == 0)
        unit = 1000;
    else if (strcmp(end, "m") == 0)
        unit = 60000;
    else if (strcmp(end, "h") == 0)
        unit = 3600000;
    else if (strcmp(end, "d") == 0)
        unit = 86400000;
    else if (strcmp(end, "w") == 0)
        unit = 7 * 86400000LL;
    else
        return 0;
    if (n < 0 || n > INT64_MAX / unit / 2) return 0;
    *ms = kl_now_ms() - n * unit;
    return 1;
}

kl_status kl_parse_time(const char *s, int64_t *ms, kl_error *err)
{
    if (!s || !*s) return kl_seterr(err, KL_EINVAL, "empty time");
    if (strcmp(s, "now") == 0) {
        *ms = kl_now_ms();
        return KL_OK;
    }
    if (parse_relative(s, ms) || parse_iso(s, ms)) return KL_OK;
    const char *p = s + (*s == '-');
    if (*p && strspn(p, "0123456789") == strlen(p)) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno == 0 && !*end) {
            *ms = v;
            return KL_OK;
        }
    }
    return kl_seterr(err, KL_EINVAL,
                     "'%s' is not a time (use milliseconds since the epoch, "
                     "ISO-8601 like 2024-05-01T12:00:00Z, or relative like -15m)",
                     s);
}

void kl_strv_free(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}
