/* batch_keys.c -- what the batching writer holds per key: queued appends,
 * and each writer thread's table of key batches.
 *
 * The table is the library's hash table (klstore.h kl_htab) keyed by the hash below,
 * whose high bits pick the thread and low bits the bucket, so a thread's
 * keys spread over all its buckets.  A key's batch lives only while it
 * holds records or an error still to report, so the table's memory
 * follows the keys with something pending, not every key ever written. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "batch_internal.h"
#include "buf.h"
#include "codec.h"
#include "hash.h"
#include "qarena.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 64

/* FNV-1a (hash.h) over keyspace, a NUL separator and key: stable across
 * runs and processes, so a key always lands on the same thread.  FNV alone
 * leaves the high bits of similar short names ("key-1", "key-2") poorly
 * mixed (64 such keys hit only 2 of 4 threads), so the result goes through
 * MurmurHash3's 64-bit finaliser. */
uint64_t Kl_batch_key_hash(const char *keyspace, const char *key)
{
    uint64_t h = Kl_hash(keyspace, strlen(keyspace), KL_HASH_SEED);
    h = Kl_hash("", 1, h);
    h = Kl_hash(key, strlen(key), h);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Copies names and records into one block, the records encoded as in a
 * data object (codec.h), offset 0: the store writer writes their offsets
 * where they lie and sends them from here (append.h "framed"), so a
 * record's bytes are copied once on their way to the store.  Records
 * without a timestamp get the current time now, so batching does not
 * shift them.  The records were validated (no longer than KL_RECORD_MAX:
 * lengths fit in 32 bits). */
queued_append *Kl_batch_append_new(const char *keyspace, const char *key, uint64_t hash,
                                   const kl_insertion *ins, size_t n)
{
    size_t ks_len = strlen(keyspace) + 1, key_len = strlen(key) + 1;
    size_t size = sizeof(queued_append) + ks_len + key_len;
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += ins[i].len;
    void *chunk;
    queued_append *qa = Kl_qarena_alloc(size + bytes + n * KL_RECORD_OVERHEAD, &chunk);
    if (!qa) return NULL;
    qa->chunk = chunk;
    qa->next = NULL;
    qa->hash = hash;
    qa->count = n;
    qa->bytes = bytes;
    qa->queued_ms = kl_mono_ms();
    int64_t now = kl_now_ms();
    kl_buf frames = {qa->data, 0, bytes + n * KL_RECORD_OVERHEAD};
    for (size_t i = 0; i < n; i++) /* cannot fail: frames has room */
        Kl_codec_put(&frames, 0, ins[i].has_timestamp ? ins[i].timestamp : now, ins[i].has_nonce,
                     ins[i].nonce, ins[i].data, (uint32_t)ins[i].len);
    unsigned char *p = qa->data + frames.len;
    qa->keyspace = memcpy(p, keyspace, ks_len);
    qa->key = memcpy(p + ks_len, key, key_len);
    return qa;
}

void Kl_batch_append_unpack(const queued_append *qa, kl_insertion *ins)
{
    const unsigned char *p = qa->data;
    for (size_t i = 0; i < qa->count; i++) {
        kl_record r;
        uint32_t len = Kl_le32(p + 32);
        Kl_codec_record(&r, p, len);
        ins[i] = (kl_insertion){.data = r.data,
                                .len = len,
                                .has_timestamp = 1,
                                .timestamp = r.timestamp,
                                .has_nonce = r.has_nonce,
                                .nonce = r.nonce};
        p += KL_RECORD_OVERHEAD + len;
    }
}

static void appends_free(queued_append *qa)
{
    while (qa) {
        queued_append *next = qa->next;
        Kl_qarena_free(qa, qa->chunk);
        qa = next;
    }
}

int Kl_batch_keys_init(writer_thread *t) { return kl_htab_init(&t->keys, INITIAL_BUCKETS); }

void Kl_batch_keys_free(writer_thread *t) { kl_htab_free(&t->keys); }

size_t Kl_batch_keys_count(const writer_thread *t) { return t->keys.count; }

typedef struct key_name {
    const char *keyspace;
    const char *key;
} key_name;

static int key_eq(const kl_hnode *n, const void *arg)
{
    const key_batch *kb = KL_HENTRY(n, key_batch, node);
    const key_name *name = arg;
    return !strcmp(kb->keyspace, name->keyspace) && !strcmp(kb->key, name->key);
}

key_batch *Kl_batch_key_find(writer_thread *t, uint64_t hash, const char *keyspace, const char *key)
{
    key_name name = {keyspace, key};
    kl_hnode *n = kl_htab_find(&t->keys, hash, key_eq, &name);
    return n ? KL_HENTRY(n, key_batch, node) : NULL;
}

key_batch *Kl_batch_key_get(writer_thread *t, const queued_append *qa)
{
    key_batch *kb = Kl_batch_key_find(t, qa->hash, qa->keyspace, qa->key);
    if (kb) return kb;
    kb = calloc(1, sizeof *kb);
    if (!kb || !(kb->keyspace = strdup(qa->keyspace)) || !(kb->key = strdup(qa->key))) {
        if (kb) free(kb->keyspace);
        free(kb);
        return NULL;
    }
    kl_htab_insert(&t->keys, &kb->node, qa->hash);
    return kb;
}

void Kl_batch_key_clear(key_batch *kb)
{
    appends_free(kb->head);
    kb->head = kb->tail = NULL;
    kb->records = kb->bytes = 0;
}

void Kl_batch_key_drop(writer_thread *t, key_batch *kb)
{
    kl_htab_remove(&t->keys, &kb->node);
    appends_free(kb->head);
    free(kb->keyspace);
    free(kb->key);
    free(kb);
}

/* Drops a key's state once it holds nothing: no records, nothing to report. */
void Kl_batch_key_release_if_idle(writer_thread *t, key_batch *kb)
{
    if (kb->records || kb->failing || kb->lost_unseen_by_append || kb->lost_unseen_by_flush) return;
    Kl_batch_key_drop(t, kb);
}

/* kl_htab has no iterator, so this walks its buckets: fn may remove the
 * key it is given (the chain's next is read first) but never inserts, so
 * the table does not grow under the walk. */
void Kl_batch_keys_each(writer_thread *t, void (*fn)(writer_thread *, key_batch *, void *),
                        void *arg)
{
    for (size_t i = 0; i < t->keys.n_buckets; i++) {
        kl_hnode *n = t->keys.buckets[i];
        while (n) {
            kl_hnode *next = n->next;
            fn(t, KL_HENTRY(n, key_batch, node), arg);
            n = next;
        }
    }
}
