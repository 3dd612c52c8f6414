/* test_local_objstore.c -- what only the directory store must guarantee:
 * names that cannot be files are refused, temporary files never show, and
 * an object is a plain file at ROOT/NAME (the bucket mirror promise). */
#include "test_env.h"
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
