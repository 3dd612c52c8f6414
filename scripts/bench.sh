#!/usr/bin/env bash
# Every benchmark, each printed beside its raw baseline from the same run:
#   core     libklstore on the local store vs write(2)/read(2)
#   seek     requests (LIST, GET) per page from anywhere in keys of 10^4 and
#            10^5 objects, beside issue #13's bounds (counts, not times)
#   batch    the batching writer vs pre-batched appends; append-to-durable delay
#   contended 4 writer processes on one key vs 1 writer (local; with --s3 RGW too)
#   fs       klstorefs vs a local file / the raw object files   (fs/bench_fs.sh)
#   bridge   Kafka ingest vs kcat -C -e on the same topic       (bridge/bench_bridge.sh)
#   s3       the S3 store vs curl(1) on Ceph RGW (with --s3; also fs and bridge on RGW)
# Usage: scripts/bench.sh [--s3] [--quick] [core|batch|fs|bridge|s3 ...]
# Speed is measured here, never in the test suite.  The machine should be
# otherwise idle: the figures are wall-clock.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
s3=0 quick=0 only=()
for a in "$@"; do
  case $a in
    --s3) s3=1 ;;
    --quick) quick=1 ;;
    core|seek|batch|contended|fs|bridge|s3) only+=("$a") ;;
    *) echo "usage: scripts/bench.sh [--s3] [--quick] [core|seek|batch|contended|fs|bridge|s3 ...]" >&2; exit 2 ;;
  esac
done
want() { [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }
[[ " ${only[*]} " == *" s3 "* ]] && s3=1

bash scripts/install-deps.sh
bash scripts/build.sh "$root/build"
B=$root/build
work=$(mktemp -d /tmp/klstore-bench.XXXXXX)
rgw_dir=""
cleanup() {
  [ -n "$rgw_dir" ] && bash scripts/rgw.sh stop "$rgw_dir" >/dev/null 2>&1
  rm -rf "$work" "$rgw_dir"
}
trap cleanup EXIT
# Each step's files stay until the end (the trap removes $work): on ext4
# without a journal, inodes deleted in the last minutes are skipped one by
# one when new ones are allocated (ext4's recently_deleted()), and a step
# that ran after the previous step's tens of thousands of deletes measured
# that file system, not klstore (a 256 MB klstorefs append: 0.6 s or 2 s).
records=1000000
[ "$quick" = 1 ] && records=200000

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
if want core; then
  echo; echo "== core: $B/tests/bench_store DIR $records 7490   (~1 MiB objects)"
  "$B/tests/bench_store" "$work/core1" "$records" 7490
  echo; echo "== core: $B/tests/bench_store DIR $records 1000   (1000-record objects)"
  "$B/tests/bench_store" "$work/core2" "$records" 1000
fi
if want seek; then
  for n in 10000 100000; do
    d=$(mktemp -d /dev/shm/klstore-seek.XXXXXX 2>/dev/null || mktemp -d "$work/seek.XXXXXX")
    echo; echo "== seek: $B/tests/bench_seek DIR $n 10"
    "$B/tests/bench_seek" "$d" "$n" 10
    rm -rf "$d"
  done
fi
if want batch; then
  echo; echo "== batch: $B/tests/bench_batch DIR $records"
  "$B/tests/bench_batch" "$work/batch" "$records"
fi
if want contended; then
  n=200000; [ "$quick" = 1 ] && n=40000
  echo; echo "== contended: tests/bench/bench_contended.sh $B DIR $n   (local store)"
  bash tests/bench/bench_contended.sh "$B" "$work/contended" "$n"
fi
if [ "$s3" = 1 ]; then
  rgw_dir=$(mktemp -d /tmp/klstore-bench-rgw.XXXXXX)
  echo; echo "== starting Ceph RGW (scripts/rgw.sh start $rgw_dir)"
  eval "$(bash scripts/rgw.sh start "$rgw_dir")"
  export KL_S3_ENDPOINT KL_S3_BUCKET KL_S3_ACCESS_KEY KL_S3_SECRET_KEY KL_S3_REGION
  if want s3 || [ ${#only[@]} -eq 0 ]; then
    mb=100; [ "$quick" = 1 ] && mb=20
    echo; echo "== s3: $B/tests/bench_s3 $mb"
    "$B/tests/bench_s3" "$mb"
  fi
  if want contended; then
    n=40000; [ "$quick" = 1 ] && n=8000
    echo; echo "== contended: tests/bench/bench_contended.sh $B s3://$KL_S3_BUCKET/contended-$$/ $n   (Ceph RGW)"
    bash tests/bench/bench_contended.sh "$B" "s3://$KL_S3_BUCKET/contended-$$/" "$n"
  fi
fi
if want fs && [ -x "$B/fs/klstorefs" ]; then
  fsenv=(KLSTOREFS="$B/fs/klstorefs")
  [ "$quick" = 1 ] && fsenv+=(BENCH_MB=64 BENCH_LAT_SECS=10)
  echo; echo "== fs: fs/bench_fs.sh (local store)"
  env "${fsenv[@]}" bash fs/bench_fs.sh
  if [ "$s3" = 1 ]; then
    echo; echo "== fs: fs/bench_fs.sh s3://$KL_S3_BUCKET/benchfs-$$/ (Ceph RGW)"
    # UNSIGNED-PAYLOAD like the curl baseline (and like the default over https)
    printf '[s3]\nbucket_name=%s\nsign_payload=off\n' "$KL_S3_BUCKET" >"$work/fs-s3.ini"
    env "${fsenv[@]}" BENCH_FS_OPTS="config=$work/fs-s3.ini,endpoint=$KL_S3_ENDPOINT,path_style" \
      BENCH_S3_ENDPOINT="$KL_S3_ENDPOINT" \
      AWS_ACCESS_KEY_ID="$KL_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$KL_S3_SECRET_KEY" \
      bash fs/bench_fs.sh "s3://$KL_S3_BUCKET/benchfs-$$/"
  fi
fi
if want bridge && [ -x bridge/bench_bridge.sh ] && [ -x "$B/bridge/klstore-kafka-bridge" ]; then
  echo; echo "== bridge: bridge/bench_bridge.sh"
  bridge_env=(KL_BENCH_BRIDGE_DIR="$work")
  [ "$quick" = 1 ] && bridge_env+=(KL_BENCH_BRIDGE_MESSAGES=200000)
  env "${bridge_env[@]}" bash bridge/bench_bridge.sh "$B"
fi
echo; echo "== done"
