/* test_callgraph.c -- within each component, .c files call each other
 * one way: no cycle in the file-level call graph.
 *
 * Why: a file that only calls files below it can be read, tested and
 * changed knowing those alone; a cycle ties its files into one unit
 * whatever the file names say.  scripts/callgraph.sh derives the graph
 * from the objects CMake built for each component (nm: functions each
 * defines and uses) and prints "no cycle" or every set of files that
 * call each other round, with one call per edge.  Each test compares the
 * whole output, so a failure shows the cycle and why it is one. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs the checker on `objects` (or --edges) and returns its whole
 * output, stderr included; *status is its exit code. */
static char *callgraph(const char *args, const char *objects, int *status)
{
    size_t clen = strlen(KL_CALLGRAPH) + strlen(args) + strlen(objects) + 16;
    char *cmd = malloc(clen);
    snprintf(cmd, clen, "%s %s %s 2>&1", KL_CALLGRAPH, args, objects);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL, "popen %s", cmd);
    size_t cap = 1 << 16, len = 0, n;
    char *out = malloc(cap);
    while ((n = fread(out + len, 1, cap - 1 - len, p)) > 0) {
        len += n;
        if (len == cap - 1) out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    int rc = pclose(p);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    free(cmd);
    return out;
}

static void no_cycle(const char *component, const char *objects)
{
    int status;
    /* The objects were read and calls between them found: an empty graph
     * would have no cycle for the wrong reason. */
    char *edges = callgraph("--edges", objects, &status);
    cr_assert(status == 0 && strstr(edges, " -> ") != NULL,
              "%s: no calls between files found (exit %d):\n%s", component, status, edges);
    char *out = callgraph("", objects, &status);
    cr_assert_str_eq(out, "no cycle\n", "%s: files call each other in a circle:\n%s", component,
                     out);
    cr_assert_eq(status, 0, "%s: exit %d", component, status);
    free(edges);
    free(out);
}

Test(callgraph, library) { no_cycle("libklstore (store/src)", KL_LIB_OBJS); }

Test(callgraph, cli) { no_cycle("the klstore CLI (store/cli)", KL_CLI_OBJS); }

#ifdef KL_FS_OBJS
Test(callgraph, klstorefs) { no_cycle("klstorefs (fs)", KL_FS_OBJS); }
#endif

#ifdef KL_BRIDGE_OBJS
/* klbridge (the parsers, config and flusher the unit tests link) and the
 * executable's own files are one component. */
Test(callgraph, bridge) { no_cycle("the Kafka bridge (bridge)", KL_BRIDGE_OBJS); }
#endif
