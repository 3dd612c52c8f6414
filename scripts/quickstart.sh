#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine, on the embedded local store (no
# server needed): installs what klstore needs, builds it, mounts klstorefs on
# the local store and shows appending to and reading a log with ordinary
# shell tools, then the same log through the klstore CLI.
#   scripts/quickstart.sh            (store: ~/.local/share/klstore)
#   KL_STORE=/some/dir KL_MNT=/mnt/kl scripts/quickstart.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh --build-only
bash scripts/build.sh "$root/build"
bin=$root/build
cli=$bin/store/cli/klstore
fs=$bin/fs/klstorefs
store=${KL_STORE:-${XDG_DATA_HOME:-$HOME/.local/share}/klstore}
mnt=${KL_MNT:-/tmp/klstore-quickstart}
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

echo "klstore built in $bin; store: $store"
if [ -x "$fs" ] && [ -e /dev/fuse ]; then
  mkdir -p "$mnt"
  say "klstorefs $store $mnt"
  "$fs" "$store" "$mnt"
  trap 'fusermount3 -u "$mnt" 2>/dev/null || true' EXIT
  say "mkdir -p $mnt/demo"
  mkdir -p "$mnt/demo"
  say "echo \"deployed \$(date -Is)\" >> $mnt/demo/events   (x3)"
  for i in 1 2 3; do echo "deployed $(date -Is) #$i" >> "$mnt/demo/events"; done
  say "cat $mnt/demo/events"
  cat "$mnt/demo/events"
  say "wc -l $mnt/demo/events; ls -l $mnt/demo"
  wc -l "$mnt/demo/events"
  ls -l "$mnt/demo"
  say "getfattr -d $mnt/demo/events"
  getfattr -d "$mnt/demo/events"
  say "tail -n 2 '$mnt/demo/events@o=1'   (time travel: from offset 1)"
  tail -n 2 "$mnt/demo/events@o=1"
  say "grep -E '^klstorefs_(appended|published)_records_total' $mnt/.klstore/stats"
  grep -E '^klstorefs_(appended|published)_records_total' "$mnt/.klstore/stats"
  echo
  echo "Try: tail -f $mnt/demo/events   (and append from another shell)"
  echo "Unmount with: fusermount3 -u $mnt"
  trap - EXIT
else
  echo "(klstorefs not available here: showing the CLI only)"
  "$cli" --store "$store" create-keyspace demo 2>/dev/null || true
  printf 'deployed %s\n' "$(date -Is)" | "$cli" --store "$store" append demo events
fi
say "klstore --store $store read demo events --format json"
"$cli" --store "$store" read demo events --format json
say "klstore --store $store ls demo"
"$cli" --store "$store" ls demo
