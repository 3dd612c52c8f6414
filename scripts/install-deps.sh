#!/usr/bin/env bash
# Installs the Debian 12 packages klstore needs to build, test and benchmark.
# Idempotent: packages already present are skipped, so CI and developers can call it every run.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libfuse3-dev fuse3 attr libcurl4-openssl-dev libssl-dev
            libxml2-dev librdkafka-dev libcriterion-dev libinih-dev libjansson-dev libmicrohttpd-dev
            scdoc)
test_pkgs=(kcat curl ceph-mon ceph-osd radosgw man-db groff-base clang-format)

fuzz_pkgs=(clang libclang-rt-14-dev)

want=("${build_pkgs[@]}")
case "${1:-}" in
  --build-only) ;;
  --fuzz) want+=("${fuzz_pkgs[@]}") ;;                     # scripts/fuzz.sh
  *) want+=("${test_pkgs[@]}" "${fuzz_pkgs[@]}") ;;        # the suite runs the fuzzers' seeds
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
