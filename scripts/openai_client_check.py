#!/usr/bin/env python3
"""End-to-end check with the official `openai` Python package: starts `bgem3 serve` with the tiny
model on a free loopback port, calls /v1/embeddings with encoding_format float and base64, and
compares the vectors with the FlagEmbedding goldens (1e-4).

Usage: openai_client_check.py BGEM3_BINARY MODEL_DIR GOLDEN_JSON
Prints "openai client: N passed, N failed"; exits 1 on any failure.
"""
import json, re, subprocess, sys, time
from openai import OpenAI

binary, model_dir, golden_path = sys.argv[1:4]
server = subprocess.Popen([binary, "serve", "--model", model_dir, "--bind", "127.0.0.1:0", "--precision", "fp32"], stderr=subprocess.PIPE, text=True)
port = None
deadline = time.time() + 30
while port is None and time.time() < deadline:
    line = server.stderr.readline()
    match = re.search(r"listening.*:(\d+)", line)
    if match:
        port = int(match.group(1))
if port is None:
    server.kill()
    print("openai client: 0 passed, 1 failed (the server did not start)")
    sys.exit(1)

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
    server.terminate()
    code = server.wait(timeout=30)
    if code != 0:
        failed += 1
        print(f"the server exited with {code} after SIGTERM")
print(f"openai client: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
