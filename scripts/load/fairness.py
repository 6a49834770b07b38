#!/usr/bin/env python3
"""Fairness (issue 5): does a one-sentence request get through while a bulk request is running?

Measures the one-sentence latency on an idle server (median of 15, each after a 50 ms pause, as
the requests behind the bulk one are; back-to-back requests are reported too). Then, for each round: sends a
bulk request of 64 texts of 8192 tokens (truncated to the model's limit), waits until it is
admitted, times one-sentence requests sent behind it, and disconnects the bulk client, which
also checks that the server drops the work of a client that went away. Prints one JSON object.

    scripts/load/fairness.py --model Tests/Fixtures/tiny-bge-m3
    scripts/load/fairness.py --model /tmp/m3synth --rounds 2 --sentences 5   # bgem3 synth --preset bge-m3
"""
import argparse
import json
import socket
import time

import os
from loadkit import Server, log, median, sentence, token_text


TRACE = os.environ.get("FAIRNESS_TRACE") == "1"


def one_sentence(server, seed):
    started = time.perf_counter()
    status, _ = server.post("/v1/embeddings", {"input": sentence(seed)})
    assert status == 200, status
    elapsed = time.perf_counter() - started
    if TRACE:
        log(f"  {elapsed * 1000:.1f} ms (server: queue {server.last_headers.get('x-queue-time-ms')} ms, inference {server.last_headers.get('x-inference-time-ms')} ms)")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--bulk-texts", type=int, default=64)
    parser.add_argument("--bulk-tokens", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--sentences", type=int, default=1, help="one-sentence requests per round, one after another")
    arguments = parser.parse_args()

    server = Server(arguments.model, env={"BGE_M3_REQUEST_TIMEOUT_SECS": "7200", "BGE_M3_PROBE_CACHE_DIR": "/tmp/bgem3-probe-cache"})
    try:
        server.wait_ready()
        for seed in range(3):
            one_sentence(server, seed)  # warm-up
        # Idle samples follow the same rhythm as the busy ones (a 50 ms pause, then the request), so
        # both include the cost of waking the client's and server's I/O threads after a pause.
        idle = []
        for seed in range(15):
            time.sleep(0.05)
            idle.append(one_sentence(server, 100 + seed))
        idle_back_to_back = [one_sentence(server, 200 + seed) for seed in range(15)]
        log(f"idle one-sentence latency: median {median(idle) * 1000:.1f} ms")
        body = json.dumps({"input": [token_text(arguments.bulk_tokens, seed) for seed in range(arguments.bulk_texts)]}).encode()
        busy = []
        for round_index in range(arguments.rounds):
            # The bulk request on a raw socket, so the script can disconnect it mid-way.
            bulk = socket.create_connection(("127.0.0.1", server.port))
            bulk.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            while server.health().get("queue_depth", 0) < 1:
                time.sleep(0.001)
            time.sleep(0.05)  # past the batch window: the bulk batch is computing
            for seed in range(arguments.sentences):
                busy.append(one_sentence(server, 1000 * round_index + seed))
            bulk.close()
            # Wait for the server to drop the rest of the bulk request (its running batch finishes first).
            while server.health().get("queue_depth", 0) > 0:
                time.sleep(0.05)
        log(f"one-sentence latency behind the bulk request: median {median(busy) * 1000:.1f} ms, max {max(busy) * 1000:.1f} ms")
        result = {
            "model": arguments.model,
            "idle_median_ms": round(median(idle) * 1000, 2),
            "idle_back_to_back_median_ms": round(median(idle_back_to_back) * 1000, 2),
            "busy_median_ms": round(median(busy) * 1000, 2),
            "busy_max_ms": round(max(busy) * 1000, 2),
            "ratio_median": round(median(busy) / median(idle), 2),
            "samples": len(busy),
            "bulk_requests_abandoned": server.metric("bgem3_abandoned_requests_total") or 0,
            "batches": server.metric("bgem3_batch_size_count"),
        }
        print(json.dumps(result))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
