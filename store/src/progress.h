/* progress.h -- what one store-writer append has done so far, as its
 * observer hears it (append.h kl_published_fn, klstore.h
 * kl_publish_event), and the attempt a failed append leaves for its retry
 * (keycache.h kl_attempt; FORMAT.md "A failed request is not retried
 * twice over").  Used by append.c only; one append, one thread. */
#ifndef KL_PROGRESS_H
#define KL_PROGRESS_H
#include "append.h"

/* Records [0, in) are in the log (or were dropped as duplicates), held by
 * in_objs (malloc'd; in_objs_lost: out of memory, not all of them);
 * unsure[] are the objects right after them that may have landed. */
typedef struct kl_progress {
    size_t in;
    size_t n_unsure;
    kl_attempt_obj unsure[2];
    kl_object_meta *in_objs;
    size_t n_in_objs, cap_in_objs;
    int in_objs_lost;
    kl_published_fn fn;
    void *ctx;
    int framed;    /* the call's records lie framed (Kl_append_records) */
    size_t copied; /* records encoded by copy so far */
} kl_progress;

/* Records [0, to) are in; m (NULL: duplicates only) holds the last of
 * them and is reported PUBLISHED. */
void Kl_progress_in(kl_progress *p, size_t to, const kl_object_meta *m);
/* Before any request that may publish m: from then on a listing may show
 * it before its report. */
void Kl_progress_encoded(kl_progress *p, const kl_object_meta *m);
/* m will not be published: another writer's object took its slot. */
void Kl_progress_dropped(kl_progress *p, const kl_object_meta *m);
/* This call repeats the failed call of attempt a: the objects that call
 * published hold this call's first records; they are named IN_AGAIN. */
void Kl_progress_in_again(kl_progress *p, const kl_attempt *a);

/* Whether ins[0, n) starts with the records of a's failed call. */
int Kl_attempt_repeated(const kl_attempt *a, const kl_insertion *ins, size_t n);
/* A retry of a failed, still undecided: a goes back to s for the next
 * retry, without the objects found in since (reported), and s is stale. */
void Kl_attempt_keep(kl_keystate *s, kl_attempt *a, kl_progress *p);
/* Marks s stale after a failed append of ins[0, n), leaving an attempt
 * when some of them may be in (p). */
void Kl_attempt_leave(kl_keystate *s, const kl_insertion *ins, size_t n, kl_progress *p);
#endif
