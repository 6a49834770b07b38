#!/usr/bin/env python3
"""End-to-end check with the official `openai` Python package: starts `bgem3 serve` with the tiny
model on a free loopback port, calls /v1/embeddings with encoding_format float and base64, and
compares the vectors with the FlagEmbedding goldens (1e-4).

Usage: openai_client.py BGEM3_BINARY MODEL_DIR GOLDEN_JSON
Prints "openai client: N passed, N failed"; exits 1 on any failure.
"""
import json
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from bgem3server import Server  # noqa: E402
from openai import OpenAI  # noqa: E402

binary, model_dir, golden_path = sys.argv[1:4]
server = Server(model_dir, binary=binary, args=["--precision", "fp32"])
port = server.port

passed = failed = 0
try:
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
    cases = [c for c in json.load(open(golden_path))["cases"] if c["max_length"] == 1024][:6]
    for encoding_format in ("float", "base64"):
        result = client.embeddings.create(model="bge-m3", input=[c["text"] for c in cases], encoding_format=encoding_format)
        for case, item in zip(cases, result.data):
            vector = item.embedding
            if isinstance(vector, str):  # older clients hand base64 back undecoded
                import base64, struct
                raw = base64.b64decode(vector)
                vector = list(struct.unpack("<%df" % (len(raw) // 4), raw))
            worst = max(abs(a - b) for a, b in zip(vector, case["dense"]))
            if len(vector) == len(case["dense"]) and worst <= 1e-4:
                passed += 1
            else:
                failed += 1
                print(f"MISMATCH {encoding_format} {case['text'][:40]!r}: max difference {worst}")
        if result.usage.prompt_tokens <= 0:
            failed += 1
            print("usage.prompt_tokens is not positive")
finally:
    code = server.stop(timeout=30)
    if code != 0:
        failed += 1
        print(f"the server exited with {code} after SIGTERM")
print(f"openai client: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
