/* test_seek.c -- what a read costs in requests on a key of 10,000
 * objects: bench_seek's whole table (LISTs and GETs of a 10-record page
 * from the end, a timestamp, a nonce, an offset, the start, and of the
 * key's metadata), within issue #13's bounds of ceil(log2(N/1000)) + 3
 * LISTs and 3 GETs.  Request counts, not times: the same on any machine.
 * A change that makes a seek cost more requests changes this table. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/shell.h"

Test(seek, a_page_from_anywhere_costs_few_requests, .timeout = 120)
{
    /* tmpfs when there is one: building the key is 10,000 small PUTs. */
    char *out =
        kl_sh("d=$(mktemp -d /dev/shm/kl-seek.XXXXXX 2>/dev/null || mktemp -d) && " KL_BENCH_SEEK
              " \"$d\" 10000 10; rc=$?; rm -rf \"$d\"; exit $rc",
              NULL);
    cr_assert_str_eq(
        out, "key of 10000 objects x 10 records; pages of 10\n"
             "from the end (backwards)                4 LISTs      2 GETs   (bound 7 / 3)\n"
             "from a middle timestamp                 7 LISTs      2 GETs   (bound 7 / 3)\n"
             "from a middle nonce                     7 LISTs      2 GETs   (bound 7 / 3)\n"
             "from a middle offset                    1 LISTs      1 GETs   (bound 7 / 3)\n"
             "from the first record                   1 LISTs      1 GETs   (bound 7 / 3)\n"
             "key metadata                            4 LISTs      1 GETs   (bound 7 / 3)\n");
    free(out);
}
