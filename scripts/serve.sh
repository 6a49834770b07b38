#!/usr/bin/env bash
# Sets up, builds and runs the bgem3 server: scripts/serve.sh [--model DIR] [serve options…]
# Every option can also come from its BGE_M3_* variable (see `bgem3 serve --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
swift build -c release --product bgem3
if [[ " $* " != *" --model "* && -z "${BGE_M3_MODEL:-}" ]]; then
  cat >&2 <<'MSG'
serve: give the model: scripts/serve.sh --model /path/to/bge-m3 (or BGE_M3_MODEL=…), or a hub id
such as BAAI/bge-m3 that is already in the Hugging Face cache. Downloading from the hub is not
built yet. To try the server with the tiny test model:
  scripts/serve.sh --model Tests/Fixtures/tiny-bge-m3 --bind 127.0.0.1:8081
MSG
  exit 1
fi
exec .build/release/bgem3 serve "$@"
