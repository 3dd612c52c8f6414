/* names.c -- time-travel names: "KEY@t=TIME", "KEY@o=OFFSET", "KEY@n=NONCE".
 *
 * Such a name is looked up (never listed) in a keyspace directory and opens
 * a read-only view of KEY from that position on.  The part after the last
 * '@' decides, so keys may contain '@' themselves; a real key with the full
 * name wins over the view (nodes.c checks the store first).  Times are
 * anything kl_parse_time takes (ms, ISO-8601, "-15m"); relative times are
 * resolved when the view is opened, not when the name is parsed. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "fs.h"

int names_parse_view(const char *name, char *key, view_spec *spec)
{
    const char *at = strrchr(name, '@');
    if (!at || at == name || strlen(at) < 4 || at[2] != '=') return 0;
    size_t klen = (size_t)(at - name);
    const char *arg = at + 3;
    if (klen > KL_NAME_MAX || strlen(arg) >= sizeof spec->arg) return 0;
    memcpy(key, name, klen);
    key[klen] = 0;
    if (kl_validate_name("key", key, NULL) != KL_OK) return 0;
    kl_status st;
    int64_t ts;
    uint64_t off;
    kl_u128 nonce;
    switch (at[1]) {
    case 't':
        spec->kind = KL_START_TIMESTAMP;
        st = kl_parse_time(arg, &ts, NULL);
        break;
    case 'o':
        spec->kind = KL_START_OFFSET;
        st = kl_parse_u64(arg, &off, NULL);
        break;
    case 'n':
        spec->kind = KL_START_NONCE;
        st = kl_parse_u128(arg, &nonce, NULL);
        break;
    default: return 0;
    }
    if (st != KL_OK) return 0;
    strcpy(spec->arg, arg);
    return 1;
}

int names_view_start(const view_spec *spec, kl_start *start)
{
    *start = (kl_start){.kind = spec->kind};
    kl_status st;
    switch (spec->kind) {
    case KL_START_OFFSET: st = kl_parse_u64(spec->arg, &start->offset, NULL); break;
    case KL_START_TIMESTAMP: st = kl_parse_time(spec->arg, &start->timestamp, NULL); break;
    default: st = kl_parse_u128(spec->arg, &start->nonce, NULL); break;
    }
    return st == KL_OK ? 0 : -EINVAL;
}
