#!/usr/bin/env python3
"""Starts `bgem3 serve` with the tiny model, validates its /openapi.json as OpenAPI 3.1, and checks
that every route's real response (and an error response) conforms to the document's schemas.

Usage: openapi_conformance.py BGEM3_BINARY MODEL_DIR
Prints "openapi: N passed, N failed"; exits 1 on any failure.
"""
import json, urllib.request, urllib.error
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from bgem3server import Server  # noqa: E402
from jsonschema import Draft202012Validator  # noqa: E402
from openapi_spec_validator import validate as validate_spec  # noqa: E402

binary, model_dir = sys.argv[1:3]
server = Server(model_dir, binary=binary, args=["--precision", "fp32"])
port = server.port


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


passed = failed = 0
def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name} {detail}")

try:
    server.wait_ready(timeout=60)
    status, _, raw = call("GET", "/openapi.json")
    document = json.loads(raw)
    try:
        validate_spec(document)
        check("document is valid OpenAPI", True)
    except Exception as error:
        check("document is valid OpenAPI", False, str(error)[:500])

    def conforms(path, method, status, payload, content="application/json"):
        operation = document["paths"][path][method.lower()]
        response = operation["responses"].get(str(status))
        if response is None:
            check(f"{method} {path} {status}", False, "status not documented")
            return
        schema = response["content"][content]["schema"]
        if content != "application/json":
            check(f"{method} {path} {status}", isinstance(payload, str))
            return
        validator = Draft202012Validator({**schema, "components": document["components"]})
        errors = sorted(validator.iter_errors(payload), key=str)
        check(f"{method} {path} {status}", not errors, "; ".join(e.message for e in errors[:3]))

    requests = [
        ("POST", "/v1/embeddings", {"input": ["hello", "world"]}),
        ("POST", "/v1/embeddings", {"input": "hello", "encoding_format": "base64", "dimensions": 16}),
        ("POST", "/v1/embeddings", {"input": [[10, 11, 12]]}),  # token ids: 400 token_ids_not_accepted by default
        ("POST", "/embeddings", {"input": "hello"}),
        ("POST", "/embed", {"inputs": ["hello", "world"], "truncate": True, "normalize": False}),
        ("POST", "/", {"inputs": "hello"}),
        ("POST", "/embed_sparse", {"inputs": ["hello world"]}),
        ("POST", "/embed_all", {"inputs": "hello world", "truncation_direction": "Left", "truncate": True}),
        ("POST", "/rerank", {"query": "what", "texts": ["a", "b"], "return_text": True, "raw_scores": True}),
        ("POST", "/rerank", {"query": "what", "documents": [{"text": "a"}, "b"], "top_n": 1}),
        ("POST", "/v2/rerank", {"model": "x", "query": "what", "documents": ["a", "b"], "top_n": 2, "max_tokens_per_doc": 64}),
        ("POST", "/decode", {"ids": [0, 35378, 2]}),
        ("POST", "/decode", {"ids": [[0, 35378, 2], [0, 2]], "skip_special_tokens": False}),
        ("POST", "/api/embed", {"model": "bge-m3", "input": ["hello", "world"], "keep_alive": "5m", "options": {"num_ctx": 8192}}),
        ("POST", "/api/embeddings", {"model": "bge-m3", "prompt": "hello"}),
        ("POST", "/tokenize", {"inputs": "Hello world", "prompt_name": None}),
        ("POST", "/v1/m3/embeddings", {"input": ["hello"], "sparse": True, "colbert": True, "sparse_options": {"return_tokens": True, "top_k": 2}}),
        ("POST", "/v1/m3/embeddings", {"input": "hello", "colbert": True, "colbert_format": "base64_f16"}),
        ("POST", "/v1/sparse-embeddings", {"input": ["hello world"], "return_tokens": True}),
        ("POST", "/v1/embeddings:both", {"input": "hello"}),
        ("POST", "/v1/score", {"query": "what", "documents": ["a", "b"]}),
        ("POST", "/v1/rerank", {"query": "what", "documents": ["a", "b"], "top_n": 1, "return_documents": True}),
        ("POST", "/tokenize", {"input": ["Hello world"], "add_special_tokens": False}),
        ("GET", "/health", None), ("GET", "/ready", None), ("GET", "/live", None), ("GET", "/v1/models", None),
        ("GET", "/info", None), ("GET", "/metrics", None),
        ("POST", "/v1/embeddings", {"input": []}),
        ("POST", "/v1/m3/embeddings", {"input": 5}),
    ]
    for method, path, body in requests:
        status, content_type, raw = call(method, path, body)
        if "json" in content_type:
            conforms(path, method, status, json.loads(raw))
        else:
            conforms(path, method, status, raw.decode(), content="text/plain")
    for path, entry in document["paths"].items():
        for method in entry:
            check(f"{method.upper()} {path} has a test request", any(p == path and m == method.upper() for m, p, _ in requests) or path == "/openapi.json")
finally:
    server.stop(timeout=30)
print(f"openapi: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
