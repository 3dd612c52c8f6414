/* test_qarena.c -- the batching writer's append arena (store/src/qarena.c):
 * allocations never overlap, survive until freed from any thread, big ones
 * come from the large-buffer pool, and a chunk whose appends are all freed is reused
 * rather than replaced by fresh memory. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "qarena.h"

typedef struct slot {
    unsigned char *p;
    void *chunk;
    size_t len;
    unsigned char fill;
} slot;

#define N 20000

static void fill(slot *s, size_t len, unsigned char v)
{
    s->p = Kl_qarena_alloc(len, &s->chunk);
    cr_assert_not_null(s->p);
    cr_assert_eq((uintptr_t)s->p % 16, 0, "16-byte aligned");
    s->len = len;
    s->fill = v;
    memset(s->p, v, len);
}

static void check_and_free(slot *s)
{
    for (size_t i = 0; i < s->len; i++)
        cr_assert_eq(s->p[i], s->fill, "byte %zu of a %zu-byte block was overwritten", i, s->len);
    Kl_qarena_free(s->p, s->chunk);
}

Test(qarena, blocks_never_overlap_and_big_ones_are_pooled_buffers)
{
    static slot s[N];
    for (size_t i = 0; i < N; i++) fill(&s[i], 1 + (i * 7919) % 700, (unsigned char)i);
    slot big;
    fill(&big, 1u << 20, 0xab);
    for (size_t i = 0; i < N; i++)
        cr_assert_neq(big.chunk, s[i].chunk, "a 1 MiB block is not carved from a chunk");
    for (size_t i = 0; i < N; i += 2) /* free out of order */
        check_and_free(&s[i]);
    for (size_t i = 1; i < N; i += 2) check_and_free(&s[i]);
    check_and_free(&big);
}

/* The batching writer's pattern: one thread carves, another frees. */
static slot shared[N];
static void *free_all(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < N; i++) check_and_free(&shared[i]);
    return NULL;
}

Test(qarena, freed_from_another_thread)
{
    for (size_t i = 0; i < N; i++) fill(&shared[i], 64 + i % 300, (unsigned char)(i * 3));
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, free_all, NULL), 0);
    pthread_join(t, NULL);
}

Test(qarena, a_drained_chunk_is_reused)
{
    slot a;
    fill(&a, 1000, 1);
    void *first = a.chunk;
    check_and_free(&a);
    /* Fill the rest of the chunk and more: with every earlier block freed,
     * carving wraps to the same chunk instead of taking another. */
    for (int i = 0; i < 1000; i++) {
        slot b;
        fill(&b, 1000, 2);
        cr_assert_eq(b.chunk, first, "allocation %d used another chunk", i);
        check_and_free(&b);
    }
}
