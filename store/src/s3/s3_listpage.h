/* s3_listpage.h -- keeping a LIST that pages through continuation tokens
 * honest.
 *
 * A broken or hostile server can make a listing endless: truncated pages
 * with no entries and a new token each time, the same token again, or
 * pages that do not move past what was already listed.  ListObjectsV2
 * itself remembers nothing between pages, so the position goes into the
 * continuation token we hand back (the server's token, the last name
 * listed, and how many empty truncated pages came in a row); the next page
 * is checked against it.  Tokens stay opaque to callers. */
#ifndef KL_S3_LISTPAGE_H
#define KL_S3_LISTPAGE_H
#include "klstore.h"

/* Empty truncated pages in a row after which a listing is refused. */
#define KL_S3_LIST_MAX_EMPTY 16

typedef struct kl_s3_list_pos {
    char *server_token; /* what to send as continuation-token, or NULL */
    char *last;         /* the last name listed so far, or NULL */
    unsigned empties;   /* empty truncated pages so far, in a row */
} kl_s3_list_pos;

/* Reads a token from Kl_s3_list_page_check (or, for compatibility, a raw
 * server token) into pos; NULL/"" gives an empty position.  KL_ENOMEM. */
kl_status Kl_s3_list_pos_parse(const char *token, kl_s3_list_pos *pos, kl_error *err);
void Kl_s3_list_pos_free(kl_s3_list_pos *pos);

/* Checks page l, listed after pos (and after start_after), and replaces
 * l->next by the token of the position after it.  KL_EBADDATA, naming the
 * misbehaviour, when names do not advance, a token repeats or too many
 * empty pages come in a row; `what` names the request in messages. */
kl_status Kl_s3_list_page_check(const kl_s3_list_pos *pos, const char *start_after, kl_listing *l,
                                const char *what, kl_error *err);
#endif
