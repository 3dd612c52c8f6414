/* names.c -- what a keyspace or key may be called, and the data object
 * name format of FORMAT.md:
 *   data_o{first:020}-o{last}_t{minTs}-t{maxTs}_n{firstNonce}-n{nextNonce}_s{size}_p{prior}.bin
 * The zero-padded first offset makes S3's lexicographic LIST order the
 * offset order, which is what every O(log n) search in the reader uses. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "klstore.h"

/* Accepts well-formed UTF-8 only: S3 object names must be UTF-8, and a
 * name that is not would round-trip differently through S3 tools. */
static int valid_utf8(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s;
        int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
        if (extra < 0 || (extra == 1 && c < 0xc2)) return 0;
        s++;
        for (int i = 0; i < extra; i++, s++)
            if ((*s & 0xc0) != 0x80) return 0;
    }
    return 1;
}

kl_status kl_validate_name(const char *what, const char *name, kl_error *err)
{
    if (!name || !*name) return kl_seterr(err, KL_EINVAL, "%s name is empty", what);
    size_t n = strlen(name);
    if (n > KL_NAME_MAX)
        return kl_seterr(err, KL_EINVAL, "%s name is %zu bytes, the maximum is %d", what, n,
                         KL_NAME_MAX);
    if (name[0] == '.')
        return kl_seterr(err, KL_EINVAL, "%s name '%s' starts with '.' (reserved)", what, name);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p == '/') return kl_seterr(err, KL_EINVAL, "%s name '%s' contains '/'", what, name);
        if (*p < 0x20 || *p == 0x7f)
            return kl_seterr(err, KL_EINVAL, "%s name contains control character 0x%02x", what, *p);
    }
    static const char marker[] = "_config.ini";
    if (n >= sizeof marker - 1 && strcmp(name + n - (sizeof marker - 1), marker) == 0)
        return kl_seterr(err, KL_EINVAL,
                         "%s name '%s' ends with '_config.ini' (reserved for "
                         "keyspace markers)",
                         what, name);
    if (!valid_utf8((const unsigned char *)name))
        return kl_seterr(err, KL_EINVAL, "%s name is not valid UTF-8", what);
    return KL_OK;
}

int kl_object_name_format(const kl_object_meta *m, char *buf, size_t cap)
{
    char fn[40], nn[40];
    int r = snprintf(buf, cap,
                     "data_o%020" PRIu64 "-o%" PRIu64 "_t%" PRId64 "-t%" PRId64 "_n%s-n%s_s%" PRIu64
                     "_p%" PRIu64 ".bin",
                     m->first_offset, m->last_offset, m->min_ts, m->max_ts,
                     kl_u128_str(m->first_nonce, fn), kl_u128_str(m->next_nonce, nn), m->size,
                     m->prior);
    return (r < 0 || (size_t)r >= cap) ? -1 : r;
}

/* Cursor-style parsers: each consumes from *p and fails on no digits. */
static int eat(const char **p, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*p, lit, n) != 0) return 0;
    *p += n;
    return 1;
}

static int eat_u128(const char **p, kl_u128 *v, int max_digits)
{
    kl_u128 x = 0;
    int d = 0;
    while (**p >= '0' && **p <= '9') {
        kl_u128 nx = x * 10 + (kl_u128)(**p - '0');
        if (nx / 10 != x) return 0; /* overflow */
        x = nx;
        (*p)++;
        if (++d > max_digits) return 0;
    }
    *v = x;
    return d > 0;
}

static int eat_u64(const char **p, uint64_t *v)
{
    kl_u128 x;
    if (!eat_u128(p, &x, 20) || x > UINT64_MAX) return 0;
    *v = (uint64_t)x;
    return 1;
}

static int eat_i64(const char **p, int64_t *v)
{
    int neg = eat(p, "-");
    uint64_t u;
    if (!eat_u64(p, &u)) return 0;
    if (neg ? u > (uint64_t)INT64_MAX + 1 : u > (uint64_t)INT64_MAX) return 0;
    *v = neg ? (int64_t)(0 - u) : (int64_t)u;
    return 1;
}

kl_status kl_object_name_parse(const char *name, kl_object_meta *m, kl_error *err)
{
    const char *base = strrchr(name, '/');
    const char *p = base ? base + 1 : name;
    const char *start = p;
    kl_object_meta t;
    if (!(eat(&p, "data_o") && eat_u64(&p, &t.first_offset) && p - start == 26 && eat(&p, "-o") &&
          eat_u64(&p, &t.last_offset) && eat(&p, "_t") && eat_i64(&p, &t.min_ts) && eat(&p, "-t") &&
          eat_i64(&p, &t.max_ts) && eat(&p, "_n") && eat_u128(&p, &t.first_nonce, 39) &&
          eat(&p, "-n") && eat_u128(&p, &t.next_nonce, 39) && eat(&p, "_s") &&
          eat_u64(&p, &t.size) && eat(&p, "_p") && eat_u64(&p, &t.prior) && eat(&p, ".bin") &&
          *p == 0))
        return kl_seterr(err, KL_EBADDATA, "unparsable data object name '%s'", name);
    if (t.first_offset == 0 || t.last_offset < t.first_offset || t.min_ts > t.max_ts ||
        t.next_nonce < t.first_nonce || t.prior >= t.first_offset)
        return kl_seterr(err, KL_EBADDATA, "inconsistent data object name '%s'", name);
    *m = t;
    return KL_OK;
}
