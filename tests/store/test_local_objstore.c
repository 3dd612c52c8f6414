/* test_local_objstore.c -- what only the directory store must guarantee:
 * names that cannot be files are refused, temporary files never show, and
 * an object is a plain file at ROOT/NAME (the bucket mirror promise). */
#include "test_env.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

static kt_store T;
static void setup(void) {
    unsetenv("KL_TEST_STORE");
    kt_open(&T);
}
static void teardown(void) { kt_close(&T); }
TestSuite(local, .init = setup, .fini = teardown);

Test(local, object_is_a_plain_file) {
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

Test(local, refuses_names_a_directory_cannot_hold) {
    static const char *bad[] = {"", "/abs", "a//b", "a/../b", "../up", "a/./b", "trailing/",
                                "a/.kltmp.1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kl_error err = {0};
        cr_assert_eq(kl_os_put(T.os, bad[i], "x", 1, 0, &err), KL_EINVAL, "accepted '%s'", bad[i]);
        cr_assert_neq(err.msg[0], 0);
    }
}

Test(local, temporary_files_are_invisible) {
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

Test(local, unwritable_root_is_a_clear_error) {
    kl_objstore *os = NULL;
    kl_error err = {0};
    cr_assert_eq(kl_objstore_local_new("/proc/definitely/not", &os, &err), KL_EIO);
    cr_assert(strstr(err.msg, "/proc/definitely/not"), "%s", err.msg);
}

/* No temporary file may outlive a put, successful or not. */
static size_t count_temporaries(const char *sub) {
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

static void assert_object(const char *name, const char *body) {
    uint8_t *data = NULL;
    size_t len = 0;
    cr_assert_eq(kl_os_get(T.os, name, 0, UINT64_MAX, &data, &len, NULL), KL_OK, "%s", name);
    cr_assert_eq(len, strlen(body));
    cr_assert_eq(memcmp(data, body, len), 0);
    free(data);
}

Test(local, put_batch_stores_every_object_across_directories) {
    kl_put_item items[] = {
        {.name = "ks/a/one", .data = "1", .len = 1},
        {.name = "ks/b/deep/two", .data = "22", .len = 2},   /* new directories */
        {.name = "ks/a/three", .data = "333", .len = 3},     /* shares a's sync */
        {.name = "top", .data = "", .len = 0},               /* the root itself */
        {.name = "ks/a/one", .data = "1b", .len = 2},        /* later wins */
    };
    cr_assert_eq(kl_os_put_batch(T.os, items, 5, NULL), KL_OK);
    assert_object("ks/a/one", "1b");
    assert_object("ks/b/deep/two", "22");
    assert_object("ks/a/three", "333");
    assert_object("top", "");
    cr_assert_eq(count_temporaries("ks/a") + count_temporaries("ks/b/deep"), 0);
    cr_assert_eq(kl_os_put_batch(T.os, items, 0, NULL), KL_OK, "an empty batch is a no-op");
}

Test(local, put_batch_if_absent_stops_at_the_existing_object) {
    cr_assert_eq(kl_os_put(T.os, "ks/k/taken", "old", 3, 0, NULL), KL_OK);
    kl_put_item items[] = {
        {.name = "ks/k/first", .data = "f", .len = 1},
        {.name = "ks/k/taken", .data = "new", .len = 3, .flags = KL_PUT_IF_ABSENT},
        {.name = "ks/k/after", .data = "a", .len = 1},
    };
    kl_error err = {0};
    cr_assert_eq(kl_os_put_batch(T.os, items, 3, &err), KL_EEXIST);
    cr_assert(strstr(err.msg, "ks/k/taken"), "%s", err.msg);
    assert_object("ks/k/first", "f");                 /* a prefix is stored */
    assert_object("ks/k/taken", "old");
    uint64_t size;
    cr_assert_eq(kl_os_head(T.os, "ks/k/after", &size, NULL), KL_ENOTFOUND);
    cr_assert_eq(count_temporaries("ks/k"), 0);
}

Test(local, put_batch_failing_before_publishing_stores_nothing) {
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
