#!/usr/bin/env bash
# Installs what building and testing bgem3 needs on a Debian machine, idempotently.
# Sourced by scripts/test.sh and scripts/serve.sh; safe to run on its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages the project needs: oneDNN (the engine's matrix products) and Python for the
# reference comparisons. The Swift toolchain itself is not a Debian package.
DEBIAN_PACKAGES=(python3 python3-venv git ca-certificates libdnnl-dev)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; exit 1; fi
}

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

if ! command -v swift >/dev/null; then
  for candidate in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
    [ -x "$candidate/swift" ] && export PATH="$candidate:$PATH" && break
  done
fi
if ! command -v swift >/dev/null; then
  echo "setup: no Swift toolchain found. bgem3 needs Swift 6 (swift.org/install/linux); put it on PATH." >&2
  exit 1
fi
