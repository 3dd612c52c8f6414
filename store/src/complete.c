/* complete.c -- the complete-batch rule (complete.h).
 *
 * Why a file of its own: compact.c and tail.c both need it.  Kept in
 * compact.c it made tail.c call back into compaction, which calls tail.c
 * (claims to delete, covered objects to drop); below both, the store
 * writer's files call each other one way. */
#include "complete.h"

int Kl_complete_batch(const kl_store_config *cfg, uint64_t records, uint64_t bytes)
{
    return records >= cfg->compact_records_threshold || bytes >= cfg->compact_size_threshold;
}

int Kl_complete_object(const kl_store_config *cfg, const kl_object_meta *m)
{
    return Kl_complete_batch(cfg, m->last_offset - m->first_offset + 1, m->size);
}
