#!/usr/bin/env bash
# Configures and builds klstore into a build directory.
#   scripts/build.sh [BUILD_DIR] [extra cmake args...]
# BUILD_DIR defaults to ./build.  Used by the quickstart, the test driver and
# the benchmarks so that all of them build the same way.  Prints only
# warnings and errors; the full log is BUILD_DIR/build.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/build}
shift || true
mkdir -p "$dir"
if ! cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE="${KL_BUILD_TYPE:-RelWithDebInfo}" "$@" \
     >"$dir/build.log" 2>&1 ||
   ! cmake --build "$dir" -j "$(nproc)" >>"$dir/build.log" 2>&1; then
  grep -E "error|Error" "$dir/build.log" >&2 || tail -20 "$dir/build.log" >&2
  echo "build failed; full log: $dir/build.log" >&2
  exit 1
fi
grep -E "warning:" "$dir/build.log" >&2 || true
