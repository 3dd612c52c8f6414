#!/usr/bin/env bash
# Builds the Debian package of klstore (everything `cmake --install`
# installs: programs, libklstore.so/.a, klstore.h, klstore.pc, man pages,
# the bridge's systemd unit, examples) with CPack:
#   scripts/package.sh [BUILD_DIR]     (default: build-pkg)
# Prints the path of the .deb and its contents.  Install it with
# `apt install ./klstore_*.deb` (dependencies come from dpkg-shlibdeps).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/build-pkg}
bash "$root/scripts/install-deps.sh" --build-only
KL_BUILD_TYPE=Release bash "$root/scripts/build.sh" "$dir" -DKL_BUILD_TESTS=OFF \
  -DCMAKE_INSTALL_PREFIX=/usr
(cd "$dir" && cpack -G DEB >"$dir/cpack.log" 2>&1) || { tail -20 "$dir/cpack.log" >&2; exit 1; }
deb=$(ls -t "$dir"/klstore_*.deb | head -1)
echo "$deb"
dpkg-deb --field "$deb"
dpkg-deb --contents "$deb" | awk '{print $6}'
