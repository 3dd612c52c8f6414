/* layout.c -- object names of markers, keys and seek bounds (layout.h). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "layout.h"

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, f);
    int r = vasprintf(&s, f, ap);
    va_end(ap);
    return r < 0 ? NULL : s;
}

char *Kl_layout_marker(const char *prefix, const char *keyspace)
{
    return fmt("%s%s_config.ini", prefix ? prefix : "", keyspace);
}

char *Kl_layout_key_dir(const char *prefix, const char *keyspace, const char *key)
{
    return fmt("%s%s/%s/", prefix ? prefix : "", keyspace, key);
}

char *Kl_layout_join(const char *key_dir, const char *suffix)
{
    return fmt("%s%s", key_dir, suffix);
}

char *Kl_layout_seek(const char *key_dir, uint64_t offset)
{
    return fmt("%sdata_o%020" PRIu64, key_dir, offset);
}

char *Kl_layout_claim(const char *key_dir, uint64_t slot)
{
    return fmt("%sclaim_o%020" PRIu64, key_dir, slot);
}
