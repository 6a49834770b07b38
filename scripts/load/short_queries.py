#!/usr/bin/env python3
"""Short queries over HTTP: one client one at a time, then N concurrent clients.

Starts `bgem3 serve` (BGEM3_BINARY, default .build/release/bgem3) on the model, warms it up, then
1. sends --sequential requests of one --tokens-token text one after another (keep-alive) and
   reports the median and 99th-percentile latency;
2. runs --clients concurrent clients, each sending such requests back to back for --warm-up
   seconds (not counted: batch shapes the engine has not seen yet) and then --seconds, and reports
   requests/s and the median and 99th-percentile latency;
3. before the server starts and again after it stops, runs `bgem3 bench --workloads 1x128` at the
   same precision (--threads 2 unless given) and reports the served token rate as a fraction of
   that engine's one-sequence rate, the mean of the two (issue 19's yardstick: at least 0.9, with
   p99 at most 3x p50). This machine's speed drifts by a fifth within minutes, so one measurement
   of the rate on one side of the load misplaces the fraction by as much; both are printed.
   Also the mean sequences per batch over the counted seconds (from /metrics): how the clients'
   queries were grouped.
Texts are token ids, so every request is exactly --tokens tokens with <s> and </s>. Prints one
JSON object; run it alone on the machine, and alternate binaries to compare them.

    scripts/load/short_queries.py --model /tmp/m3synth --clients 8 --seconds 20 [--workers 2]
"""
import argparse
import http.client
import json
import os
import subprocess
import threading
import time

from loadkit import Server, token_text
from bgem3server import default_binary


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def engine_rate(arguments):
    """The engine's 1x128 tokens/s at this precision and thread count, from `bgem3 bench`."""
    bench = json.loads(subprocess.run([default_binary(), "bench", "--model", arguments.model, "--precision", arguments.precision,
                                       "--workloads", "1x128", "--runs", "7", "--threads", str(arguments.threads), "--json"],
                                      capture_output=True, text=True, check=True).stdout)
    return bench["workloads"][0]["tokens_per_s"]


def cpu_seconds(pid):
    """User and system CPU seconds of a process so far, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_counts(server):
    """Sequences batched so far and batches run so far, from /metrics."""
    return server.metric("bgem3_batch_size_sum") or 0, server.metric("bgem3_batch_size_count") or 0


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
    parser.add_argument("--warm-up", type=float, default=3)
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="the server's BGE_M3_WORKERS (the engine's rate is still one pass on all threads)")
    arguments = parser.parse_args()
    rate_before = engine_rate(arguments)
    args = ["--precision", arguments.precision, "--threads", str(arguments.threads), "--workers", str(arguments.workers)]
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
        for thread in threads:
            thread.start()
        time.sleep(arguments.warm_up)
        with lock:
            latencies.clear()
        batches_before = batch_counts(server)
        client_before, server_before = os.times(), cpu_seconds(server.process.pid)
        started = time.perf_counter()
        time.sleep(arguments.seconds)
        client_after, server_after = os.times(), cpu_seconds(server.process.pid)
        batches_after = batch_counts(server)
        stop.set()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        served = len(latencies)  # requests finished after the warm-up
    finally:
        server.stop()
    rate_after = engine_rate(arguments)
    engine_tokens_per_s = (rate_before + rate_after) / 2
    result = {
        "tokens": arguments.tokens,
        "sequential_p50_ms": round(percentile(sequential, 0.5) * 1000, 2),
        "sequential_p99_ms": round(percentile(sequential, 0.99) * 1000, 2),
        "clients": arguments.clients,
        "workers": arguments.workers,
        "requests_per_s": round(served / seconds, 1),
        "concurrent_p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "concurrent_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "p99_over_p50": round(percentile(latencies, 0.99) / percentile(latencies, 0.5), 2),
        "client_cpu_cores": round((client_after.user + client_after.system - client_before.user - client_before.system) / seconds, 3),
        "server_cpu_cores": round((server_after - server_before) / seconds, 3),
        "sequences_per_batch": round((batches_after[0] - batches_before[0]) / max(1, batches_after[1] - batches_before[1]), 2),
        "engine_1x128_tokens_per_s": round(engine_tokens_per_s, 1),
        "engine_1x128_tokens_per_s_before_after": [round(rate_before, 1), round(rate_after, 1)],
        "served_fraction_of_1x128_rate": round(served / seconds * arguments.tokens / engine_tokens_per_s, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
