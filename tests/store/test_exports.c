/* test_exports.c -- the shared libklstore exports exactly its public API.
 *
 * Three lists must be the same: the functions declared in klstore.h (read
 * from the preprocessed header, so comments do not count), the export list
 * store/libklstore.map, and the dynamic symbols the built libklstore.so
 * defines (nm -D).  A function added to the header but not to the list,
 * an internal function that leaks (a missing `static`, a Kl_ helper made
 * visible), or data exported by accident each make the lists differ; the
 * failure prints both lists whole. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/shell.h"

static char *header_functions(void)
{
    return kl_sh(KL_CC " -E -P -I" KL_INCLUDE " " KL_INCLUDE "/klstore.h"
                       " | tr -s ' \\n' ' ' | grep -oE '\\bkl_[a-z0-9_]+ ?\\( ?[^ *]'"
                       " | grep -oE '^kl_[a-z0-9_]+' | sort -u",
                 NULL);
}

Test(exports, header_export_list_and_library_agree)
{
    char *header = header_functions();
    char *map = kl_sh("sed -n '/global:/,/local:/p' " KL_MAP
                      " | grep -oE '^ *kl_[a-z0-9_]+;' | tr -d ' ;' | sort -u",
                      NULL);
    /* Every defined dynamic symbol, whatever its kind, except the version
     * node itself: data or a stray internal function must show up. */
    char *lib = kl_sh("nm -D --defined-only " KL_LIB
                      " | awk '{print $3}' | sed 's/@.*//' | grep -vx KLSTORE_0 | sort -u",
                      NULL);
    cr_assert(strlen(header) > 0 && strstr(header, "kl_append\n") != NULL,
              "the header's functions were not found:\n%s", header);
    cr_assert_str_eq(map, header, "libklstore.map differs from klstore.h:\n%s\n--- vs ---\n%s", map,
                     header);
    cr_assert_str_eq(lib, header,
                     "libklstore.so exports differ from klstore.h:\n%s\n--- vs ---\n%s", lib,
                     header);
    free(header);
    free(map);
    free(lib);
}

Test(exports, internal_functions_carry_their_own_prefix)
{
    /* Internal functions are Kl_*; none of them may be named like the
     * public kl_* API, so a reader can tell the two apart by name.  The
     * static archive holds every global function of the library. */
    char *header = header_functions();
    char *globals = kl_sh("nm --defined-only " KL_ARCHIVE
                          " | awk '$2 == \"T\" {print $3}' | grep -E '^kl_' | sort -u",
                          NULL);
    cr_assert_str_eq(globals, header,
                     "global functions named kl_ differ from klstore.h (rename internal ones Kl_):"
                     "\n%s\n--- vs ---\n%s",
                     globals, header);
    free(header);
    free(globals);
}
