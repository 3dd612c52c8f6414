/* test_local_objstore.c -- what only the directory store must guarantee:
 * names that cannot be files are refused, temporary files never show, and
 * an object is a plain file at ROOT/NAME (the bucket mirror promise). */
#include "buf.h"
#include "test_env.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

static kt_store T;
static void setup(void)
{
    unsetenv("KL_TEST_STORE");
    kt_open(&T);
}
static void teardown(void) { kt_close(&T); }
TestSuite(local, .init = setup, .fini = teardown);

Test(local, object_is_a_plain_file)
{
    cr_assert_eq(kl_os_put(T.os, "ks/key/obj", "abc", 3, 0, NULL), KL_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/ks/key/obj", T.dir);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_size, 3);
    /* And the other way round: a file dropped in is an object. */
    snprintf(path, sizeof path, "%s/ks/key/dropped", T.dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    cr_assert_eq(write(fd, "xy", 2), 2);
    close(fd);
    uint64_t size;
    cr_assert_eq(kl_os_head(T.os, "ks/key/dropped", &size, NULL), KL_OK);
    cr_assert_eq(size, 2);
}

Test(local, refuses_names_a_directory_cannot_hold)
{
    static const char *bad[] = {"",      "/abs",  "a//b",      "a/../b",
                                "../up", "a/./b", "trailing/", "a/.kltmp.1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kl_error err = {0};
        cr_assert_eq(kl_os_put(T.os, bad[i], "x", 1, 0, &err), KL_EINVAL, "accepted '%s'", bad[i]);
        cr_assert_neq(err.msg[0], 0);
    }
}

Test(local, temporary_files_are_invisible)
{
    char path[512];
    snprintf(path, sizeof path, "%s/ks", T.dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/ks/.kltmp.123.4", T.dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    close(fd);
    kl_list_req req = {.prefix = ""};
    kl_listing l;
    cr_assert_eq(kl_os_list(T.os, &req, &l, NULL), KL_OK);
    cr_assert_eq(l.n_objects, 0, "a crashed write's temp file must not be an object");
    kl_listing_free(&l);
}

Test(local, unwritable_root_is_a_clear_error)
{
    kl_objstore *os = NULL;
    kl_error err = {0};
    cr_assert_eq(kl_objstore_local_new("/proc/definitely/not", &os, &err), KL_EIO);
    cr_assert(strstr(err.msg, "/proc/definitely/not"), "%s", err.msg);
}

/* No temporary file may outlive a put, successful or not. */
static size_t count_temporaries(const char *sub)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", T.dir, sub);
    DIR *d = opendir(path);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, ".kltmp.", 7)) n++;
    closedir(d);
    return n;
}

static void assert_object(const char *name, const char *body)
{
    uint8_t *data = NULL;
    size_t len = 0;
    cr_assert_eq(kl_os_get(T.os, name, 0, UINT64_MAX, &data, &len, NULL), KL_OK, "%s", name);
    cr_assert_eq(len, strlen(body));
    cr_assert_eq(memcmp(data, body, len), 0);
    free(data);
}

Test(local, put_batch_stores_every_object_across_directories)
{
    kl_put_item items[] = {
        {.name = "ks/a/one", .data = "1", .len = 1},
        {.name = "ks/b/deep/two", .data = "22", .len = 2}, /* new directories */
        {.name = "ks/a/three", .data = "333", .len = 3},   /* shares a's sync */
        {.name = "top", .data = "", .len = 0},             /* the root itself */
        {.name = "ks/a/one", .data = "1b", .len = 2},      /* later wins */
    };
    cr_assert_eq(kl_os_put_batch(T.os, items, 5, NULL), KL_OK);
    assert_object("ks/a/one", "1b");
    assert_object("ks/b/deep/two", "22");
    assert_object("ks/a/three", "333");
    assert_object("top", "");
    cr_assert_eq(count_temporaries("ks/a") + count_temporaries("ks/b/deep"), 0);
    cr_assert_eq(kl_os_put_batch(T.os, items, 0, NULL), KL_OK, "an empty batch is a no-op");
}

Test(local, put_batch_if_absent_stops_at_the_existing_object)
{
    cr_assert_eq(kl_os_put(T.os, "ks/k/taken", "old", 3, 0, NULL), KL_OK);
    kl_put_item items[] = {
        {.name = "ks/k/first", .data = "f", .len = 1},
        {.name = "ks/k/taken", .data = "new", .len = 3, .flags = KL_PUT_IF_ABSENT},
        {.name = "ks/k/after", .data = "a", .len = 1},
    };
    kl_error err = {0};
    cr_assert_eq(kl_os_put_batch(T.os, items, 3, &err), KL_EEXIST);
    cr_assert(strstr(err.msg, "ks/k/taken"), "%s", err.msg);
    assert_object("ks/k/first", "f"); /* a prefix is stored */
    assert_object("ks/k/taken", "old");
    uint64_t size;
    cr_assert_eq(kl_os_head(T.os, "ks/k/after", &size, NULL), KL_ENOTFOUND);
    cr_assert_eq(count_temporaries("ks/k"), 0);
}

Test(local, put_batch_failing_before_publishing_stores_nothing)
{
    /* "ks/file" is an object, so "ks/file/x" cannot be created. */
    cr_assert_eq(kl_os_put(T.os, "ks/file", "x", 1, 0, NULL), KL_OK);
    kl_put_item items[] = {
        {.name = "ks/k/first", .data = "f", .len = 1},
        {.name = "ks/file/x", .data = "y", .len = 1},
    };
    kl_error err = {0};
    cr_assert_neq(kl_os_put_batch(T.os, items, 2, &err), KL_OK);
    cr_assert(strstr(err.msg, "ks/file/x"), "%s", err.msg);
    uint64_t size;
    cr_assert_eq(kl_os_head(T.os, "ks/k/first", &size, NULL), KL_ENOTFOUND);
    cr_assert_eq(count_temporaries("ks/k"), 0);

    /* A name the store cannot hold is refused before anything is written. */
    items[1].name = "ks/../x";
    cr_assert_eq(kl_os_put_batch(T.os, items, 2, &err), KL_EINVAL);
    cr_assert_eq(kl_os_head(T.os, "ks/k/first", &size, NULL), KL_ENOTFOUND);
}

/* ---- slot claims (local_claim.c) ----------------------------------- */
#include <sys/xattr.h>

static void path_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", T.dir, name);
}

/* Entries of a directory of the store, sorted, joined by spaces. */
static void dir_entries(const char *name, char *out, size_t cap)
{
    char path[512];
    path_of(path, sizeof path, name);
    struct dirent **v;
    int n = scandir(path, &v, NULL, alphasort);
    cr_assert_geq(n, 0);
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(v[i]->d_name, ".") && strcmp(v[i]->d_name, ".."))
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? " " : "", v[i]->d_name);
        free(v[i]);
    }
    free(v);
}

/* Whether files in the store directory can carry user xattrs. */
static int store_has_xattrs(void)
{
    char path[512];
    path_of(path, sizeof path, "xattr-probe");
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    int ok = fd >= 0 && fsetxattr(fd, "user.probe", "1", 1, 0) == 0;
    if (fd >= 0) close(fd);
    unlink(path);
    return ok;
}

Test(local, claim_is_one_file_published_by_link)
{
    kl_error err = {0};
    char *tag = NULL, *tgt = NULL, ents[1024];
    cr_assert_eq(
        kl_os_claim(T.os, "ks/k/claim_o1", "ks/k/data_x", KL_BODY_ONE("abc", 3), &tag, &err), KL_OK,
        "%s", err.msg);
    free(tag);
    tag = NULL;
    /* create-only: a second claim of the slot is refused, the first kept */
    cr_assert_eq(
        kl_os_claim(T.os, "ks/k/claim_o1", "ks/k/data_y", KL_BODY_ONE("zz", 2), &tag, &err),
        KL_EEXIST);
    dir_entries("ks/k", ents, sizeof ents);
    cr_assert_str_eq(ents, "claim_o1", "nothing else is left behind");
    cr_assert_eq(kl_os_claim_target(T.os, "ks/k/claim_o1", &tgt, &tag, &err), KL_OK, "%s", err.msg);
    cr_assert_str_eq(tgt, "ks/k/data_x");
    free(tgt);
    free(tag);
    cr_assert_eq(kl_os_publish(T.os, "ks/k/claim_o1", "ks/k/data_x", NULL, NULL, &err), KL_OK, "%s",
                 err.msg);
    /* publishing again (a helper) is idempotent */
    cr_assert_eq(kl_os_publish(T.os, "ks/k/claim_o1", "ks/k/data_x", NULL, NULL, &err), KL_OK);
    char pc[512], po[512];
    path_of(pc, sizeof pc, "ks/k/claim_o1");
    path_of(po, sizeof po, "ks/k/data_x");
    struct stat sc, so;
    cr_assert_eq(stat(pc, &sc), 0);
    cr_assert_eq(stat(po, &so), 0);
    if (store_has_xattrs()) {
        cr_assert(S_ISREG(sc.st_mode), "the claim is a file where xattrs work");
        cr_assert_eq(sc.st_ino, so.st_ino, "the object is the claim's inode: written once");
    }
    uint8_t *buf = NULL;
    size_t n = 0;
    cr_assert_eq(kl_os_get(T.os, "ks/k/data_x", 0, UINT64_MAX, &buf, &n, NULL), KL_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    free(buf);
    const char *c[] = {"ks/k/claim_o1"};
    cr_assert_eq(kl_os_unclaim(T.os, c, 1, &err), KL_OK, "%s", err.msg);
    dir_entries("ks/k", ents, sizeof ents);
    cr_assert_str_eq(ents, "data_x");
}

/* A claim removed and made again (by a writer with a stale view) must not
 * lend its body to the earlier object's name. */
Test(local, publish_refuses_a_claim_holding_another_object)
{
    kl_error err = {0};
    char *tag = NULL;
    const char *c[] = {"ks/k/claim_o1"};
    cr_assert_eq(kl_os_claim(T.os, c[0], "ks/k/data_x", KL_BODY_ONE("abc", 3), &tag, &err), KL_OK);
    cr_assert_eq(kl_os_unclaim(T.os, c, 1, &err), KL_OK);
    cr_assert_eq(kl_os_claim(T.os, c[0], "ks/k/data_y", KL_BODY_ONE("zzzz", 4), &tag, &err), KL_OK);
    cr_assert_eq(kl_os_publish(T.os, c[0], "ks/k/data_x", NULL, NULL, &err), KL_ENOTFOUND);
    cr_assert_neq(err.msg[0], 0);
    char ents[1024];
    dir_entries("ks/k", ents, sizeof ents);
    cr_assert_str_eq(ents, "claim_o1");
    free(tag);
}

/* Claims of the directory form (file systems without O_TMPFILE or user
 * xattrs, and stores written before the file form) are read alike. */
Test(local, claims_of_the_directory_form_still_work)
{
    char path[512];
    path_of(path, sizeof path, "ks");
    mkdir(path, 0755);
    path_of(path, sizeof path, "ks/k");
    mkdir(path, 0755);
    path_of(path, sizeof path, "ks/k/claim_o5");
    cr_assert_eq(mkdir(path, 0755), 0);
    path_of(path, sizeof path, "ks/k/claim_o5/data_z");
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    cr_assert_eq(write(fd, "old", 3), 3);
    close(fd);
    kl_error err = {0};
    char *tag = NULL, *tgt = NULL;
    cr_assert_eq(
        kl_os_claim(T.os, "ks/k/claim_o5", "ks/k/data_w", KL_BODY_ONE("new", 3), &tag, &err),
        KL_EEXIST);
    cr_assert_eq(kl_os_claim_target(T.os, "ks/k/claim_o5", &tgt, &tag, &err), KL_OK, "%s", err.msg);
    cr_assert_str_eq(tgt, "ks/k/data_z");
    free(tgt);
    cr_assert_eq(kl_os_publish(T.os, "ks/k/claim_o5", "ks/k/data_w", NULL, NULL, &err),
                 KL_ENOTFOUND, "the claim holds data_z, not data_w");
    cr_assert_eq(kl_os_publish(T.os, "ks/k/claim_o5", "ks/k/data_z", NULL, NULL, &err), KL_OK, "%s",
                 err.msg);
    const char *c[] = {"ks/k/claim_o5"};
    cr_assert_eq(kl_os_unclaim(T.os, c, 1, &err), KL_OK, "%s", err.msg);
    char ents[1024];
    dir_entries("ks/k", ents, sizeof ents);
    cr_assert_str_eq(ents, "data_z");
}

/* A claim file without the object's name (not one of ours, or damaged) is
 * reported as holding no object, and can be removed. */
Test(local, claim_without_a_name_is_reported)
{
    cr_assert_eq(kl_os_put(T.os, "ks/k/claim_o7", "junk", 4, 0, NULL), KL_OK);
    kl_error err = {0};
    char *tag = NULL, *tgt = NULL;
    cr_assert_eq(kl_os_claim_target(T.os, "ks/k/claim_o7", &tgt, &tag, &err), KL_EBADDATA);
    cr_assert(strstr(err.msg, "claim_o7"), "%s", err.msg);
    cr_assert_eq(kl_os_publish(T.os, "ks/k/claim_o7", "ks/k/data_q", NULL, NULL, &err),
                 KL_ENOTFOUND);
    const char *c[] = {"ks/k/claim_o7"};
    cr_assert_eq(kl_os_unclaim(T.os, c, 1, &err), KL_OK);
    char ents[1024];
    dir_entries("ks/k", ents, sizeof ents);
    cr_assert_str_eq(ents, "");
}

/* Where the file system lacks O_TMPFILE or user xattrs the store falls
 * back to directory claims (forced here: this test's file system has
 * both), with the same guarantees. */
#include "local_os.h"
Test(local, directory_claims_where_files_cannot_carry_the_name)
{
    atomic_store(&((local_os *)T.os)->dir_claims, 1);
    kl_error err = {0};
    char *tag = NULL, *tgt = NULL, ents[1024];
    cr_assert_eq(
        kl_os_claim(T.os, "ks/k/claim_o1", "ks/k/data_x", KL_BODY_ONE("abc", 3), &tag, &err), KL_OK,
        "%s", err.msg);
    cr_assert_eq(
        kl_os_claim(T.os, "ks/k/claim_o1", "ks/k/data_y", KL_BODY_ONE("zz", 2), &tag, &err),
        KL_EEXIST);
    dir_entries("ks/k", ents, sizeof ents);
    cr_assert_str_eq(ents, "claim_o1", "no temporary directory is left behind");
    dir_entries("ks/k/claim_o1", ents, sizeof ents);
    cr_assert_str_eq(ents, "data_x");
    cr_assert_eq(kl_os_claim_target(T.os, "ks/k/claim_o1", &tgt, &tag, &err), KL_OK);
    cr_assert_str_eq(tgt, "ks/k/data_x");
    free(tgt);
    cr_assert_eq(kl_os_publish(T.os, "ks/k/claim_o1", "ks/k/data_x", NULL, NULL, &err), KL_OK, "%s",
                 err.msg);
    const char *c[] = {"ks/k/claim_o1"};
    cr_assert_eq(kl_os_unclaim(T.os, c, 1, &err), KL_OK, "%s", err.msg);
    dir_entries("ks/k", ents, sizeof ents);
    cr_assert_str_eq(ents, "data_x");
    free(tag);
}
