/* layout.h -- where things live in a bucket (FORMAT.md "Objects"):
 *   {prefix}{keyspace}_config.ini             keyspace marker
 *   {prefix}{keyspace}/{key}/data_o...bin     data objects
 *   {prefix}{keyspace}/{key}/watermark        newest complete batch
 *   {prefix}{keyspace}/{key}/claim_o{N:020}   slot claim (concurrent writers)
 * All returned strings are malloc'd (free(3)); NULL on ENOMEM. */
#ifndef KL_LAYOUT_H
#define KL_LAYOUT_H
#include "klstore.h"

char *Kl_layout_marker(const char *prefix, const char *keyspace);
char *Kl_layout_key_dir(const char *prefix, const char *keyspace, const char *key);
/* key_dir + suffix, e.g. "watermark" or a data object name. */
char *Kl_layout_join(const char *key_dir, const char *suffix);
/* key_dir + "data_o{offset:020}": the LIST start-after bound below which
 * lie exactly the objects whose first offset is < offset. */
char *Kl_layout_seek(const char *key_dir, uint64_t offset);
/* key_dir + "claim_o{slot:020}": the claim of the object starting at slot. */
char *Kl_layout_claim(const char *key_dir, uint64_t slot);
#endif
