#!/usr/bin/env bash
# bench_bridge.sh -- ingest throughput of klstore-kafka-bridge, beside kcat.
#
# Starts a private librdkafka mock cluster (kl-mock-broker) on 127.0.0.1,
# produces N messages of SIZE bytes (default 1,000,000 x 100) to a topic
# with enough partitions for the mock's ~5 MiB-per-partition retention,
# then in the same run:
#   1. times `kcat -C -e` reading the whole topic to /dev/null (the
#      reference: a consumer that does nothing with the records; median of
#      three runs);
#   2. times the bridge ingesting the topic into a local store directory,
#      from its partition assignment (the group join is excluded) to the
#      status line showing all N records handed over, plus the final flush;
#   3. the same into S3 (Ceph RGW) when KL_S3_ENDPOINT, KL_S3_BUCKET,
#      KL_S3_ACCESS_KEY and KL_S3_SECRET_KEY are set (scripts/rgw.sh), with
#      sign_payload=off as the default is over https (RGW here is http).
# and prints records/s, MB/s and the bridge/kcat throughput ratio (target
# >= 0.7).  Called by scripts/bench.sh; runnable alone:
#
#   bridge/bench_bridge.sh [BUILD_DIR]     (default: ./build)
#
# Knobs: KL_BENCH_BRIDGE_MESSAGES, KL_BENCH_BRIDGE_SIZE,
# KL_BENCH_BRIDGE_PARTITIONS, KL_BENCH_BRIDGE_DIR (scratch, default /tmp),
# KCAT (default kcat).
set -euo pipefail

BUILD=${1:-build}
N=${KL_BENCH_BRIDGE_MESSAGES:-1000000}
SIZE=${KL_BENCH_BRIDGE_SIZE:-100}
PARTS=${KL_BENCH_BRIDGE_PARTITIONS:-48}
KCAT=${KCAT:-kcat}
BRIDGE=$BUILD/bridge/klstore-kafka-bridge
MOCK=$BUILD/tests/kafka/kl-mock-broker
TOPIC=bench

for f in "$BRIDGE" "$MOCK"; do
  [ -x "$f" ] || { echo "bench_bridge.sh: $f not built (cmake --build $BUILD)" >&2; exit 2; }
done
command -v "$KCAT" >/dev/null || { echo "bench_bridge.sh: kcat not found" >&2; exit 2; }

WORK=$(mktemp -d "${KL_BENCH_BRIDGE_DIR:-/tmp}/klbridge-bench-XXXXXX")
MOCK_PID= BRIDGE_PID=
cleanup() {
  # Only the processes this script started, by pid.
  [ -n "$BRIDGE_PID" ] && kill -KILL "$BRIDGE_PID" 2>/dev/null || true
  [ -n "$MOCK_PID" ] && kill -TERM "$MOCK_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "bench_bridge: $*" >&2; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
# Seconds since the epoch of the ISO timestamp a bridge log line starts with.
line_time() { date -u -d "$(cut -d' ' -f1 <<<"$1" | sed 's/Z$//; s/T/ /')" +%s.%N; }

start_mock() {
  "$MOCK" --topic "$TOPIC:$PARTS" --port-file "$WORK/port" </dev/null >"$WORK/mock.out" 2>&1 &
  MOCK_PID=$!
  for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
  [ -s "$WORK/port" ] || { log "mock broker did not start"; cat "$WORK/mock.out" >&2; exit 1; }
  BOOTSTRAP=$(cat "$WORK/port")
}

produce() {
  log "producing $N messages of $SIZE bytes to $PARTS partitions"
  awk -v n="$N" -v size="$SIZE" 'BEGIN {
        pad = sprintf("%*s", size, ""); gsub(/ /, "x", pad);
        for (i = 0; i < n; i++) { s = sprintf("m%d-", i); print i ":" s substr(pad, length(s) + 1) } }' \
    >"$WORK/data.txt"
  local t0; t0=$(now)
  # Keyed (KEY:PAYLOAD), so that hashing spreads the messages evenly: the
  # mock keeps only ~5 MiB per partition.
  "$KCAT" -b "$BOOTSTRAP" -P -t "$TOPIC" -K: -l "$WORK/data.txt" \
    -X queue.buffering.max.messages=1000000 -X linger.ms=50
  log "produced in $(calc "$(now) - $t0") s"
  rm -f "$WORK/data.txt"
}

KCAT_SECS=
# kcat's time varies a lot from run to run on a small machine: the median
# of three runs is the reference.
bench_kcat() {
  local t0 t1 got runs=()
  got=$("$KCAT" -b "$BOOTSTRAP" -C -t "$TOPIC" -e -q -o beginning -f '%s\n' | wc -l)
  [ "$got" -eq "$N" ] || { log "kcat read $got of $N messages (mock retention too small? raise partitions)"; exit 1; }
  for _ in 1 2 3; do
    t0=$(now)
    "$KCAT" -b "$BOOTSTRAP" -C -t "$TOPIC" -e -q -o beginning -f '%s\n' >/dev/null
    t1=$(now)
    runs+=("$(calc "$t1 - $t0")")
  done
  KCAT_SECS=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p)
  log "kcat runs: ${runs[*]} s (median $KCAT_SECS)"
}

# bench_bridge NAME STORE_INI
bench_bridge() {
  local name=$1 store_ini=$2 ini="$WORK/$1.ini" blog="$WORK/$1.log"
  cat >"$ini" <<INI
$store_ini
[batcher]
writer_thread_count=4
writer_thread_queue_capacity=256
batch_flush_interval_millis=1000
batch_flush_size_threshold=1000000
[kafka]
topic="$TOPIC"
offset_commit_interval_seconds=5
stats_interval_seconds=0.1
group.id="bench-$name"
bootstrap.servers="$BOOTSTRAP"
auto.offset.reset=earliest
session.timeout.ms=6000
[parser]
nonce_parser="RecordOffset"
keyspace_parser="Static(bench)"
key_parser="RecordPartition"
INI
  "$BRIDGE" "$ini" 2>"$blog" &
  BRIDGE_PID=$!
  local deadline=$((SECONDS + 600))
  until grep -q " $N records (" "$blog"; do
    if ! kill -0 "$BRIDGE_PID" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
      log "$name: the bridge stopped or stalled:"; tail -20 "$blog" >&2; exit 1
    fi
    sleep 0.05
  done
  kill -TERM "$BRIDGE_PID"
  local rc=0
  wait "$BRIDGE_PID" || rc=$?
  BRIDGE_PID=
  [ "$rc" -eq 0 ] || { log "$name: bridge exited with $rc"; tail -20 "$blog" >&2; exit 1; }
  local t0 t1 t2
  t0=$(line_time "$(grep -m1 'partitions assigned' "$blog")")
  t1=$(line_time "$(grep -m1 " $N records (" "$blog")")
  t2=$(line_time "$(grep -m1 'flushed and committed before revocation' "$blog")")
  local secs; secs=$(calc "$t2 - $t0")
  report "bridge ($name)" "$secs"
  printf '  %-22s handed over in %.2f s, final flush+commit %.2f s; ratio to kcat: %.2fx\n' \
    "" "$(calc "$t1 - $t0")" "$(calc "$t2 - $t1")" "$(calc "$KCAT_SECS / $secs")"
}

report() {
  local rate mbs
  rate=$(calc "$N / $2")
  mbs=$(calc "$N * $SIZE / $2 / 1000000")
  printf '  %-22s %8.2f s  %10.0f records/s  %7.1f MB/s\n' "$1" "$2" "$rate" "$mbs"
}

start_mock
produce
bench_kcat
echo "klstore-kafka-bridge ingest, $N x $SIZE-byte messages, $PARTS partitions, mock broker on 127.0.0.1:"
report "kcat -C -e >/dev/null" "$KCAT_SECS"
bench_bridge local "[local]
root=$WORK/store"
if [ -n "${KL_S3_ENDPOINT:-}" ] && [ -n "${KL_S3_BUCKET:-}" ]; then
  bench_bridge s3 "[s3]
endpoint=\"$KL_S3_ENDPOINT\"
bucket_name=\"$KL_S3_BUCKET\"
region=\"${KL_S3_REGION:-us-east-1}\"
path_style=true
use_default_credentials=false
access_key=\"$KL_S3_ACCESS_KEY\"
secret_key=\"$KL_S3_SECRET_KEY\"
sign_payload=off
object_prefix=\"bench-bridge-$$-$(date +%s)/\""
else
  echo "  (S3: skipped, KL_S3_ENDPOINT etc. unset)"
fi
