/* test_install.c -- what a packager and a C user get from `cmake --install`.
 *
 * Installs this build into a staging prefix, then checks the tree (the
 * whole list of files), that `pkg-config klstore` describes it (version =
 * KL_VERSION), and that a program using only the installed header and
 * libraries builds through pkg-config and runs -- linked against
 * libklstore.so and, separately, statically against libklstore.a. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/shell.h"
#include "klstore.h" /* KL_VERSION, which the installed library must report */

#define EXPECTED_FILES                                                                             \
    "./bin/klstore\n"                                                                              \
    "./bin/klstore-kafka-bridge\n"                                                                 \
    "./bin/klstorefs\n"                                                                            \
    "./include/klstore.h\n"                                                                        \
    "./lib/systemd/system/klstore-kafka-bridge@.service\n"                                         \
    "./" KL_LIBDIR "/libklstore.a\n"                                                               \
    "./" KL_LIBDIR "/libklstore.so\n"                                                              \
    "./" KL_LIBDIR "/libklstore.so." KL_VERSION "\n"                                               \
    "./" KL_LIBDIR "/libklstore.so.1\n"                                                            \
    "./" KL_LIBDIR "/pkgconfig/klstore.pc\n"                                                       \
    "./share/doc/klstore/examples/example.ini\n"                                                   \
    "./share/doc/klstore/examples/mnt-klstore.mount\n"                                             \
    "./share/man/man1/klstore-kafka-bridge.1\n"                                                    \
    "./share/man/man1/klstore.1\n"                                                                 \
    "./share/man/man5/klstore.ini.5\n"                                                             \
    "./share/man/man8/klstorefs.8\n"

/* A staged install of this build: its prefix, and pkg-config pointed at it.
 * Criterion may run tests in parallel processes, so each test stages into
 * a directory of its own. */
typedef struct {
    char prefix[512];
    char pkg[1024];
} staged;

static char *shf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *shf(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof cmd);
    return kl_sh(cmd, NULL);
}

static staged stage(const char *name)
{
    staged s;
    snprintf(s.prefix, sizeof s.prefix, "%s/tests/install-stage/%s", KL_BUILD_DIR, name);
    snprintf(s.pkg, sizeof s.pkg, "PKG_CONFIG_PATH=%s/%s/pkgconfig pkg-config", s.prefix,
             KL_LIBDIR);
    free(shf("rm -rf %s && %s --install %s --prefix %s >/dev/null", s.prefix, KL_CMAKE,
             KL_BUILD_DIR, s.prefix));
    return s;
}

Test(install, the_staged_tree_holds_libraries_header_pc_and_programs)
{
    staged s = stage("tree");
    char *files = shf("cd %s && find . ! -type d | LC_ALL=C sort", s.prefix);
    char *expected = shf("printf '%%s' '%s' | LC_ALL=C sort", EXPECTED_FILES);
    cr_assert_str_eq(files, expected, "installed files:\n%s", files);
    free(files);
    free(expected);
    char *version = shf("%s --modversion klstore", s.pkg);
    cr_assert_str_eq(version, KL_VERSION "\n");
    free(version);
    /* The bridge's unit names the program where the configured prefix puts it. */
    char *unit =
        shf("grep '^ExecStart=' %s/lib/systemd/system/klstore-kafka-bridge@.service", s.prefix);
    cr_assert_str_eq(unit,
                     "ExecStart=" KL_BINDIR_FULL "/klstore-kafka-bridge /etc/klstore/%i.ini\n");
    free(unit);
}

/* Builds hello.c against the staged install, linked as `link` says, runs
 * it on a fresh store and compares its whole output; returns the
 * libklstore it needs at run time ("" when linked statically). */
static char *build_and_run(const staged *s, const char *link)
{
    free(shf("%s %s -o %s/hello %s/tests/install/hello.c $(%s --cflags klstore) %s", KL_CC,
             KL_SAN_FLAGS, s->prefix, KL_SOURCE_DIR, s->pkg, link));
    char *out =
        shf("d=$(mktemp -d) && %s/hello \"$d/store\"; rc=$?; rm -rf \"$d\"; exit $rc", s->prefix);
    cr_assert_str_eq(out, "1 7 hello\n2 8 world\nlibklstore " KL_VERSION "\n", "hello printed:\n%s",
                     out);
    free(out);
    return shf("readelf -d %s/hello | grep -o 'Shared library: \\[libklstore[^]]*' || true",
               s->prefix);
}

Test(install, a_program_builds_through_pkg_config_against_the_shared_library)
{
    staged s = stage("shared");
    char link[2048];
    snprintf(link, sizeof link, "$(%s --libs klstore) -Wl,-rpath,%s/%s", s.pkg, s.prefix,
             KL_LIBDIR);
    char *needed = build_and_run(&s, link);
    cr_assert_str_eq(needed, "Shared library: [libklstore.so.1\n");
    free(needed);
}

Test(install, a_program_links_statically_through_pkg_config)
{
    staged s = stage("static");
    char link[2048];
    /* The archive by name, then its dependencies from pkg-config --static
     * without -lklstore itself: a sanitizer build links with --no-as-needed,
     * which would add the shared library as well. */
    snprintf(link, sizeof link,
             "-L%s/%s -Wl,-Bstatic -lklstore -Wl,-Bdynamic"
             " $(%s --static --libs klstore | sed 's/ -lklstore / /')",
             s.prefix, KL_LIBDIR, s.pkg);
    char *needed = build_and_run(&s, link);
    cr_assert_str_eq(needed, "", "the static program still needs %s", needed);
    free(needed);
}
