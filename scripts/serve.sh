#!/usr/bin/env bash
# Sets up, builds and runs the bgem3 server: scripts/serve.sh [serve options…]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
swift build -c release --product bgem3
if ! .build/release/bgem3 --help | grep -qE "^ +serve "; then
  cat >&2 <<'MSG'
serve: this build of bgem3 has no `serve` command yet: the HTTP server is the next step.
What works today: `bgem3 embed` (bulk embedding through the native engine), `bgem3 tokenize`,
`bgem3 bench` and `bgem3 synth` (see README.md).
MSG
  exit 1
fi
exec .build/release/bgem3 serve "$@"
