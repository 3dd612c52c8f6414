#!/usr/bin/env bash
# bench_fs.sh -- klstorefs throughput and tail -f latency, each beside a
# baseline, so that regressions show as ratios rather than raw numbers that
# depend on the machine:
#
#   1. append: `cat big >> MNT/ks/k` (close included: the data is durable)
#      vs `cat big >> local file` + fsync (local store), or vs curl(1)
#      PUTting the same bytes as 1 MiB objects to the same server (S3);
#   2. read:   `cat MNT/ks/k > /dev/null` on a fresh mount (cold caches)
#      vs reading the raw objects (local store: the data_* files; S3:
#      curl(1) GETting the key's data objects one after another);
#   3. append-to-visible latency p50/p99: a writer appends timestamped lines
#      at a steady rate through one mount, `tail -f` on a second mount
#      prints them, each line's delay is measured on arrival.
#
# Usage: fs/bench_fs.sh [STORE_URL]   (default: a fresh temporary directory)
# Env:   KLSTOREFS (binary), BENCH_MB (256),
#        BENCH_LAT_SECS (20), BENCH_LAT_RATE (lines/s, 20),
#        BENCH_FS_OPTS (extra -o options, e.g. endpoint=...,path_style),
#        BENCH_S3_ENDPOINT (S3 only: the path-style endpoint curl talks to).
# For s3:// stores, credentials come from AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY (curl signs with them too).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
KLSTOREFS=${KLSTOREFS:-$( (ls -t "$here"/../build*/fs/klstorefs 2>/dev/null || true) | head -1)}
MB=${BENCH_MB:-256}
LAT_SECS=${BENCH_LAT_SECS:-20}
LAT_RATE=${BENCH_LAT_RATE:-20}
OPTS=${BENCH_FS_OPTS:-}

work=$(mktemp -d /tmp/klfs-bench-XXXXXX)
store=${1:-$work/store}
pids=()
mounts=()

cleanup() {
  for m in "${mounts[@]}"; do fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
# ratio BASELINE_SECS OURS_SECS: our speed over the baseline's (higher is better)
ratio() { printf "%.2f" "$(echo "$1 / $2" | bc -l)"; }

# curl(1) baseline on S3: one process for every transfer (connection reuse,
# like our store), SigV4 with an unsigned payload, path-style URLs.
if [[ $store == s3://* ]]; then
  s3_rest=${store#s3://}; s3_bucket=${s3_rest%%/*}; s3_prefix=${s3_rest#"$s3_bucket"}
  s3_prefix=${s3_prefix#/}; [ -n "$s3_prefix" ] && s3_prefix=${s3_prefix%/}/
  s3_url=${BENCH_S3_ENDPOINT:?BENCH_S3_ENDPOINT is needed for the curl baseline}/$s3_bucket
fi
curl_config() {
  printf 'aws-sigv4 = "aws:amz:%s:s3"\nuser = "%s:%s"\nheader = "x-amz-content-sha256: UNSIGNED-PAYLOAD"\n' \
    "${AWS_REGION:-us-east-1}" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
}
run_curl() { curl -sS --fail -K "$1"; }

# mount NAME [extra opts] -> sets $mnt; foreground daemon, tracked by PID.
mount_fs() {
  mnt=$work/$1
  mkdir -p "$mnt"
  local o=$OPTS
  [ -n "${2:-}" ] && o=${o:+$o,}$2
  "$KLSTOREFS" "$store" "$mnt" ${o:+-o "$o"} -f 2>>"$work/$1.log" &
  pids+=($!)
  mounts+=("$mnt")
  for _ in $(seq 1 300); do grep -q " $mnt " /proc/self/mountinfo && return 0; sleep 0.1; done
  echo "mount of $mnt failed: $(cat "$work/$1.log")" >&2
  exit 1
}

# peak_rss PID: the daemon's peak resident memory so far, in MB.
peak_rss() { awk '/^VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$1/status"; }

umount_fs() {
  fusermount3 -u "$1"
  local pid=${pids[-1]}
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

echo "klstorefs benchmark: store=$store size=${MB}MB binary=$KLSTOREFS"

# ---- 1. append throughput ------------------------------------------------------
line=$(printf '%099d' 0 | tr 0 x)            # 99 chars + '\n' = 100-byte lines
{ yes "$line" || true; } | head -n $((MB * 1048576 / 100)) > "$work/big"
bytes=$(stat -c %s "$work/big")

if [[ $store == s3://* ]]; then
  base_w="curl PUT 1 MiB objects"
  mkdir "$work/parts"
  split -b 1048576 -a 5 "$work/big" "$work/parts/p"
  { curl_config
    for f in "$work"/parts/p*; do
      printf 'upload-file = "%s"\nurl = "%s/%scurl-%s/%s"\noutput = "/dev/null"\n' \
        "$f" "$s3_url" "$s3_prefix" "$$" "${f##*/}"
    done; } > "$work/put.cfg"
  t0=$(now); run_curl "$work/put.cfg"; t1=$(now)
  rm -rf "$work/parts"
else
  base_w="local file"
  t0=$(now); cat "$work/big" >> "$work/local"; sync "$work/local"; t1=$(now)
fi
local_w=$(secs "$t0" "$t1")

mount_fs w
mkdir -p "$mnt/bench"
key="k$$"
t0=$(now); cat "$work/big" >> "$mnt/bench/$key"; t1=$(now)
fs_w=$(secs "$t0" "$t1")
size=$(stat -c %s "$mnt/bench/$key")
[ "$size" = "$bytes" ] || { echo "size mismatch: $size, want $bytes" >&2; exit 1; }
rss_w=$(peak_rss "${pids[-1]}")
umount_fs "$mnt"

printf 'append %d MB:  klstorefs %.2fs (%.1f MB/s)   %s %.2fs (%.1f MB/s)   ratio %sx\n' \
  "$MB" "$fs_w" "$(echo "$MB / $fs_w" | bc -l)" "$base_w" "$local_w" "$(echo "$MB / $local_w" | bc -l)" \
  "$(ratio "$local_w" "$fs_w")"

# ---- 2. read throughput (fresh mount: cold daemon caches) ------------------------
mount_fs r ro
t0=$(now); cat "$mnt/bench/$key" > /dev/null; t1=$(now)
fs_r=$(secs "$t0" "$t1")
t0=$(now); cat "$mnt/bench/$key" > /dev/null; t1=$(now)
fs_r2=$(secs "$t0" "$t1")
rss_r=$(peak_rss "${pids[-1]}")
umount_fs "$mnt"
if [[ $store == s3://* ]]; then
  what="curl GET data objects"
  listing=$(curl -sS --fail -K <(curl_config) \
    "$s3_url/?list-type=2&max-keys=1000&prefix=$(sed 's|/|%2F|g' <<<"${s3_prefix}bench/$key/data_")")
  [[ $listing == *"<IsTruncated>false</IsTruncated>"* ]] ||
    { echo "bench_fs: more than 1000 data objects; the curl baseline lists one page" >&2; exit 1; }
  { curl_config
    grep -o '<Key>[^<]*</Key>' <<<"$listing" | sed 's/<Key>\(.*\)<\/Key>/\1/' |
      while read -r k; do printf 'url = "%s/%s"\noutput = "/dev/null"\n' "$s3_url" "$k"; done
  } > "$work/get.cfg"
  t0=$(now); run_curl "$work/get.cfg"; t1=$(now)
else
  what="raw object files"
  t0=$(now); cat "$store"/bench/"$key"/data_* > /dev/null; t1=$(now)
fi
raw_r=$(secs "$t0" "$t1")
printf 'read %d MB:    klstorefs %.2fs (%.1f MB/s)   %s %.2fs (%.1f MB/s)   ratio %sx (fresh mount)\n' \
  "$MB" "$fs_r" "$(echo "$MB / $fs_r" | bc -l)" "$what" "$raw_r" "$(echo "$MB / $raw_r" | bc -l)" \
  "$(ratio "$raw_r" "$fs_r")"
printf 'read %d MB:    klstorefs %.2fs (%.1f MB/s)   %s %.2fs (%.1f MB/s)   ratio %sx (again, warm)\n' \
  "$MB" "$fs_r2" "$(echo "$MB / $fs_r2" | bc -l)" "$what" "$raw_r" "$(echo "$MB / $raw_r" | bc -l)" \
  "$(ratio "$raw_r" "$fs_r2")"
printf 'daemon peak RSS: %d MB during the append, %d MB during the reads (bound: cache_mb 128 + pending_mb 8 + 32 = 168 MB)\n' \
  "$rss_w" "$rss_r"

# ---- 3. append-to-visible latency through tail -f on a second mount ------------------
mount_fs lw; wmnt=$mnt
mount_fs lr ro; rmnt=$mnt
want=$((LAT_SECS * LAT_RATE))
echo "$(date +%s%3N)" >> "$wmnt/bench/lat$$"
# The reader: runs tail -f itself, so it knows (and ends) exactly that PID,
# and stamps each line on arrival.
perl -MTime::HiRes=time -e '
  my ($f, $want, $out) = @ARGV;
  my $pid = open(my $t, "-|", "tail", "-n", "0", "-f", $f) or die "tail: $!";
  open(my $o, ">", $out) or die; $o->autoflush(1);
  local $SIG{ALRM} = sub { kill "TERM", $pid; exit 0 }; alarm(60 + $want);
  my $n = 0;
  while (<$t>) { chomp; printf $o "%d\n", time() * 1000 - $_; last if ++$n >= $want }
  kill "TERM", $pid;' "$rmnt/bench/lat$$" "$want" "$work/delays" &
readerpid=$!
sleep 2
perl -MTime::HiRes=time,sleep -MIO::Handle -e '
  my ($f, $n, $rate) = @ARGV;
  open(my $h, ">>", $f) or die "$f: $!"; $h->autoflush(1);
  for (1 .. $n) { printf $h "%d\n", time() * 1000; sleep(1 / $rate); }
  close($h) or die "close: $!";' "$wmnt/bench/lat$$" "$want" "$LAT_RATE"
wait "$readerpid" || true
n=$(wc -l < "$work/delays")
sort -n "$work/delays" > "$work/sorted"
p50=$(sed -n "$(( (n + 1) / 2 ))p" "$work/sorted")
p99=$(sed -n "$(( (n * 99 + 99) / 100 ))p" "$work/sorted")
max=$(tail -n 1 "$work/sorted")
printf 'tail -f latency (%d lines at %d/s, writer keeps the file open): p50 %d ms  p99 %d ms  max %d ms  (bound: batch flush interval, default 1000 ms, + tail poll 1000 ms + refresh)\n' \
  "$n" "$LAT_RATE" "$p50" "$p99" "$max"
[ "$n" -ge "$want" ] || echo "warning: only $n of $want lines arrived" >&2
