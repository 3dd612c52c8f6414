#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine:
#   1. installs the Debian packages (scripts/install-deps.sh),
#   2. builds, starts a throwaway Ceph RADOS Gateway on 127.0.0.1
#      (scripts/rgw.sh) and runs every CTest suite against it and the local
#      store (the Kafka suites start their own mock broker per test),
#   3. rebuilds with AddressSanitizer+UBSan and runs the suites again,
#   4. rebuilds with ThreadSanitizer and runs the concurrency suites,
#   5. builds the libFuzzer harnesses (clang) and runs each over its seed
#      corpus (scripts/fuzz.sh --ci; long runs: scripts/fuzz.sh).
# Before building it checks that every C file is formatted (scripts/format.sh).
# Exits non-zero if anything fails.  KL_TEST_QUICK=1 skips steps 3 to 5.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)

bash scripts/install-deps.sh

rgw_dir=$(mktemp -d /tmp/klstore-test-rgw.XXXXXX)
cleanup() { bash scripts/rgw.sh stop "$rgw_dir" >/dev/null 2>&1 || true; rm -rf "$rgw_dir"; }
trap cleanup EXIT
echo "== starting Ceph RGW"
eval "$(bash scripts/rgw.sh start "$rgw_dir")"
export KL_S3_ENDPOINT KL_S3_BUCKET KL_S3_ACCESS_KEY KL_S3_SECRET_KEY KL_S3_REGION

failed=0
run_suite() { # name build_dir ctest-args...
  local name=$1 dir=$2
  shift 2
  echo "== $name: building in $dir"
  if ! bash scripts/build.sh "$dir" "${KL_CMAKE_ARGS[@]}"; then
    echo "== $name: BUILD FAILED"; failed=1; return
  fi
  echo "== $name: running tests"
  if ! (cd "$dir" && ctest --output-on-failure --timeout 900 "$@"); then
    echo "== $name: FAILED"; failed=1
  fi
}

echo "== format: every C file as .clang-format says"
if ! bash scripts/format.sh --check; then echo "== format: FAILED"; failed=1; fi

KL_CMAKE_ARGS=()
run_suite "release" "$root/build" -j2
if [ "${KL_TEST_QUICK:-0}" != 1 ]; then
  KL_CMAKE_ARGS=(-DKL_SANITIZE=address,undefined)
  ASAN_OPTIONS=detect_leaks=1 run_suite "asan+ubsan" "$root/build-asan" -j2 -E "bench"
  # TSan: Criterion's runner cannot start in a TSan process, so this stage
  # runs plain programs: tests/tsan/tsan_stress drives the library's
  # concurrent paths (batching writer threads, shared reader and object
  # cache, readers racing compaction); tests/tsan/tsan_fs.sh mounts a TSan
  # klstorefs and drives it from concurrent shell readers and writers.
  KL_CMAKE_ARGS=(-DKL_SANITIZE=thread -DKL_BUILD_BRIDGE=OFF)
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    run_suite "tsan" "$root/build-tsan" -R "^tsan_"
  echo "== fuzz: every harness over its seed corpus"
  if ! bash scripts/fuzz.sh --ci; then echo "== fuzz: FAILED"; failed=1; fi
fi

echo "== test.sh finished in $(( $(date +%s) - start ))s"
if [ "$failed" -ne 0 ]; then echo "== SOME SUITES FAILED"; exit 1; fi
echo "== all suites passed"
