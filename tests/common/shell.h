/* shell.h -- running a shell command from a test and getting its whole
 * output, so tests compare complete outputs (the house style) instead of
 * grepping for pieces.  Header-only: each suite is one executable. */
#ifndef KL_TEST_SHELL_H
#define KL_TEST_SHELL_H
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

/* Runs `cmd` with sh -c; returns its stdout (malloc'd, NUL-terminated) and
 * stores its exit status (or -1 when it did not exit normally) in *status,
 * or fails the test on a non-zero status when status is NULL. */
static inline char *kl_sh(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL, "popen %s", cmd);
    size_t cap = 1 << 16, len = 0, n;
    char *out = malloc(cap);
    cr_assert(out != NULL);
    while ((n = fread(out + len, 1, cap - 1 - len, p)) > 0) {
        len += n;
        if (len == cap - 1) {
            out = realloc(out, cap *= 2);
            cr_assert(out != NULL);
        }
    }
    out[len] = '\0';
    int ws = pclose(p);
    int code = ws != -1 && WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    if (status)
        *status = code;
    else
        cr_assert_eq(code, 0, "command failed (%d): %s\noutput:\n%s", code, cmd, out);
    return out;
}
#endif
