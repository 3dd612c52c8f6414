#!/usr/bin/env bash
# Many writers on one key (issue "Many writers, one log"): 4 writer
# processes appending 100-byte records to one key, each append of 100
# records durable before the next (a writer that fsyncs every 100 lines),
# beside 1 writer doing the same alone, in the same run.  Prints total
# records/s for both and the object store requests per MB appended.
#   tests/bench/bench_contended.sh BUILD_DIR STORE RECORDS
# STORE is a directory or s3://BUCKET/PREFIX/ (with the KL_S3_* environment
# of scripts/rgw.sh).  RECORDS is the total for each case.
set -euo pipefail
B=$1 store=$2 records=$3
w=$B/tests/mw_writer
tmp=$(mktemp -d /tmp/klstore-contended.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
run() { # writers key -> prints "seconds requests bytes"
  local n=$1 key=$2 per=$(( records / $1 )) start end pids=()
  start=$(date +%s.%N)
  for i in $(seq 0 $((n - 1))); do
    MW_PAD=100 MW_STATS="$tmp/stats.$key" "$w" "$store" bench "$key" "$i" "$per" 100 \
      "$tmp/ack.$key.$i" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { echo "writer failed" >&2; exit 1; }; done
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" '{r += $1; b += $2} END {printf "%.3f %d %d\n", e - s, r, b}' \
    "$tmp/stats.$key"
}
key=k$$
read -r t1 r1 b1 < <(run 1 "${key}a")
read -r t4 r4 b4 < <(run 4 "${key}b")
awk -v t1="$t1" -v t4="$t4" -v r1="$r1" -v r4="$r4" -v b1="$b1" -v b4="$b4" -v n="$records" 'BEGIN {
  printf "  %-34s %12s %12s %8s\n", "", "4 writers", "1 writer", "ratio"
  printf "  %-34s %10.0f/s %10.0f/s %7.2fx\n", "records/s (100 B, 100 per fsync)", n / t4, n / t1, t1 / t4
  printf "  %-34s %12.2f %12.2f %7.2fx\n", "store requests per MB appended", r4 / (b4 / 1e6), r1 / (b1 / 1e6), (r4 / b4) / (r1 / b1)
}'
