/* fuzz_common.h -- small helpers shared by the libFuzzer harnesses. */
#ifndef KL_FUZZ_COMMON_H
#define KL_FUZZ_COMMON_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The input as a NUL-terminated string (NULs inside end it early, which is
 * what a C caller would see). */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* Splits the input at its first `n - 1` bytes of value 0xff into n parts
 * (missing parts are empty), each a fresh NUL-terminated string. */
static inline void fuzz_split(const uint8_t *data, size_t size, char **parts, int n)
{
    size_t start = 0;
    for (int i = 0; i < n; i++) {
        size_t end = start;
        while (end < size && (i == n - 1 || data[end] != 0xff)) end++;
        parts[i] = fuzz_str(data + (start < size ? start : size), (end > start ? end - start : 0));
        start = end < size ? end + 1 : size;
    }
}
#endif
