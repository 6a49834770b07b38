#!/usr/bin/env python3
"""BGE_M3_WORKERS against one worker with all the threads, over HTTP, on two kinds of traffic.

For each --workers value (default 1 and 2), in alternating rounds, starts `bgem3 serve` (BGEM3_BINARY,
default .build/release/bgem3) with --threads T and that many workers, warms it up, then measures
1. bulk: 64 texts of 16-512 tokens (a fixed seed), sent as --bulk-clients concurrent requests of
   64/clients texts each, --bulk-rounds times: tokens/s over the whole run;
2. short: --clients concurrent clients sending one 16-token text each, back to back, for --seconds
   after a warm-up: requests/s, p50 and p99;
and the server's resident memory after both. Prints one JSON object per (workers, round), then the
medians per workers value. Run it alone on the machine.

    scripts/load/workers.py --model /tmp/peer-m3 --threads 2 --workers 1,2 --rounds 2
"""
import argparse
import http.client
import json
import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from loadkit import Server, token_text


def post(port, body):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
    finally:
        connection.close()


def mixed_lengths(count=64, seed=7):
    generator = random.Random(seed)
    return [generator.randint(16, 512) for _ in range(count)]


def bulk(port, lengths, clients, rounds):
    """Tokens/s of `rounds` passes over the texts, split into `clients` concurrent requests."""
    texts = [token_text(length, seed) for seed, length in enumerate(lengths)]
    bodies = [json.dumps({"input": texts[i::clients]}).encode() for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for _ in range(rounds):
            list(pool.map(lambda body: post(port, body), bodies))
    return rounds * sum(lengths) / (time.perf_counter() - started)


def short(port, clients, seconds, warm_up, tokens=16):
    bodies = [json.dumps({"input": [token_text(tokens, seed)]}).encode() for seed in range(64)]
    latencies, lock, stop = [], threading.Lock(), threading.Event()

    def run(offset):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        index = offset
        while not stop.is_set():
            started = time.perf_counter()
            connection.request("POST", "/v1/embeddings", bodies[index % len(bodies)], {"Content-Type": "application/json"})
            connection.getresponse().read()
            with lock:
                latencies.append(time.perf_counter() - started)
            index += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(warm_up)
    with lock:
        latencies.clear()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    p50, p99 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return len(latencies) / elapsed, p50, p99


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", default="1,2", help="comma-separated BGE_M3_WORKERS values")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bulk-clients", type=int, default=4)
    parser.add_argument("--bulk-rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warm-up", type=float, default=3)
    arguments = parser.parse_args()
    lengths = mixed_lengths()
    results = {}
    for round_number in range(arguments.rounds):
        for workers in [int(w) for w in arguments.workers.split(",")]:
            server = Server(arguments.model, env={"BGE_M3_PROBE_CACHE_DIR": "/tmp/bgem3-acceptance-cache"},
                            args=["--precision", arguments.precision, "--threads", str(arguments.threads), "--workers", str(workers)])
            try:
                server.wait_ready()
                health = server.health()
                bulk(server.port, lengths[:8], min(arguments.bulk_clients, 8), 1)  # warm-up: the shapes' primitives
                bulk_rate = bulk(server.port, lengths, arguments.bulk_clients, arguments.bulk_rounds)
                rate, p50, p99 = short(server.port, arguments.clients, arguments.seconds, arguments.warm_up)
                row = {"workers": workers, "threads": arguments.threads, "round": round_number, "live": health["workers"]["live"],
                       "bulk_tokens_per_s": round(bulk_rate, 1), "short_requests_per_s": round(rate, 1),
                       "short_p50_ms": round(p50 * 1000, 2), "short_p99_ms": round(p99 * 1000, 2),
                       "rss_mb": round(server.rss() / 2**20)}
                print(json.dumps(row), flush=True)
                results.setdefault(workers, []).append(row)
            finally:
                server.stop()
    summary = {str(workers): {key: statistics.median(row[key] for row in rows)
                              for key in ["bulk_tokens_per_s", "short_requests_per_s", "short_p50_ms", "short_p99_ms", "rss_mb"]}
               for workers, rows in results.items()}
    print(json.dumps({"medians": summary, "precision": arguments.precision, "threads": arguments.threads}))


if __name__ == "__main__":
    main()
