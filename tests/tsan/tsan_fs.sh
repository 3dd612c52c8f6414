#!/usr/bin/env bash
# tsan_fs.sh KLSTOREFS -- klstorefs built with ThreadSanitizer, mounted for
# real and driven from many processes at once: writers appending to shared
# and separate keys, readers cat-ing and seeking while the writers run,
# listings, xattrs and time-travel views, then an unmount that flushes.
# FUSE worker threads, the object cache's readahead threads, the key index
# and the batching writer all meet here, which tsan_stress (library only)
# cannot reach.  Fails on any TSan report, a daemon that does not exit
# cleanly, or a line that did not arrive.  Run by the TSan stage of
# scripts/test.sh (CTest registers it only in KL_SANITIZE=thread builds).
set -euo pipefail
bin=$1
work=$(mktemp -d /tmp/klfs-tsan.XXXXXX)
mnt=$work/m
pid=""
# A daemon that died (TSan halts on a report) leaves its mount behind,
# unreachable: it is unmounted whether or not the daemon lives.
cleanup() {
  if grep -q " $mnt " /proc/self/mountinfo 2>/dev/null; then
    fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" 2>/dev/null || true
  fi
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "tsan_fs: $*" >&2; cat "$work"/tsan.* "$work/log" 2>/dev/null | head -100 >&2; exit 1; }

mkdir -p "$mnt"
# A small cache and readahead on: eviction and prefetch race the readers.
TSAN_OPTIONS="${TSAN_OPTIONS:-} halt_on_error=1 exitcode=66 log_path=$work/tsan" \
  "$bin" "$work/store" "$mnt" -o cache_mb=2,readahead=4,refresh_ms=50 -f 2>"$work/log" &
pid=$!
for _ in $(seq 1 300); do grep -q " $mnt " /proc/self/mountinfo && break; sleep 0.1; done
grep -q " $mnt " /proc/self/mountinfo || fail "mount failed"

mkdir "$mnt/ks"
lines=3000
writer() { # KEY TAG: appends numbered lines, several per write, closing often
  local i
  for ((i = 1; i <= lines; i += 100)); do
    seq -f "$2 %g" "$i" $((i + 99)) >> "$mnt/ks/$1"
  done
}
reader() { # reads every key whole, from the end and from an offset, until told to stop
  while [ ! -e "$work/stop" ]; do
    for f in "$mnt"/ks/*; do
      cat "$f" > /dev/null || true
      tail -n 5 "$f" > /dev/null || true
      dd if="$f" bs=4096 skip=3 count=2 status=none > /dev/null || true
      getfattr -d "$f" > /dev/null 2>&1 || true
      cat "$f@o=1000" > /dev/null 2>&1 || true
    done
    ls -l "$mnt/ks" > /dev/null
  done
}
writers=()
writer shared a & writers+=($!)
writer shared b & writers+=($!)
writer own1 c & writers+=($!)
writer own2 d & writers+=($!)
reader & r1=$!
reader & r2=$!
for w in "${writers[@]}"; do wait "$w" || fail "a writer failed"; done
touch "$work/stop"
wait "$r1" "$r2"

fusermount3 -u "$mnt"
rc=0
wait "$pid" || rc=$?
pid=""
ls "$work"/tsan.* > /dev/null 2>&1 && fail "ThreadSanitizer reported a problem"
[ "$rc" -eq 0 ] || fail "klstorefs exited with $rc"

# Everything acknowledged is in the store (read back through a fresh mount
# would need TSan again; the store directory is the ground truth).
"$bin" "$work/store" "$mnt" -o ro -f 2>>"$work/log" &
pid=$!
for _ in $(seq 1 300); do grep -q " $mnt " /proc/self/mountinfo && break; sleep 0.1; done
for tag in a b; do
  n=$(grep -c "^$tag " "$mnt/ks/shared") || true
  [ "$n" -eq "$lines" ] || fail "shared: $n lines of writer $tag, expected $lines"
done
[ "$(wc -l < "$mnt/ks/own1")" -eq "$lines" ] || fail "own1 is short"
[ "$(seq -f 'd %g' 1 "$lines" | cmp - "$mnt/ks/own2" && echo same)" = same ] || fail "own2 differs"
fusermount3 -u "$mnt"
wait "$pid" || fail "read-only mount exited badly"
pid=""
ls "$work"/tsan.* > /dev/null 2>&1 && fail "ThreadSanitizer reported a problem"
echo "tsan_fs: ok ($lines lines x 4 writers, 2 readers)"
