#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz, clang + ASan/UBSan) and runs
# each over its seed corpus and then for a number of executions:
#   scripts/fuzz.sh [--quick | --ci] [HARNESS ...]
#   (default: 10,000,000 executions each; --quick: 200,000; --ci: the seed
#    corpus only, which the test suite runs)
# New inputs go to build-fuzz/corpus/HARNESS (the repo's seeds stay as
# they are); a crash leaves crash-* in build-fuzz/ and fails the script.
# Prints executions and findings per harness.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=10000000 mode=full only=()
for a in "$@"; do
  case $a in
    --quick) runs=200000 mode=quick ;;
    --ci) runs=0 mode=ci ;;
    fuzz_*) only+=("$a") ;;
    *) echo "usage: scripts/fuzz.sh [--quick|--ci] [fuzz_NAME ...]" >&2; exit 2 ;;
  esac
done
bash "$root/scripts/install-deps.sh" --fuzz
B=$root/build-fuzz
bash "$root/scripts/build.sh" "$B" -DCMAKE_C_COMPILER=clang -DKL_FUZZ=ON \
  -DKL_SANITIZE=address,undefined -DKL_BUILD_FS=OFF -DKL_BUILD_TESTS=OFF
harnesses=()
for f in "$B"/tests/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  n=$(basename "$f")
  if [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $n "* ]]; then harnesses+=("$n"); fi
done
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=0
for n in "${harnesses[@]}"; do
  seeds=$root/tests/fuzz/corpus/$n
  work=$B/corpus/$n
  mkdir -p "$work"
  log=$B/$n.log
  start=$(date +%s)
  if [ "$mode" = ci ]; then
    args=(-runs=0 "$seeds")
  else
    args=(-runs="$runs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$B/$n-" "$work" "$seeds")
  fi
  if (cd "$B" && "$B/tests/fuzz/$n" "${args[@]}" >"$log" 2>&1); then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    printf '%-22s ok   %12s executions  %4ss  corpus %s\n' "$n" "${execs:-seeds}" \
      "$(( $(date +%s) - start ))" "$(ls "$work" | wc -l)"
  else
    failed=1
    printf '%-22s FAILED (see %s)\n' "$n" "$log"
    grep -E "ERROR|runtime error|SUMMARY" "$log" | head -5 || true
  fi
done
exit $failed
