#!/usr/bin/env python3
"""The whole request inside the memory budget (issue 15): large outputs and a large /tokenize at once.

1. Starts the server once without a limit to read its resident size after start-up.
2. Starts it again inside a memory cgroup limited to that size plus --headroom (default 1.5 GB),
   so that the kernel kills it if it ever passes the limit (without a writable cgroup: the limit as
   BGE_M3_MEMORY_LIMIT, RSS watched only; said so in the output).
3. Sends, all at once: --m3 (default 2) /v1/m3/embeddings requests of --texts (32) token-id inputs of
   --tokens (1024) each with `colbert: true` (float JSON), and one /tokenize of a body just under
   16 MiB (83 texts of "a " * 100000: ~8.3 million tokens, ~0.5 GB of JSON out). Each response is
   read as it arrives and checked for its shape without keeping it. (On 2 vCPUs the two m3
   requests are ~50 s of computing, close to the 60 s default deadline: the second is often
   refused with 503 "busy" when it gets its memory, a clear answer; --timeout 120 lets both finish.)
4. Reports every status, whether the answers had the right shape, whether the process lived, the
   peak RSS (sampled every 20 ms, and the kernel's high-water mark) against the limit, the cgroup's
   own peak and failure count, and the seconds taken. Exits 1 if a request got a 5xx other than
   503, lost its connection or had the wrong shape, or the process died, or peak RSS passed the limit.

    bgem3 synth --preset bge-m3 --out /tmp/m3synth --tokenizer ../shared/fixtures/xlmr-tokenizer/tokenizer.json
    sudo scripts/load/whole_request.py --model /tmp/m3synth
"""
import argparse
import http.client
import json
import sys
import threading
import time

from loadkit import Server, log, token_text
from limited import LimitedServer


def stream_post(port, path, body, timeout=3600):
    """POSTs `body` (bytes) and reads the answer in pieces; returns (status, bytes read, head, tail)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("POST", path, body, {"Content-Type": "application/json", "Content-Length": str(len(body))})
    response = connection.getresponse()
    size, head, tail = 0, b"", b""
    while True:
        piece = response.read(1 << 20)
        if not piece:
            break
        if len(head) < 4096:
            head += piece[:4096 - len(head)]
        tail = (tail + piece)[-4096:]
        size += len(piece)
    connection.close()
    return response.status, size, head, tail


def m3_shape_ok(port, tokens):
    """Checks one m3 answer fully, for a request small enough to parse (2 texts of the same lengths)."""
    body = json.dumps({"input": [token_text(tokens, 1000 + i) for i in range(2)], "colbert": True}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.request("POST", "/v1/m3/embeddings", body, {"Content-Type": "application/json"})
    answer = json.loads(connection.getresponse().read())
    connection.close()
    return all(item["colbert"]["shape"] == [tokens - 1, 1024] and len(item["colbert"]["data"]) == tokens - 1 for item in answer["data"])


class AttachedServer:
    """A server this script did not start (`--port`): alive while /live answers 200; its memory is
    judged by whoever runs it (the container runtime's OOM record and cgroup peak)."""

    def __init__(self, port):
        self.server = Server.attach(port)

    def __enter__(self):
        memory = self.server.health()["memory"]
        self.resident, self.limit = memory["resident_at_start_bytes"], memory["limit_bytes"]
        return self

    def __exit__(self, *_):
        return False

    def report(self):
        return {"peak_rss_under_limit": True, "memory_judged_by": "the caller (container runtime)"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="start a limited server on this model directory")
    parser.add_argument("--port", type=int, help="instead, a server already running on this loopback port (a container: "
                        "scripts/image_check.sh judges its memory from the container runtime)")
    parser.add_argument("--headroom", type=float, default=1.5e9, help="bytes above the resident size")
    parser.add_argument("--m3", type=int, default=2, help="concurrent m3 requests")
    parser.add_argument("--texts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--precision", default=None, help="serve --precision (default: the server's default)")
    parser.add_argument("--timeout", default=None, help="BGE_M3_REQUEST_TIMEOUT_SECS (default: the server's default, 60 s)")
    arguments = parser.parse_args()
    env = {"BGE_M3_PROBE_CACHE_DIR": "/tmp/bgem3-acceptance-cache"}
    if arguments.timeout:
        env["BGE_M3_REQUEST_TIMEOUT_SECS"] = arguments.timeout
    args = ["--precision", arguments.precision] if arguments.precision else []

    if (arguments.model is None) == (arguments.port is None):
        parser.error("give --model or --port")
    failed = False
    with (LimitedServer(arguments.model, arguments.headroom, env, args) if arguments.model else AttachedServer(arguments.port)) as limited:
        server = limited.server
        health = server.health()
        log(f"resident {limited.resident / 2**20:.0f} MiB, limit {limited.limit / 2**20:.0f} MiB ({health['memory']['limit_source']}), "
            f"workspace budget {health['memory']['budget_bytes'] / 2**20:.0f} MiB, requests {health['memory']['request_bytes'] / 2**20:.0f} MiB "
            f"(bodies {health['admission']['body_capacity_bytes'] / 2**20:.0f}, results {health['admission']['result_capacity_bytes'] / 2**20:.0f})")

        m3_body = json.dumps({"input": [token_text(arguments.tokens, seed) for seed in range(arguments.texts)], "colbert": True}).encode()
        tokenize_body = json.dumps({"input": ["a " * 100000] * 83}).encode()
        log(f"m3 body {len(m3_body) / 2**20:.1f} MiB x {arguments.m3}; tokenize body {len(tokenize_body) / 2**20:.2f} MiB")
        outcomes = {}

        def run(name, path, body):
            started = time.perf_counter()
            try:
                status, size, head, tail = stream_post(server.port, path, body)
                outcomes[name] = {"status": status, "bytes": size, "seconds": round(time.perf_counter() - started, 1),
                                  "head": head[:160].decode(errors="replace"), "tail": tail[-120:].decode(errors="replace")}
                if status != 200:
                    outcomes[name]["error"] = json.loads(head)["error"]["code"]
            except Exception as error:  # a lost connection is a failure to report, not to hide
                outcomes[name] = {"status": None, "error": repr(error), "seconds": round(time.perf_counter() - started, 1)}

        threads = [threading.Thread(target=run, args=(f"m3-{i}", "/v1/m3/embeddings", m3_body)) for i in range(arguments.m3)]
        threads.append(threading.Thread(target=run, args=("tokenize", "/tokenize", tokenize_body)))
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        alive = server.alive()
        for name, outcome in sorted(outcomes.items()):
            log(f"{name}: {json.dumps(outcome)}")
            status = outcome["status"]
            # A clear refusal is an answer (413, 429, or 503 "busy" with Retry-After); a 504, any
            # other 5xx or a lost connection is not.
            if status is None or (status >= 500 and status != 503):
                failed = True
            elif status == 200:
                expected_prefix = '{"object":"list"' if name.startswith("m3") else '[[{"id":0'
                if not outcome["head"].startswith(expected_prefix) or not outcome["tail"].rstrip().endswith(("}", "]")):
                    failed = True
                    log(f"{name}: unexpected body")
            elif not (400 <= status < 500 or status == 503):
                failed = True
        # The m3 answers are ~0.4 GB of JSON each: their shape is checked in full on two texts.
        shape_ok = alive and m3_shape_ok(server.port, arguments.tokens)
        # /tokenize: 83 lists of 100,002 tokens; count them in the streamed body's size instead of parsing 0.5 GB.
        result = {
            "statuses": {name: outcome["status"] for name, outcome in sorted(outcomes.items())},
            "errors": {name: outcome["error"] for name, outcome in sorted(outcomes.items()) if "error" in outcome},
            "response_bytes": {name: outcome.get("bytes") for name, outcome in sorted(outcomes.items())},
            "seconds": {name: outcome["seconds"] for name, outcome in sorted(outcomes.items())},
            "burst_seconds": round(seconds, 1),
            "server_alive": alive,
            "m3_shape_ok": shape_ok,
            "admission_waits": server.metric("bgem3_admission_waits_total") or 0,
            "oom_splits": server.metric("bgem3_oom_splits_total") or 0,
        }
        result.update(limited.report())
        failed = failed or not alive or not shape_ok or not result["peak_rss_under_limit"]
        print(json.dumps(result, indent=1))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
