#!/usr/bin/env python3
"""Short queries over HTTP: one client one at a time, then N concurrent clients.

Starts `bgem3 serve` (BGEM3_BINARY, default .build/release/bgem3) on the model, warms it up, then
1. sends --sequential requests of one --tokens-token text one after another (keep-alive) and
   reports the median and 99th-percentile latency;
2. runs --clients concurrent clients, each sending such requests back to back for --seconds,
   and reports requests/s and the median and 99th-percentile latency.
Texts are token ids, so every request is exactly --tokens tokens with <s> and </s>. Prints one
JSON object; run it alone on the machine, and alternate binaries to compare them.

    scripts/load/short_queries.py --model /tmp/m3synth --clients 8 --seconds 20
"""
import argparse
import http.client
import json
import threading
import time

from loadkit import Server, token_text


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


class Client:
    """One keep-alive connection."""

    def __init__(self, port):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def query(self, body):
        started = time.perf_counter()
        self.connection.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
        return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--precision", default=None)
    arguments = parser.parse_args()
    args = ["--precision", arguments.precision] if arguments.precision else []
    server = Server(arguments.model, env={"BGE_M3_PROBE_CACHE_DIR": "/tmp/bgem3-acceptance-cache"}, args=args)
    try:
        server.wait_ready()
        bodies = [json.dumps({"input": [token_text(arguments.tokens, seed)]}).encode() for seed in range(64)]
        client = Client(server.port)
        for body in bodies[:20]:
            client.query(body)
        sequential = [client.query(bodies[i % len(bodies)]) for i in range(arguments.sequential)]

        latencies, lock, stop = [], threading.Lock(), threading.Event()

        def run(offset):
            own = Client(server.port)
            index = offset
            while not stop.is_set():
                elapsed = own.query(bodies[index % len(bodies)])
                index += 1
                with lock:
                    latencies.append(elapsed)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(arguments.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(arguments.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        result = {
            "tokens": arguments.tokens,
            "sequential_p50_ms": round(percentile(sequential, 0.5) * 1000, 2),
            "sequential_p99_ms": round(percentile(sequential, 0.99) * 1000, 2),
            "clients": arguments.clients,
            "requests_per_s": round(len(latencies) / seconds, 1),
            "concurrent_p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
            "concurrent_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        }
        print(json.dumps(result))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
