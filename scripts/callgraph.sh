#!/usr/bin/env bash
# The file-level call graph of one component, from its object files.
#   scripts/callgraph.sh [--edges] OBJECT|DIR...
# The rule of the codebase: within a component, .c files call each other
# one way, so each file can be read (and changed) knowing only the files
# below it.  This finds where that breaks: with nm, each object's global
# functions (T, W) and the symbols it leaves undefined give an edge A -> B
# when A uses a function of B.  Every set of files that call each other
# round in a circle (a strongly connected set: each reaches every other)
# is printed as
#   cycle: a.c b.c c.c
#     a.c -> b.c  b_fn
#   ...
# one edge per line inside the set with one function it uses (the first
# by name; "+N" more), so a reader sees why.  No cycle prints "no cycle".
# --edges prints every edge instead.  A DIR stands for the *.o under it;
# naming the objects (CMake's $<TARGET_OBJECTS:...>) avoids stale ones.
# Files are named by their path after CMake's "<target>.dir/".
# tests/callgraph/test_callgraph.c runs it on the library and on each
# front end.  Only nm and awk are used: binutils and mawk are on every
# build machine.
# Exit: 0 no cycle (or --edges), 1 cycles, 2 usage or no objects.
set -euo pipefail
mode=cycles
if [ "${1:-}" = --edges ]; then
  mode=edges
  shift
fi
if [ $# -eq 0 ] || [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
objs=()
for a in "$@"; do
  if [ -d "$a" ]; then
    while IFS= read -r f; do objs+=("$f"); done < <(find "$a" -name '*.o' | sort)
  elif [ -f "$a" ]; then
    objs+=("$a")
  else
    echo "callgraph: no such object or directory: $a" >&2
    exit 2
  fi
done
if [ ${#objs[@]} -eq 0 ]; then
  echo "callgraph: no object files in $*" >&2
  exit 2
fi

# nm -A -P: "OBJECT: SYMBOL TYPE [VALUE SIZE]", one line per symbol.
nm -A -P "${objs[@]}" | awk -v mode="$mode" '
function name(o) { sub(/:$/, "", o); sub(/.*\.dir\//, "", o); sub(/\.o$/, "", o); return o }
{
  f = name($1)
  if (!(f in seen)) { seen[f] = 1; files[++n] = f }
  if ($3 == "T" || $3 == "W" || $3 == "i") def[$2] = f
  else if ($3 == "U" || $3 == "w") { nu++; ufile[nu] = f; usym[nu] = $2 }
}
END {
  # Files sorted by name (insertion sort: tens of files), indexed 1..n.
  for (i = 2; i <= n; i++)
    for (j = i; j > 1 && files[j - 1] > files[j]; j--) { t = files[j]; files[j] = files[j - 1]; files[j - 1] = t }
  for (i = 1; i <= n; i++) idx[files[i]] = i
  for (k = 1; k <= nu; k++) {
    s = usym[k]
    if (!(s in def)) continue            # libc, other components
    a = idx[ufile[k]]; b = idx[def[s]]
    if (a == b) continue
    if (!((a, b) in edge) || s < edge[a, b]) edge[a, b] = s
    count[a, b]++
    reach[a, b] = 1
  }
  if (mode == "edges") {
    for (a = 1; a <= n; a++)
      for (b = 1; b <= n; b++)
        if ((a, b) in edge) print line(a, b)
    exit 0
  }
  # Transitive closure (Floyd-Warshall): small n, and simple to trust.
  for (k = 1; k <= n; k++)
    for (a = 1; a <= n; a++)
      if ((a, k) in reach)
        for (b = 1; b <= n; b++)
          if ((k, b) in reach) reach[a, b] = 1
  cycles = 0
  for (a = 1; a <= n; a++) {
    if (done[a] || !((a, a) in reach)) continue
    members = ""
    for (b = a; b <= n; b++)
      if (b == a || (((a, b) in reach) && ((b, a) in reach))) {
        done[b] = 1; in_set[a, b] = 1; members = members " " files[b]
      }
    print "cycle:" members
    for (x = a; x <= n; x++)
      for (y = a; y <= n; y++)
        if (in_set[a, x] && in_set[a, y] && ((x, y) in edge)) print "  " line(x, y)
    cycles++
  }
  if (!cycles) print "no cycle"
  exit cycles ? 1 : 0
}
function line(a, b) {
  return files[a] " -> " files[b] "  " edge[a, b] (count[a, b] > 1 ? " +" (count[a, b] - 1) : "")
}'
