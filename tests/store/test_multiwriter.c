/* test_multiwriter.c -- many writers on one key (FORMAT.md "Concurrent
 * writers"), on the local store and on Ceph RGW.
 *
 * Whole-process runs: several mw_writer processes append numbered records
 * to one key, some of them stopped (SIGSTOP/SIGCONT) or killed (SIGKILL)
 * at random points; a checker then proves that every acknowledged record
 * is in the log exactly once, no record is there twice, each writer's
 * records keep their order, the data objects are contiguous without
 * overlaps, and `meta` agrees with `read`.
 *
 * Deterministic races: two store writers in one process (separate caches,
 * as in separate processes) over an object store whose claim and publish
 * can be held at a gate, so one writer is "stopped" exactly between two
 * of its requests while the other goes on. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/wait.h>

#include "test_env.h"

#ifndef MW_WRITER_BIN
#error "MW_WRITER_BIN must name the mw_writer helper"
#endif

/* ---- the checker ---------------------------------------------------- */

typedef struct seen {
    uint64_t *offset; /* per writer, per seq: offset in the log, 0 = absent */
} seen;

static void store_url(kt_store *t, char *url, size_t cap)
{
    if (t->is_s3)
        snprintf(url, cap, "s3://%s/%s", getenv("KL_S3_BUCKET"), t->prefix);
    else
        snprintf(url, cap, "%s", t->dir);
}

/* Reads the whole key, checks it, and returns per-writer offsets. */
static uint64_t check_log(kt_store *t, const char *ks, const char *key, int writers, long count,
                          seen *s)
{
    kl_error err = {0};
    kl_reader *r;
    cr_assert_eq(kl_store_reader_new(t->os, &t->cfg, &r, &err), KL_OK, "%s", err.msg);
    for (int w = 0; w < writers; w++) s[w].offset = calloc((size_t)count, sizeof(uint64_t));
    kl_page p;
    kl_start from = {.kind = KL_START_FIRST};
    cr_assert_eq(kl_read_first_page(r, ks, key, KL_FORWARDS, &from, 1000, &p, &err), KL_OK, "%s",
                 err.msg);
    uint64_t total = 0;
    for (;;) {
        for (size_t i = 0; i < p.count; i++) {
            const kl_record *rec = &p.records[i];
            cr_assert_eq(rec->offset, total + 1, "offsets not contiguous at %lu",
                         (unsigned long)total + 1);
            total++;
            int w;
            long seq;
            char buf[300];
            snprintf(buf, sizeof buf, "%.*s", (int)rec->len, (const char *)rec->data);
            cr_assert_eq(sscanf(buf, "w%d %ld", &w, &seq), 2, "foreign record '%s'", buf);
            cr_assert(w >= 0 && w < writers && seq >= 0 && seq < count, "bad record '%s'", buf);
            cr_assert_eq(s[w].offset[seq], 0,
                         "record '%s' is in the log twice (offsets %lu and "
                         "%lu)",
                         buf, (unsigned long)s[w].offset[seq], (unsigned long)rec->offset);
            s[w].offset[seq] = rec->offset;
        }
        if (p.count == 0) break;
        char *tok = strdup(p.continuation);
        kl_page_free(&p);
        cr_assert_eq(kl_read_next_page(r, ks, key, tok, 1000, &p, &err), KL_OK, "%s", err.msg);
        free(tok);
    }
    kl_page_free(&p);
    /* meta agrees with read */
    int exists;
    kl_key_meta km;
    cr_assert_eq(kl_read_key_metadata(r, ks, key, &exists, &km, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(km.next_offset, total + 1, "meta says next_offset %lu, read returned %lu records",
                 (unsigned long)km.next_offset, (unsigned long)total);
    kl_reader_destroy(r);
    /* per-writer order */
    for (int w = 0; w < writers; w++) {
        uint64_t last = 0;
        for (long q = 0; q < count; q++) {
            if (!s[w].offset[q]) continue;
            cr_assert_gt(s[w].offset[q], last, "writer %d's record %ld is out of order", w, q);
            last = s[w].offset[q];
        }
    }
    /* the data objects: contiguous, no overlaps */
    kl_object_meta *v;
    size_t n;
    cr_assert_eq(kl_list_objects(t->os, &t->cfg, ks, key, 0, 0, &v, &n, &err), KL_OK, "%s",
                 err.msg);
    uint64_t next = 1;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(v[i].first_offset, next, "object %zu starts at %lu, expected %lu", i,
                     (unsigned long)v[i].first_offset, (unsigned long)next);
        next = v[i].last_offset + 1;
    }
    cr_assert_eq(next, total + 1);
    free(v);
    return total;
}

/* The raw listing (no deduplication): once every writer has finished its
 * compactions, no two data objects overlap, not even two merges that
 * start at the same offset. */
static void check_no_overlap(kt_store *t, const char *ks, const char *key)
{
    char *prefix;
    cr_assert_geq(asprintf(&prefix, "%s%s/%s/data_o", t->prefix, ks, key), 0);
    kl_list_req req = {.prefix = prefix, .max_keys = 1000};
    kl_listing l = {0};
    uint64_t end = 0;
    char last[512] = "";
    kl_error err = {0};
    for (;;) {
        cr_assert_eq(kl_os_list(t->os, &req, &l, &err), KL_OK, "%s", err.msg);
        for (size_t i = 0; i < l.n_objects; i++) {
            kl_object_meta m;
            cr_assert_eq(kl_object_name_parse(strrchr(l.objects[i].name, '/') + 1, &m, &err),
                         KL_OK);
            cr_assert_gt(m.first_offset, end, "objects overlap: '%s' starts at or before %lu (%s)",
                         l.objects[i].name, (unsigned long)end, last);
            end = m.last_offset;
            snprintf(last, sizeof last, "%s", l.objects[i].name);
        }
        char *next = l.next ? strdup(l.next) : NULL;
        kl_listing_free(&l);
        if (!next) break;
        free((char *)req.continuation);
        req.continuation = next;
    }
    free((char *)req.continuation);
    free(prefix);
}

/* Every range in ackfile must be in the log. */
static long check_acked(const char *ackfile, seen *s, int w)
{
    FILE *f = fopen(ackfile, "r");
    long acked = 0, a, b;
    if (!f) return 0;
    while (fscanf(f, "%ld %ld", &a, &b) == 2)
        for (long q = a; q <= b; q++, acked++)
            cr_assert_neq(s[w].offset[q], 0,
                          "writer %d's record %ld was acknowledged but is "
                          "not in the log",
                          w, q);
    fclose(f);
    return acked;
}

/* ---- whole processes ------------------------------------------------ */

static pid_t spawn(const char *url, int id, long count, long per, const char *ackfile, int batch)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        char ids[16], cs[32], ps[32];
        snprintf(ids, sizeof ids, "%d", id);
        snprintf(cs, sizeof cs, "%ld", count);
        snprintf(ps, sizeof ps, "%ld", per);
        int dn = open("/dev/null", O_WRONLY);
        if (dn >= 0 && !getenv("MW_VERBOSE")) dup2(dn, 2);
        execl(MW_WRITER_BIN, "mw_writer", url, "ks", "k", ids, cs, ps, ackfile,
              batch ? "batch" : "store", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs `writers` processes; with chaos, stops and resumes them at random
 * (chaos 1: and kills one of them once). */
static void run(int writers, long count, long per, int chaos, int batch)
{
    kt_store t;
    kt_open(&t);
    char url[512], tmp[] = "/tmp/klmw-XXXXXX", ack[64][128];
    store_url(&t, url, sizeof url);
    cr_assert_not_null(mkdtemp(tmp));
    pid_t pid[64];
    int alive[64];
    for (int w = 0; w < writers; w++) {
        snprintf(ack[w], sizeof ack[w], "%s/ack%d", tmp, w);
        pid[w] = spawn(url, w, count, per, ack[w], batch);
        alive[w] = 1;
    }
    unsigned seed = (unsigned)getpid();
    int killed = 0, running = writers;
    while (running) {
        if (chaos) {
            int w = (int)(rand_r(&seed) % (unsigned)writers);
            if (alive[w]) {
                if (chaos == 1 && !killed && rand_r(&seed) % 6 == 0) {
                    kill(pid[w], SIGKILL);
                    killed = 1;
                } else {
                    kill(pid[w], SIGSTOP);
                    msleep(50 + rand_r(&seed) % 400);
                    kill(pid[w], SIGCONT);
                }
            }
        }
        msleep(20 + rand_r(&seed) % 80);
        for (int w = 0; w < writers; w++) {
            int status;
            if (alive[w] && waitpid(pid[w], &status, WNOHANG) == pid[w]) {
                alive[w] = 0;
                running--;
                if (!WIFSIGNALED(status))
                    cr_expect_eq(WEXITSTATUS(status), 0, "writer %d exited %d", w,
                                 WEXITSTATUS(status));
            }
        }
    }
    seen s[64];
    uint64_t total = check_log(&t, "ks", "k", writers, count, s);
    long acked = 0;
    for (int w = 0; w < writers; w++) acked += check_acked(ack[w], s, w);
    cr_log_info("%d writers, %ld records each: %lu in the log, %ld acknowledged%s", writers, count,
                (unsigned long)total, acked, killed ? " (one writer killed)" : "");
    cr_assert_geq((long)total, acked);
    /* A merge whose PUT took effect but failed (MW_FAULTS) is not cleaned
     * up after; a later merge of the same run would be (readers skip what
     * another object covers either way). */
    if (!killed && !getenv("MW_FAULTS")) check_no_overlap(&t, "ks", "k");
    cr_assert_gt(acked, 0);
    if (!chaos) cr_assert_eq((long)total, writers * count);
    for (int w = 0; w < writers; w++) {
        free(s[w].offset);
        unlink(ack[w]);
    }
    rmdir(tmp);
    kt_close(&t);
}

Test(multiwriter, four_processes_one_key) { run(4, 400, 4, 0, 0); }

/* Stops last 50-450 ms: with a claim hold of 240 ms, stopped writers
 * resume both within and past the hold (their views go stale, their
 * slots' claims may be deleted and made again), and the others skip
 * their tail checks between stops (within 40 ms). */
Test(multiwriter, stopped_and_killed_writers_lose_nothing_acknowledged, .timeout = 300)
{
    setenv("MW_COMPACT_RECORDS", "60", 1); /* compaction races too */
    setenv("MW_COMPACT_OBJECTS", "8", 1);
    setenv("MW_CLAIM_HOLD_MS", "240", 1);
    run(4, 400, 3, 1, 0);
}

/* Compactions race (tiny thresholds) while writers are stopped and
 * resumed; nobody is killed, so at the end no two objects may overlap. */
Test(multiwriter, racing_compactions_leave_no_overlap, .timeout = 300)
{
    setenv("MW_COMPACT_RECORDS", "60", 1);
    setenv("MW_COMPACT_OBJECTS", "6", 1);
    setenv("MW_CLAIM_HOLD_MS", "240", 1);
    run(6, 300, 3, 2, 0);
}

Test(multiwriter, batching_writers_flushing_each_append, .timeout = 300) { run(3, 200, 5, 1, 1); }

/* Injected faults, half of them after the request took effect (its answer
 * lost), each failed append (or flush) repeated until it succeeds, while
 * writers race: every record must be in the log exactly once. */
Test(multiwriter, retried_faults_are_exactly_once, .timeout = 300)
{
    setenv("MW_FAULTS", "15", 1);
    run(3, 200, 4, 0, 0);
}

Test(multiwriter, retried_faults_through_batching_writers_are_exactly_once, .timeout = 300)
{
    setenv("MW_FAULTS", "15", 1);
    run(3, 150, 5, 0, 1);
}

/* Batching writers that flush only every 25 appends, with batches of a
 * few hundred bytes: full batches go out as several objects, pipelined,
 * racing the other writers for the same slots, with injected faults. */
Test(multiwriter, pipelined_batches_racing_with_faults_are_exactly_once, .timeout = 300)
{
    setenv("MW_FAULTS", "10", 1);
    setenv("MW_FLUSH_EVERY", "25", 1);
    setenv("MW_BATCH_BYTES", "300", 1);
    run(3, 600, 2, 0, 1);
}

/* The same while writers are stopped, resumed and one is killed, with a
 * short claim hold (stopped writers' views go stale): retries meet claims
 * that others published, merged or deleted meanwhile. */
Test(multiwriter, retried_faults_with_stops_and_a_kill, .timeout = 300)
{
    setenv("MW_FAULTS", "10", 1);
    setenv("MW_COMPACT_RECORDS", "60", 1);
    setenv("MW_COMPACT_OBJECTS", "8", 1);
    setenv("MW_CLAIM_HOLD_MS", "240", 1);
    run(4, 300, 3, 1, 0);
}

/* ---- deterministic races -------------------------------------------- */

/* An object store that delegates to another and can hold the calling
 * thread at a gate after a claim or before a publish. */
typedef struct gated {
    kl_objstore base;
    kl_objstore *inner;
    sem_t reached, release;
    int claims, stray_or_lost;
} gated;

static __thread int thread_lists; /* LISTs made by this thread */

static __thread int hold_after_claim, hold_before_publish;

#define G(os) ((gated *)(os))
static kl_status g_put(kl_objstore *os, const char *n, const void *d, size_t l, int f, kl_error *e)
{
    return kl_os_put(G(os)->inner, n, d, l, f, e);
}
static kl_status g_get(kl_objstore *os, const char *n, uint64_t off, uint64_t len, uint8_t **d,
                       size_t *ol, kl_error *e)
{
    return kl_os_get(G(os)->inner, n, off, len, d, ol, e);
}
static kl_status g_head(kl_objstore *os, const char *n, uint64_t *s, kl_error *e)
{
    return kl_os_head(G(os)->inner, n, s, e);
}
static kl_status g_list(kl_objstore *os, const kl_list_req *r, kl_listing *o, kl_error *e)
{
    thread_lists++;
    return kl_os_list(G(os)->inner, r, o, e);
}
static kl_status g_del(kl_objstore *os, const char *const *n, size_t c, kl_error *e)
{
    return kl_os_del(G(os)->inner, n, c, e);
}
static kl_status g_claim(kl_objstore *os, const char *c, const char *o, const kl_body *d, char **t,
                         kl_error *e)
{
    kl_status st = kl_os_claim(G(os)->inner, c, o, d, t, e);
    __atomic_add_fetch(&G(os)->claims, 1, __ATOMIC_SEQ_CST);
    if (st == KL_OK && hold_after_claim) {
        hold_after_claim = 0;
        sem_post(&G(os)->reached);
        sem_wait(&G(os)->release);
    }
    return st;
}
static kl_status g_target(kl_objstore *os, const char *c, char **o, char **t, kl_error *e)
{
    return kl_os_claim_target(G(os)->inner, c, o, t, e);
}
static kl_status g_publish(kl_objstore *os, const char *c, const char *o, const char *t,
                           const kl_body *d, kl_error *e)
{
    if (hold_before_publish) {
        hold_before_publish = 0;
        sem_post(&G(os)->reached);
        sem_wait(&G(os)->release);
    }
    return kl_os_publish(G(os)->inner, c, o, t, d, e);
}
static kl_status g_unclaim(kl_objstore *os, const char *const *c, size_t n, kl_error *e)
{
    return kl_os_unclaim(G(os)->inner, c, n, e);
}
static const char *g_describe(kl_objstore *os) { return "gated"; }
static void g_destroy(kl_objstore *os) { free(os); }
static const kl_objstore_ops gated_ops = {
    .put = g_put,
    .get = g_get,
    .head = g_head,
    .list = g_list,
    .del = g_del,
    .describe = g_describe,
    .destroy = g_destroy,
    .claim = g_claim,
    .claim_target = g_target,
    .publish = g_publish,
    .unclaim = g_unclaim,
};

typedef struct racer {
    kl_writer *w;
    const char *text;        /* one record, or: */
    const kl_insertion *ins; /* these n */
    size_t n;
    int after_claim, before_publish;
    kl_status st;
    kl_error err;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    hold_after_claim = r->after_claim;
    hold_before_publish = r->before_publish;
    kl_insertion in = kt_rec(r->text ? r->text : "");
    r->st = r->ins ? kl_append(r->w, "ks", "k", r->ins, r->n, &r->err)
                   : kl_append(r->w, "ks", "k", &in, 1, &r->err);
    return NULL;
}

#define HOLD_MS 300
static uint64_t duo_hold_ms = HOLD_MS; /* a test may set it before duo_open */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct duo {
    kt_store t;
    gated *g;
    kl_writer *a, *b;
} duo;

static void duo_open(duo *d, uint64_t compact_records)
{
    kt_open(&d->t);
    d->g = calloc(1, sizeof *d->g);
    d->g->base.ops = &gated_ops;
    d->g->inner = d->t.os;
    sem_init(&d->g->reached, 0, 0);
    sem_init(&d->g->release, 0, 0);
    d->t.cfg.compact_records_threshold = compact_records;
    d->t.cfg.compact_objects_threshold = 4;
    /* Claims are deleted HOLD_MS after their slots are published; a writer
     * skips its check within HOLD_MS / 6 of its view.  Short, so that
     * tests can wait it out. */
    d->t.cfg.claim_hold_ms = duo_hold_ms;
    kl_error err = {0};
    cr_assert_eq(kl_store_writer_new(&d->g->base, &d->t.cfg, &d->a, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_store_writer_new(&d->g->base, &d->t.cfg, &d->b, &err), KL_OK, "%s", err.msg);
    /* The first append probes the store with a claim: get it done before
     * a test holds a writer at its first claim. */
    kl_insertion in = kt_rec("warm");
    cr_assert_eq(kl_append(d->a, "ks", "warm", &in, 1, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_append(d->b, "ks", "warm", &in, 1, &err), KL_OK, "%s", err.msg);
}

static void duo_close(duo *d)
{
    if (d->a) kl_writer_destroy(d->a);
    if (d->b) kl_writer_destroy(d->b);
    kl_os_destroy(&d->g->base);
    kt_close(&d->t);
}

/* The whole log as one string, records joined by ','. */
static char *log_text(duo *d)
{
    kl_error err = {0};
    kl_reader *r;
    cr_assert_eq(kl_store_reader_new(d->t.os, &d->t.cfg, &r, &err), KL_OK);
    kl_page p;
    kl_start from = {.kind = KL_START_FIRST};
    cr_assert_eq(kl_read_first_page(r, "ks", "k", KL_FORWARDS, &from, 100000, &p, &err), KL_OK,
                 "%s", err.msg);
    size_t cap = 16;
    for (size_t i = 0; i < p.count; i++) cap += p.records[i].len + 1;
    char *s = calloc(1, cap);
    for (size_t i = 0; i < p.count; i++) {
        if (i) strcat(s, ",");
        strncat(s, (const char *)p.records[i].data, p.records[i].len);
    }
    kl_page_free(&p);
    kl_reader_destroy(r);
    return s;
}

/* Appends one record and waits for the compaction it scheduled (the
 * writer's own thread runs it), so that each step's objects are known. */
static void append1(kl_writer *w, const char *text)
{
    kl_error err = {0};
    kl_insertion in = kt_rec(text);
    cr_assert_eq(kl_append(w, "ks", "k", &in, 1, &err), KL_OK, "%s", err.msg);
    cr_assert_eq(kl_duty_cycle(w, &err), KL_OK);
}

/* A is stopped right after claiming slot 1.  B must not wait for it: it
 * finds the slot claimed, publishes A's object itself and appends after
 * it.  When A resumes, it finds its records in the log and succeeds. */
Test(collision, loser_publishes_the_stopped_winner_and_goes_after_it)
{
    duo d;
    duo_open(&d, 1000);
    racer ra = {.w = d.a, .text = "a1", .after_claim = 1};
    pthread_t th;
    pthread_create(&th, NULL, race, &ra);
    sem_wait(&d.g->reached); /* A holds slot 1, nothing published */
    append1(d.b, "b1");
    char *s = log_text(&d);
    cr_assert_str_eq(s, "a1,b1");
    free(s);
    sem_post(&d.g->release);
    pthread_join(th, NULL);
    cr_assert_eq(ra.st, KL_OK, "%s", ra.err.msg);
    append1(d.a, "a2");
    s = log_text(&d);
    cr_assert_str_eq(s, "a1,b1,a2");
    free(s);
    duo_close(&d);
}

/* A is stopped after checking its slot, just before publishing.  B helps,
 * appends past it and compacts A's object away.  When A resumes its late
 * publish must not bring the merged-away object back. */
Test(collision, late_publish_after_compaction_changes_nothing)
{
    duo d;
    duo_open(&d, 5);
    racer ra = {.w = d.a, .text = "a1", .before_publish = 1};
    pthread_t th;
    pthread_create(&th, NULL, race, &ra);
    sem_wait(&d.g->reached);
    char t[16];
    for (int i = 0; i < 6; i++) {
        snprintf(t, sizeof t, "b%d", i);
        append1(d.b, t);
    }
    sem_post(&d.g->release);
    pthread_join(th, NULL);
    cr_assert_eq(ra.st, KL_OK, "%s", ra.err.msg);
    char *s = log_text(&d);
    cr_assert_str_eq(s, "a1,b0,b1,b2,b3,b4,b5");
    free(s);
    kl_object_meta *v;
    size_t n;
    kl_error err = {0};
    cr_assert_eq(kl_list_objects(d.t.os, &d.t.cfg, "ks", "k", 0, 0, &v, &n, &err), KL_OK);
    cr_assert_eq(v[0].first_offset, 1);
    cr_assert_geq(v[0].last_offset, 5, "the merged object was not kept whole");
    for (size_t i = 1; i < n; i++) cr_assert_eq(v[i].first_offset, v[i - 1].last_offset + 1);
    free(v);
    /* The late publish brought A's merged-away object back (the same
     * bytes, covered): its claim is still there, as the claims of a batch
     * are until a later complete batch exists and HOLD_MS have passed.
     * The writer that then deletes them (here: B as it goes away) deletes
     * what such a publish brought back. */
    for (int i = 6; i < 11; i++) {
        snprintf(t, sizeof t, "b%d", i);
        append1(d.b, t);
    }
    sleep_ms(HOLD_MS + 50);
    kl_writer_destroy(d.b);
    d.b = NULL;
    check_no_overlap(&d.t, "ks", "k");
    duo_close(&d);
}

/* A's view is stale: since its last append B wrote a hundred records
 * and, the hold over, deleted the claims of those slots, so A's
 * create-only claim of its old slot succeeds.  The check after the claim
 * must catch it (A's view is older than HOLD_MS / 6): A's record goes to
 * the true tail, once. */
Test(collision, stale_writer_whose_slot_was_freed_goes_to_the_tail)
{
    duo d;
    duo_open(&d, 20);
    append1(d.a, "a0");
    char t[16];
    for (int i = 0; i < 100; i++) {
        if (i == 50) sleep_ms(HOLD_MS + 50);
        snprintf(t, sizeof t, "b%d", i);
        append1(d.b, t);
    }
    char *claim = kt_name(&d.t, "ks/k/claim_o00000000000000000002");
    char *tgt = NULL, *tag = NULL;
    kl_error err = {0};
    cr_assert_eq(kl_os_claim_target(d.t.os, claim, &tgt, &tag, &err), KL_ENOTFOUND,
                 "slot 2's claim should have been deleted once below the watermark");
    append1(d.a, "a1");
    char *s = log_text(&d);
    cr_assert_eq(strncmp(s, "a0,b0,b1,", 9), 0, "%s", s);
    cr_assert(strstr(s, ",b99,a1") && s[strlen(s) - 1] == '1', "a1 is not at the tail: %s", s);
    free(s);
    cr_assert_eq(kl_os_claim_target(d.t.os, claim, &tgt, &tag, &err), KL_ENOTFOUND,
                 "the stale writer left its stray claim behind");
    free(claim);
    duo_close(&d);
}

/* Two writers stopped right after their claims: A at slot 2, C at slot
 * 3 (C lost slot 2 to A and took the next at once).  B loses both slots,
 * claims 4, and with one LIST publishes A's and C's objects before its
 * own, in order, without waiting for them.  When A and C resume they find
 * their records in, once. */
Test(collision, a_loser_publishes_a_chain_of_stopped_claims_then_its_own)
{
    duo d;
    duo_hold_ms = 60000; /* B's view stays fresh however slow the loads (ASan, S3) */
    duo_open(&d, 1000);
    kl_writer *c;
    kl_error err = {0};
    cr_assert_eq(kl_store_writer_new(&d.g->base, &d.t.cfg, &c, &err), KL_OK, "%s", err.msg);
    kl_insertion warm = kt_rec("warm");
    cr_assert_eq(kl_append(c, "ks", "warm", &warm, 1, &err), KL_OK, "%s", err.msg);
    append1(d.b, "b0");
    racer ra = {.w = d.a, .text = "a1", .after_claim = 1};
    racer rc = {.w = c, .text = "c1", .after_claim = 1};
    pthread_t ta, tc;
    pthread_create(&ta, NULL, race, &ra);
    sem_wait(&d.g->reached); /* A holds slot 2 */
    pthread_create(&tc, NULL, race, &rc);
    sem_wait(&d.g->reached); /* C holds slot 3 */
    int claims = __atomic_load_n(&d.g->claims, __ATOMIC_SEQ_CST);
    int lists = thread_lists;
    append1(d.b, "b1");
    cr_assert_eq(__atomic_load_n(&d.g->claims, __ATOMIC_SEQ_CST) - claims, 3,
                 "B claims slots 2, 3 and 4 once each");
    cr_assert_eq(thread_lists - lists, 1, "one LIST settles B's chain, not %d",
                 thread_lists - lists);
    char *s = log_text(&d);
    cr_assert_str_eq(s, "b0,a1,c1,b1");
    free(s);
    sem_post(&d.g->release);
    sem_post(&d.g->release);
    pthread_join(ta, NULL);
    pthread_join(tc, NULL);
    cr_assert_eq(ra.st, KL_OK, "%s", ra.err.msg);
    cr_assert_eq(rc.st, KL_OK, "%s", rc.err.msg);
    append1(c, "c2");
    append1(d.a, "a2");
    s = log_text(&d);
    cr_assert_str_eq(s, "b0,a1,c1,b1,c2,a2");
    free(s);
    /* (A's late publish may have brought back a1 after B's compaction
     * merged it: a covered copy until its claim goes, see above.) */
    kl_writer_destroy(c);
    duo_close(&d);
}

/* B retries records whose nonces a stopped writer's unpublished claim
 * holds: they are duplicates of B's chain, and B acknowledges them only
 * once that claim is published (by B itself). */
Test(collision, duplicates_of_an_unpublished_claim_are_acknowledged_once_it_is_in)
{
    duo d;
    duo_open(&d, 1000);
    kl_insertion in[3] = {{.data = "x", .len = 1, .has_nonce = 1, .nonce = 10},
                          {.data = "y", .len = 1, .has_nonce = 1, .nonce = 11},
                          {.data = "z", .len = 1, .has_nonce = 1, .nonce = 12}};
    racer ra = {.w = d.a, .ins = in, .n = 3, .after_claim = 1};
    pthread_t th;
    pthread_create(&th, NULL, race, &ra);
    sem_wait(&d.g->reached); /* A holds slot 1 with x, y, z */
    kl_error err = {0};
    cr_assert_eq(kl_append(d.b, "ks", "k", in, 3, &err), KL_OK, "%s", err.msg);
    char *s = log_text(&d);
    cr_assert_str_eq(s, "x,y,z", "B acknowledged records that are not in the log");
    free(s);
    sem_post(&d.g->release);
    pthread_join(th, NULL);
    cr_assert_eq(ra.st, KL_OK, "%s", ra.err.msg);
    s = log_text(&d);
    cr_assert_str_eq(s, "x,y,z");
    free(s);
    duo_close(&d);
}

/* Nonces are checked against the true tail, not the writer's view: a
 * retry by another writer of records that are already in is dropped. */
Test(collision, nonce_retry_by_another_writer_is_exactly_once)
{
    duo d;
    duo_open(&d, 1000);
    kl_error err = {0};
    kl_insertion w = {.data = "w", .len = 1, .has_nonce = 1, .nonce = 5};
    cr_assert_eq(kl_append(d.b, "ks", "k", &w, 1, &err), KL_OK, "%s", err.msg);
    kl_insertion in[3] = {{.data = "x", .len = 1, .has_nonce = 1, .nonce = 10},
                          {.data = "y", .len = 1, .has_nonce = 1, .nonce = 11},
                          {.data = "z", .len = 1, .has_nonce = 1, .nonce = 12}};
    cr_assert_eq(kl_append(d.a, "ks", "k", in, 2, &err), KL_OK, "%s", err.msg);
    /* B's view is stale (it knows only "w"): it retries x, y and z */
    cr_assert_eq(kl_append(d.b, "ks", "k", in, 3, &err), KL_OK, "%s", err.msg);
    char *s = log_text(&d);
    cr_assert_str_eq(s, "w,x,y,z");
    free(s);
    duo_close(&d);
}
