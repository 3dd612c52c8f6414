/* listing.c -- what is in a store: keyspaces, keys, and a key's data
 * objects (their parsed names, for tools that inspect a key). */
#include <stdlib.h>
#include <string.h>

#include "keyindex.h"
#include "layout.h"

typedef struct strv {
    char **v;
    size_t n, cap;
} strv;

static int strv_add(strv *s, const char *p, size_t len)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strndup(p, len))) return -1;
    s->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts, drops duplicates and names that are not valid klstore names (a
 * bucket may hold other things under the prefix). */
static void strv_finish(strv *s)
{
    if (s->n) qsort(s->v, s->n, sizeof *s->v, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if ((k && strcmp(s->v[k - 1], s->v[i]) == 0) ||
            kl_validate_name("name", s->v[i], NULL) != KL_OK) {
            free(s->v[i]);
            continue;
        }
        s->v[k++] = s->v[i];
    }
    s->n = k;
}

/* LISTs `prefix` with delimiter '/' across all pages; for each common
 * prefix and (optionally) each object ending in `obj_suffix`, adds the
 * part between `prefix` and the '/' or suffix. */
static kl_status list_names(kl_objstore *os, const char *prefix, const char *obj_suffix, strv *out,
                            kl_error *err)
{
    size_t plen = strlen(prefix), slen = obj_suffix ? strlen(obj_suffix) : 0;
    char *cont = NULL;
    kl_status st = KL_OK;
    do {
        kl_list_req req = {.prefix = prefix, .delimiter = '/', .continuation = cont};
        kl_listing l;
        st = kl_os_list(os, &req, &l, err);
        free(cont);
        cont = NULL;
        if (st) break;
        for (size_t i = 0; i < l.n_prefixes && st == KL_OK; i++) {
            const char *p = l.prefixes[i] + plen;
            if (strv_add(out, p, strlen(p) - 1) != 0) st = KL_ENOMEM;
        }
        for (size_t i = 0; obj_suffix && i < l.n_objects && st == KL_OK; i++) {
            const char *p = l.objects[i].name + plen;
            size_t n = strlen(p);
            if (n > slen && strcmp(p + n - slen, obj_suffix) == 0 &&
                strv_add(out, p, n - slen) != 0)
                st = KL_ENOMEM;
        }
        cont = l.next;
        l.next = NULL;
        kl_listing_free(&l);
    } while (st == KL_OK && cont);
    free(cont);
    if (st == KL_ENOMEM) kl_seterr(err, st, "out of memory");
    return st;
}

static kl_status finish(strv *s, kl_status st, char ***names, size_t *n)
{
    if (st) {
        kl_strv_free(s->v, s->n);
        return st;
    }
    strv_finish(s);
    *names = s->v;
    *n = s->n;
    return KL_OK;
}

kl_status kl_list_keyspaces(kl_objstore *os, const kl_store_config *cfg, char ***names, size_t *n,
                            kl_error *err)
{
    strv s = {0};
    const char *prefix = cfg && cfg->object_prefix ? cfg->object_prefix : "";
    kl_status st = list_names(os, prefix, "_config.ini", &s, err);
    return finish(&s, st, names, n);
}

/* "{prefix}{keyspace}/", everything stored under a keyspace; NULL with
 * err set for a bad name or no memory. */
static char *keyspace_dir(const kl_store_config *cfg, const char *keyspace, kl_error *err)
{
    if (kl_validate_name("keyspace", keyspace, err) != KL_OK) return NULL;
    char *prefix =
        Kl_layout_key_dir(cfg && cfg->object_prefix ? cfg->object_prefix : "", keyspace, "");
    if (!prefix) {
        kl_seterr(err, KL_ENOMEM, "out of memory");
        return NULL;
    }
    prefix[strlen(prefix) - 1] = 0; /* "{p}{ks}//" -> "{p}{ks}/" */
    return prefix;
}

kl_status kl_list_keys(kl_objstore *os, const kl_store_config *cfg, const char *keyspace,
                       char ***names, size_t *n, kl_error *err)
{
    char *prefix = keyspace_dir(cfg, keyspace, err);
    if (!prefix) return err ? err->code : KL_EINVAL;
    strv s = {0};
    kl_status st = list_names(os, prefix, NULL, &s, err);
    free(prefix);
    return finish(&s, st, names, n);
}

kl_status kl_keyspace_has_objects(kl_objstore *os, const kl_store_config *cfg, const char *keyspace,
                                  int *yes, kl_error *err)
{
    char *prefix = keyspace_dir(cfg, keyspace, err);
    if (!prefix) return err ? err->code : KL_EINVAL;
    kl_list_req req = {.prefix = prefix, .max_keys = 1};
    kl_listing l;
    kl_status st = kl_os_list(os, &req, &l, err);
    free(prefix);
    if (st) return st;
    *yes = l.n_objects > 0;
    kl_listing_free(&l);
    return KL_OK;
}

static char *key_dir(const kl_store_config *cfg, const char *keyspace, const char *key,
                     kl_error *err)
{
    if (kl_validate_name("keyspace", keyspace, err) || kl_validate_name("key", key, err))
        return NULL;
    char *dir =
        Kl_layout_key_dir(cfg && cfg->object_prefix ? cfg->object_prefix : "", keyspace, key);
    if (!dir) kl_seterr(err, KL_ENOMEM, "out of memory");
    return dir;
}

kl_status kl_list_objects(kl_objstore *os, const kl_store_config *cfg, const char *keyspace,
                          const char *key, uint64_t after, size_t max, kl_object_meta **out,
                          size_t *n, kl_error *err)
{
    char *dir = key_dir(cfg, keyspace, key, err);
    if (!dir) return err ? err->code : KL_EINVAL;
    kl_status st = Kl_index_list(os, dir, after + 1, max, out, n, NULL, err);
    free(dir);
    return st;
}
