"""Fuzzes a real server: schemathesis over /openapi.json, then random bytes and random Unicode.

Usage: fuzz.py BGEM3_BINARY MODEL_DIR [--examples N] [--random N]

1. schemathesis (from PyPI) generates requests for every operation of the server's own OpenAPI
   document (its coverage and fuzzing phases) and checks that none gets a 5xx;
2. --random bodies of random bytes (any length up to 4 KiB, with and without a JSON content type)
   and --random JSON bodies whose strings are random Unicode (every plane, lone surrogates written
   as \\ud800 escapes, controls, NUL) go to /tokenize and each embeddings route: each must get an
   answer below 500 (a 200 or an OpenAI-shaped 4xx error), on a connection the server keeps
   serving;
3. the server must still be alive, /health must say ok, and a normal request must still be right.

Prints the counts (requests tried, failures) and exits 1 on any failure."""
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from bgem3server import Server  # noqa: E402

ROUTES = ["/tokenize", "/v1/embeddings", "/v1/m3/embeddings", "/v1/sparse-embeddings", "/v1/embeddings:both", "/v1/score", "/v1/rerank",
          "/embed", "/embed_sparse", "/embed_all", "/rerank", "/v2/rerank", "/decode", "/api/embed", "/api/embeddings", "/embeddings"]


def random_string(generator):
    pieces = []
    for _ in range(generator.randrange(0, 40)):
        kind = generator.random()
        if kind < 0.3:
            pieces.append(chr(generator.randrange(0x20, 0x7F)))
        elif kind < 0.5:
            pieces.append(chr(generator.randrange(0x80, 0x3000)))
        elif kind < 0.65:
            pieces.append(chr(generator.randrange(0x10000, 0x110000)))
        elif kind < 0.75:
            pieces.append(chr(generator.randrange(0, 0x20)))
        elif kind < 0.85:
            pieces.append(chr(generator.choice([0xFEFF, 0x200B, 0x0301, 0xFFFD, 0x2028, 0xE000, 0xFFFF])))
        elif kind < 0.99:
            pieces.append(" ")
        else:
            pieces.append(f"\\u{generator.randrange(0xD800, 0xE000):04x}")  # a lone surrogate, escaped
    return "".join(pieces)


def json_literal(text):
    """A JSON string literal that keeps the raw \\uXXXX surrogate escapes produced above."""
    escaped = json.dumps(text.replace("\\u", "\u0000SURROGATE"), ensure_ascii=False)
    return escaped.replace("\\u0000SURROGATE", "\\u")


def random_json_body(route, generator):
    strings = [json_literal(random_string(generator)) for _ in range(generator.randrange(1, 4))]
    text = strings[0]
    array = "[" + ",".join(strings) + "]"
    if route in ("/v1/score", "/v1/rerank", "/v2/rerank"):
        return f'{{"query": {text}, "documents": {array}}}'
    if route == "/rerank":
        return f'{{"query": {text}, "texts": {array}, "return_text": true}}'
    if route in ("/embed", "/embed_sparse", "/embed_all"):
        return f'{{"inputs": {array if generator.random() < 0.5 else text}, "truncate": true}}'
    if route == "/decode":
        return '{"ids": [' + ",".join(str(generator.randrange(-5, 300000)) for _ in range(generator.randrange(0, 20))) + "]}"
    if route == "/api/embeddings":
        return f'{{"model": "bge-m3", "prompt": {text}}}'
    if route == "/v1/m3/embeddings":
        return f'{{"input": {array}, "sparse": true, "colbert": true, "sparse_options": {{"return_tokens": true}}}}'
    if route == "/v1/sparse-embeddings":
        return f'{{"input": {array}, "return_tokens": true}}'
    return f'{{"input": {array if generator.random() < 0.5 else text}}}'


def main():
    binary, model = sys.argv[1], sys.argv[2]
    examples = int(sys.argv[sys.argv.index("--examples") + 1]) if "--examples" in sys.argv else 30
    count = int(sys.argv[sys.argv.index("--random") + 1]) if "--random" in sys.argv else 300
    server = Server(model, binary=binary, args=["--precision", "fp32"])
    port = server.port
    failures = []
    tried = 0
    try:
        server.wait_ready(timeout=60)

        # 1. schemathesis, every operation of the server's own OpenAPI document.
        schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
        report = tempfile.mktemp(suffix=".json")
        run = subprocess.run([schemathesis, "run", f"http://127.0.0.1:{port}/openapi.json", "--checks", "not_a_server_error",
                              "--max-examples", str(examples), "--seed", "1", "--workers", "1", "--generation-database", "none",
                              "--no-color", "--report", "json", "--report-json-path", report], capture_output=True, text=True)
        summary = [line for line in run.stdout.splitlines() if "generated" in line or "issues found" in line or "failures" in line.lower()]
        print("fuzz: schemathesis:", "; ".join(s.strip() for s in summary) or run.stdout[-500:])
        if run.returncode != 0:
            failures.append(f"schemathesis found server errors (exit {run.returncode}):\n{run.stdout[-4000:]}")

        # 2. Random bytes and random Unicode into each route.
        generator = random.Random(20261127)
        statuses = {}
        for index in range(count):
            route = ROUTES[index % len(ROUTES)]
            if index % 2 == 0:
                body = bytes(generator.randrange(256) for _ in range(generator.randrange(0, 4096)))
                content_type = generator.choice(["application/json", "text/plain", None])
            else:
                body = random_json_body(route, generator).encode("utf-8", "surrogatepass")
                content_type = "application/json"
            tried += 1
            try:
                status, _, payload = server.request("POST", route, body, {"Content-Type": content_type} if content_type else {}, timeout=60)
            except OSError as error:
                failures.append(f"{route}: connection failed ({error}) for body {body[:80]!r}")
                continue
            statuses[status] = statuses.get(status, 0) + 1
            if status >= 500:
                failures.append(f"{route}: {status} {payload[:200]!r} for body {body[:120]!r}")
            elif status != 200:
                try:
                    error = json.loads(payload)["error"]
                    assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)
                except Exception:
                    failures.append(f"{route}: {status} without an OpenAI-shaped error: {payload[:200]!r}")
        print(f"fuzz: {tried} random requests, statuses {dict(sorted(statuses.items()))}")

        # 3. Still serving, and still right.
        if not server.alive():
            failures.append(f"the server exited with {server.process.returncode}")
        else:
            health = server.health()
            if health.get("status") != "ok":
                failures.append(f"/health after fuzzing: {health}")
            status, payload = server.post("/v1/embeddings", {"input": "still here"}, timeout=60)
            vector = json.loads(payload)["data"][0]["embedding"] if status == 200 else []
            if status != 200 or abs(sum(v * v for v in vector) - 1) > 1e-3:
                failures.append(f"a normal request after fuzzing: {status} {payload[:200]!r}")
    finally:
        server.stop()
    for failure in failures:
        print("fuzz: FAILED:", failure, file=sys.stderr)
    if failures:
        print(f"fuzz: server log in {server.log.name}", file=sys.stderr)
        sys.exit(1)
    print(f"fuzz: passed (no 5xx, no crash; {tried} random requests plus schemathesis)")


if __name__ == "__main__":
    main()
