#!/usr/bin/env bash
# Builds the release binary the container image ships, and checks it: scripts/build-release.sh OUT_DIR
# The Dockerfile's build stage runs exactly this; so does CI (scripts/test.sh), outside Docker.
#  1. installs the build dependencies (scripts/setup.sh),
#  2. builds bgem3 with the Swift runtime linked statically (the runtime image has no toolchain),
#  3. copies it to OUT_DIR,
#  4. checks that every shared library it loads comes from a package in deploy/runtime-packages.txt
#     (or their dependencies, or the base image), so the slim runtime stage can run it,
#  5. runs it: `bgem3 --version` and `bgem3 health --help`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${1:?usage: scripts/build-release.sh OUT_DIR}"
source scripts/setup.sh

# A build directory of its own: linking the Swift runtime statically compiles everything with other
# flags, and the test build (which cannot link statically: no static Testing module) keeps .build.
swift build -c release --product bgem3 --static-swift-stdlib --scratch-path .build-static
mkdir -p "$OUT"
cp .build-static/release/bgem3 "$OUT/bgem3"
strip --strip-debug "$OUT/bgem3" 2>/dev/null || true

# Packages present in debian:bookworm-slim, and those the runtime list brings with it.
mapfile -t listed < <(grep -v '^#' deploy/runtime-packages.txt | grep -v '^$')
allowed=" libc6 libgcc-s1 zlib1g ${listed[*]} "
for package in "${listed[@]}"; do
  for dependency in $(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
                        --no-replaces --no-enhances "$package" 2>/dev/null | grep -v '^ ' | grep -v '^<' | sed 's/:any$//'); do
    allowed+="$dependency "
  done
done
status=0
while read -r library; do
  owner=""
  for candidate in "$library" "$(readlink -f "$library")" "/usr${library}" "${library#/usr}"; do
    owner=$(dpkg -S "$candidate" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$owner" ] && break
  done
  if [ -z "$owner" ]; then
    echo "build-release: $OUT/bgem3 loads $library, which no Debian package provides" >&2; status=1
  elif [[ "$allowed" != *" $owner "* ]]; then
    echo "build-release: $OUT/bgem3 loads $library from $owner; add it to deploy/runtime-packages.txt" >&2; status=1
  fi
done < <(ldd "$OUT/bgem3" | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
[ "$status" = 0 ] || exit 1

"$OUT/bgem3" --version
"$OUT/bgem3" health --help >/dev/null
echo "build-release: $OUT/bgem3 ($(du -h "$OUT/bgem3" | cut -f1)) needs only: ${listed[*]}"
