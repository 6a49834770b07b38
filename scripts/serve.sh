#!/usr/bin/env bash
# Sets up, builds and runs the bgem3 server: scripts/serve.sh [--model DIR|REPO] [serve options…]
# Without --model it serves BAAI/bge-m3 from the Hugging Face cache.
# Every option can also come from its BGE_M3_* variable (see `bgem3 serve --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
swift build -c release --product bgem3
exec .build/release/bgem3 serve "$@"
