/* fuzz_names.c -- data object names and keyspace/key names: a name that
 * parses formats back to itself, and validation never crashes. */
#include <stdio.h>

#include "fuzz_common.h"
#include "klstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_str(data, size);
    kl_object_meta m;
    kl_error err = {0};
    if (kl_object_name_parse(s, &m, &err) == KL_OK) {
        char back[256];
        if (kl_object_name_format(&m, back, sizeof back) < 0) abort();
        kl_object_meta m2;
        if (kl_object_name_parse(back, &m2, &err) != KL_OK || memcmp(&m, &m2, sizeof m) != 0)
            abort();
    }
    kl_validate_name("key", s, &err);
    free(s);
    return 0;
}
