/* xattr.c -- read-only extended attributes with a key's and a keyspace's
 * metadata, so that `getfattr -d` shows what `klstore meta` would:
 *
 *   key:      user.klstore.next_offset, next_nonce, record_count,
 *             object_count, first_timestamp, last_timestamp
 *   keyspace: user.klstore.created
 *
 * Values are decimal text without a newline.  They come from the key's
 * object index (names only, nothing is downloaded): first_timestamp is the
 * smallest timestamp of the first object and last_timestamp the largest of
 * the newest, which are the first and last record's timestamps whenever
 * timestamps grow with offsets (the writer's clock). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fs.h"

#define PFX "user.klstore."

static const char *const key_attrs[] = {"next_offset",  "next_nonce",      "record_count",
                                        "object_count", "first_timestamp", "last_timestamp"};

/* Formats attribute `attr` of node n into val (at least 64 bytes); 0 or
 * -ENODATA when the node has no such attribute (right now). */
static int value(klfs *fs, node *n, const char *attr, char *val)
{
    char u[40];
    if (n->kind == N_KEYSPACE && strcmp(attr, "created") == 0) {
        struct stat st;
        nodes_stat(fs, n, -1, &st); /* reads the marker once */
        if (n->created_known != 1) return -ENODATA;
        sprintf(val, "%lld", (long long)n->created);
        return 0;
    }
    if (n->kind != N_KEY) return -ENODATA;
    kl_error err = {0};
    kl_textview_info s;
    kl_textview_refresh(n->tv, fs->refresh_ms, &err);
    kl_textview_stat(n->tv, &s);
    if (strcmp(attr, "next_offset") == 0)
        sprintf(val, "%llu", (unsigned long long)s.next_offset);
    else if (strcmp(attr, "next_nonce") == 0)
        strcpy(val, kl_u128_str(s.next_nonce, u));
    else if (strcmp(attr, "record_count") == 0)
        sprintf(val, "%llu", (unsigned long long)(s.next_offset - 1));
    else if (strcmp(attr, "object_count") == 0)
        sprintf(val, "%llu", (unsigned long long)s.objects);
    else if (strcmp(attr, "first_timestamp") == 0 && s.objects)
        sprintf(val, "%lld", (long long)s.first_timestamp);
    else if (strcmp(attr, "last_timestamp") == 0 && s.objects)
        sprintf(val, "%lld", (long long)s.last_timestamp);
    else
        return -ENODATA;
    return 0;
}

/* Copies `len` bytes into buf as the xattr calls want: size 0 measures,
 * too small a buffer is ERANGE. */
static ssize_t out(char *buf, size_t size, const char *src, size_t len)
{
    if (size == 0) return (ssize_t)len;
    if (size < len) return -ERANGE;
    if (len) memcpy(buf, src, len);
    return (ssize_t)len;
}

ssize_t xattr_list(klfs *fs, node *n, char *buf, size_t size)
{
    char names[512];
    size_t len = 0;
    char val[64];
    if (n->kind == N_KEYSPACE && value(fs, n, "created", val) == 0)
        len += (size_t)sprintf(names + len, PFX "created") + 1;
    for (size_t i = 0; n->kind == N_KEY && i < sizeof key_attrs / sizeof *key_attrs; i++)
        if (value(fs, n, key_attrs[i], val) == 0)
            len += (size_t)sprintf(names + len, PFX "%s", key_attrs[i]) + 1;
    return out(buf, size, names, len);
}

ssize_t xattr_get(klfs *fs, node *n, const char *name, char *buf, size_t size)
{
    if (strncmp(name, PFX, strlen(PFX)) != 0) return -ENODATA;
    char val[64];
    int rc = value(fs, n, name + strlen(PFX), val);
    if (rc) return rc;
    return out(buf, size, val, strlen(val));
}
