/* s3_listpage.c -- the checks and tokens of s3_listpage.h.
 *
 * Token format: "kl1:" EMPTIES ":" LASTLEN ":" LAST SERVER_TOKEN, with
 * EMPTIES and LASTLEN in decimal and LAST the raw bytes of the last name
 * (its length makes any bytes safe). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3/s3_listpage.h"

#define TOKEN_TAG "kl1:"

void Kl_s3_list_pos_free(kl_s3_list_pos *pos)
{
    free(pos->server_token);
    free(pos->last);
    memset(pos, 0, sizeof *pos);
}

static kl_status oom(kl_error *err) { return kl_seterr(err, KL_ENOMEM, "S3 LIST: out of memory"); }

kl_status Kl_s3_list_pos_parse(const char *token, kl_s3_list_pos *pos, kl_error *err)
{
    memset(pos, 0, sizeof *pos);
    if (!token || !*token) return KL_OK;
    unsigned empties;
    size_t lastlen;
    int used = 0;
    if (strncmp(token, TOKEN_TAG, 4) == 0 &&
        sscanf(token + 4, "%u:%zu:%n", &empties, &lastlen, &used) == 2 && used > 0 &&
        strnlen(token + 4 + used, lastlen) == lastlen) {
        const char *last = token + 4 + used;
        pos->empties = empties;
        if (lastlen && !(pos->last = strndup(last, lastlen))) return oom(err);
        if (last[lastlen] && !(pos->server_token = strdup(last + lastlen))) {
            Kl_s3_list_pos_free(pos);
            return oom(err);
        }
        return KL_OK;
    }
    /* Not ours: a server token as it came. */
    return (pos->server_token = strdup(token)) ? KL_OK : oom(err);
}

static const char *later(const char *a, const char *b)
{
    if (!a) return b;
    if (!b) return a;
    return strcmp(a, b) >= 0 ? a : b;
}

kl_status Kl_s3_list_page_check(const kl_s3_list_pos *pos, const char *start_after, kl_listing *l,
                                const char *what, kl_error *err)
{
    /* Objects and prefixes come each in ascending order, and all after
     * what was listed before (and after start_after). */
    const char *floor = later(pos->last, start_after && *start_after ? start_after : NULL);
    const char *last = floor;
    for (int pass = 0; pass < 2; pass++) {
        size_t n = pass ? l->n_prefixes : l->n_objects;
        const char *prev = floor;
        for (size_t i = 0; i < n; i++) {
            const char *name = pass ? l->prefixes[i] : l->objects[i].name;
            if (prev && strcmp(name, prev) <= 0)
                return kl_seterr(err, KL_EBADDATA,
                                 "%s: the server's listing does not advance "
                                 "('%.200s' after '%.200s'): a broken or hostile S3 server",
                                 what, name, prev);
            prev = name;
        }
        last = later(last, prev);
    }
    if (!l->next) return KL_OK;
    if (pos->server_token && strcmp(l->next, pos->server_token) == 0)
        return kl_seterr(err, KL_EBADDATA,
                         "%s: the server returned the continuation token it "
                         "was given: a listing that never ends (a broken or hostile S3 server)",
                         what);
    unsigned empties = l->n_objects || l->n_prefixes ? 0 : pos->empties + 1;
    if (empties > KL_S3_LIST_MAX_EMPTY)
        return kl_seterr(err, KL_EBADDATA,
                         "%s: %u empty pages in a row, each saying there is "
                         "more: a listing that never ends (a broken or hostile S3 server)",
                         what, empties);
    char *tok = NULL;
    size_t ll = last ? strlen(last) : 0;
    if (asprintf(&tok, TOKEN_TAG "%u:%zu:%s%s", empties, ll, last ? last : "", l->next) < 0)
        return oom(err);
    free(l->next);
    l->next = tok;
    return KL_OK;
}
