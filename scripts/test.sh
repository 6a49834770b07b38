#!/usr/bin/env bash
# Sets up and runs every test: the Swift suites (unit, golden and end-to-end through the real
# binary) and the differential comparison with Hugging Face `tokenizers` on random texts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

# Tests find the shared fixtures (the 17 MB real XLM-R tokenizer) through this variable.
export BGE_M3_FIXTURES="${BGE_M3_FIXTURES:-$(cd .. && pwd)/shared/fixtures}"
if [ ! -f "$BGE_M3_FIXTURES/xlmr-tokenizer/tokenizer.json" ]; then
  echo "test: BGE_M3_FIXTURES=$BGE_M3_FIXTURES has no xlmr-tokenizer/tokenizer.json; point it at the shared fixtures." >&2
  exit 1
fi

# The reference tokenizer for the differential test (pinned to the version the goldens came
# from), the official OpenAI client, and OpenAPI/JSON Schema validators for the server checks.
VENV=.venv-test
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import tokenizers, openai, openapi_spec_validator, jsonschema" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "tokenizers==0.22.1" "openai>=1.40" openapi-spec-validator jsonschema
fi

# One release build serves the tests, the end-to-end runs and the benchmarks.
swift build -c release --build-tests
export BGEM3_BINARY="$PWD/.build/release/bgem3"
swift test -c release --skip-build
"$VENV/bin/python" scripts/tokenizer_differential.py "$BGEM3_BINARY" \
  "$BGE_M3_FIXTURES/xlmr-tokenizer/tokenizer.json" Tests/Fixtures/tiny-bge-m3/tokenizer.json --nfkc-variant --cases 3000
"$VENV/bin/python" scripts/openai_client_check.py "$BGEM3_BINARY" Tests/Fixtures/tiny-bge-m3 Tests/Fixtures/golden/tiny-model-public.json
"$VENV/bin/python" scripts/openapi_conformance.py "$BGEM3_BINARY" Tests/Fixtures/tiny-bge-m3
