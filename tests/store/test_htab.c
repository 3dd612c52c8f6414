/* test_htab.c -- the library's hash table (klstore.h kl_htab): every entry is found
 * until removed, equal hashes are told apart by equality, and the table
 * grows without losing entries. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "hash.h"

typedef struct {
    char name[16];
    kl_hnode h;
} entry;

static int name_eq(const kl_hnode *h, const void *key)
{
    return strcmp(KL_HENTRY(h, entry, h)->name, key) == 0;
}

static entry *find(kl_htab *t, const char *name, uint64_t hash)
{
    kl_hnode *h = kl_htab_find(t, hash, name_eq, name);
    return h ? KL_HENTRY(h, entry, h) : NULL;
}

static uint64_t hash_of(const char *s) { return Kl_hash(s, strlen(s), KL_HASH_SEED); }

Test(htab, finds_every_entry_until_removed_across_growth)
{
    enum { N = 20000 };
    static entry e[N];
    kl_htab t;
    cr_assert_eq(kl_htab_init(&t, 3), 0);
    cr_assert_eq(t.n_buckets, 8, "rounded up to a power of two");
    for (int i = 0; i < N; i++) {
        snprintf(e[i].name, sizeof e[i].name, "key-%d", i);
        kl_htab_insert(&t, &e[i].h, hash_of(e[i].name));
    }
    cr_assert_eq(t.count, N);
    cr_assert_geq(t.n_buckets, N, "grew to at least one bucket per entry");
    for (int i = 0; i < N; i++) cr_assert_eq(find(&t, e[i].name, hash_of(e[i].name)), &e[i]);
    for (int i = 0; i < N; i += 2) kl_htab_remove(&t, &e[i].h);
    cr_assert_eq(t.count, N / 2);
    for (int i = 0; i < N; i++) {
        entry *got = find(&t, e[i].name, hash_of(e[i].name));
        cr_assert_eq(got, i % 2 ? &e[i] : NULL, "key-%d", i);
    }
    cr_assert_null(find(&t, "key-absent", hash_of("key-absent")));
    kl_htab_free(&t);
}

Test(htab, equal_hashes_are_told_apart_by_equality)
{
    entry a = {.name = "a"}, b = {.name = "b"}, c = {.name = "c"};
    kl_htab t;
    cr_assert_eq(kl_htab_init(&t, 0), 0);
    kl_htab_insert(&t, &a.h, 42);
    kl_htab_insert(&t, &b.h, 42);
    kl_htab_insert(&t, &c.h, 42 + t.n_buckets); /* same bucket, other hash */
    cr_assert_eq(find(&t, "a", 42), &a);
    cr_assert_eq(find(&t, "b", 42), &b);
    cr_assert_null(find(&t, "c", 42), "the hash must match as well as the key");
    cr_assert_eq(find(&t, "c", 42 + 8), &c);
    kl_htab_remove(&t, &a.h);
    cr_assert_null(find(&t, "a", 42));
    cr_assert_eq(find(&t, "b", 42), &b);
    kl_htab_free(&t);
    cr_assert_null(t.buckets);
}

Test(htab, a_zeroed_table_is_empty_and_takes_entries)
{
    kl_htab t = {0};
    entry a = {.name = "a"};
    cr_assert_null(find(&t, "a", hash_of("a")));
    cr_assert_eq(kl_htab_insert(&t, &a.h, hash_of("a")), 0);
    cr_assert_eq(find(&t, "a", hash_of("a")), &a);
    kl_htab_free(&t);
}

/* kl_hash is FNV-1a, stable forever (inode numbers depend on it): the
 * published test vectors, and chaining equals hashing the concatenation. */
Test(htab, the_hash_is_fnv1a)
{
    cr_assert_eq(kl_hash("", 0, KL_HASH_SEED), 0xcbf29ce484222325ULL);
    cr_assert_eq(kl_hash("a", 1, KL_HASH_SEED), 0xaf63dc4c8601ec8cULL);
    cr_assert_eq(kl_hash("foobar", 6, KL_HASH_SEED), 0x85944171f73967e8ULL);
    cr_assert_eq(kl_hash("bar", 3, kl_hash("foo", 3, KL_HASH_SEED)),
                 kl_hash("foobar", 6, KL_HASH_SEED));
}
