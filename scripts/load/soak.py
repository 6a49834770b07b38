#!/usr/bin/env python3
"""Soak test: the server at saturation for a while, with mixed request sizes.

Starts `bgem3 serve` on a model (default: the tiny test model), lets --clients clients send
requests back to back for --duration seconds (one-sentence and batched /v1/embeddings, token-id
inputs of 256-2048 tokens, /v1/m3/embeddings with all three outputs, /v1/rerank), and samples the
server's RSS every second. Passes (exit 0) when no request failed, the server is alive, and RSS
after warm-up (the first --warmup seconds; default a fifth of the run, at most 60 s, as the
engine's compiled kernels, cached per batch shape, fill during the first minute) never rose more
than --max-growth above its level at the end of warm-up. Prints p50/p99 latency per kind, throughput and the RSS figures (--json: one
object).

    scripts/load/soak.py                       # 5 minutes on the tiny model
    scripts/load/soak.py --duration 80 --warmup 40     # what CI runs
"""
import argparse
import json
import os
import random
import threading
import time

from loadkit import ROOT, Server, log, sentence, status_field, token_text


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def request_for(generator):
    """(kind, route, payload) of one request, drawn with fixed weights."""
    draw = generator.random()
    seed = generator.randrange(1 << 30)
    if draw < 0.45:
        return "one sentence", "/v1/embeddings", {"input": sentence(seed)}
    if draw < 0.65:
        return "8 sentences", "/v1/embeddings", {"input": [sentence(seed + i) for i in range(8)]}
    if draw < 0.80:
        length = generator.choice([256, 512, 1024, 2048])
        return "token ids 256-2048", "/v1/embeddings", {"input": [token_text(length, seed)]}
    if draw < 0.93:
        text = " ".join(sentence(seed + i) for i in range(generator.randrange(2, 30)))
        return "m3 all outputs", "/v1/m3/embeddings", {"input": [text, sentence(seed)], "sparse": True, "colbert": True}
    return "rerank 10", "/v1/rerank", {"query": sentence(seed), "documents": [sentence(seed + i) for i in range(10)]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "Tests/Fixtures/tiny-bge-m3"))
    parser.add_argument("--duration", type=float, default=300, help="seconds at saturation (default 300)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before the RSS baseline (default: a fifth of --duration, at most 60)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-growth", type=float, default=0.10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("serve_args", nargs="*", help="extra `bgem3 serve` options, after --")
    arguments = parser.parse_args()
    warmup = arguments.warmup if arguments.warmup is not None else min(60.0, arguments.duration / 5)

    server = Server(arguments.model, env={"BGE_M3_PROBE_CACHE_DIR": f"/tmp/bgem3-soak-{os.getpid()}"}, args=arguments.serve_args)
    results = []  # (kind, status, seconds, finished_at)
    lock = threading.Lock()
    samples = []  # (seconds since start, rss)
    stop = threading.Event()
    try:
        server.wait_ready()
        started = time.monotonic()

        def client(index):
            generator = random.Random(index)
            while not stop.is_set():
                kind, route, payload = request_for(generator)
                begin = time.monotonic()
                try:
                    status, _ = server.post(route, payload, timeout=120)
                except OSError as error:
                    status = f"{type(error).__name__}"
                with lock:
                    results.append((kind, status, time.monotonic() - begin, time.monotonic() - started))

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(arguments.clients)]
        for thread in threads:
            thread.start()
        while time.monotonic() - started < arguments.duration and server.process.poll() is None:
            rss = status_field(server.process.pid, "VmRSS")
            if rss:
                samples.append((time.monotonic() - started, rss))
            time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join(timeout=150)
        alive = server.process.poll() is None
    finally:
        server.stop()

    errors = [r for r in results if r[1] != 200]
    after = [rss for at, rss in samples if at >= warmup]
    baseline = after[0] if after else None
    growth = (max(after) - baseline) / baseline if after else None
    kinds = sorted({r[0] for r in results})
    report = {
        "duration_s": arguments.duration, "warmup_s": warmup, "clients": arguments.clients, "model": arguments.model,
        "requests": len(results), "errors": len(errors),
        "error_statuses": sorted({str(r[1]) for r in errors}), "alive": alive,
        "requests_per_s": len(results) / arguments.duration,
        "latency_ms": {kind: {"count": sum(1 for r in results if r[0] == kind),
                              "p50": 1000 * percentile([r[2] for r in results if r[0] == kind], 0.50),
                              "p99": 1000 * percentile([r[2] for r in results if r[0] == kind], 0.99)} for kind in kinds},
        "latency_all_ms": {"p50": 1000 * percentile([r[2] for r in results], 0.50), "p99": 1000 * percentile([r[2] for r in results], 0.99)},
        "rss_bytes": {"after_warmup": baseline, "max_after_warmup": max(after) if after else None, "final": after[-1] if after else None},
        "rss_growth": growth,
        "rss_timeline_mib": [[round(at), round(rss / 2**20, 1)] for at, rss in samples[::10]],
    }
    passed = alive and not errors and results and growth is not None and growth <= arguments.max_growth
    report["passed"] = bool(passed)
    if arguments.json:
        print(json.dumps(report, indent=1))
    else:
        log(f"soak: {len(results)} requests in {arguments.duration:.0f} s ({report['requests_per_s']:.1f}/s) from {arguments.clients} clients; "
            f"{len(errors)} errors {report['error_statuses']}; server alive: {alive}")
        for kind in kinds:
            figures = report["latency_ms"][kind]
            log(f"  {kind:20s} {figures['count']:6d} requests  p50 {figures['p50']:8.1f} ms  p99 {figures['p99']:8.1f} ms")
        log(f"  {'all':20s} {len(results):6d} requests  p50 {report['latency_all_ms']['p50']:8.1f} ms  p99 {report['latency_all_ms']['p99']:8.1f} ms")
        if after:
            log(f"  RSS after {warmup:.0f} s warm-up {baseline / 2**20:.1f} MiB, highest since {max(after) / 2**20:.1f} MiB "
                f"(growth {100 * growth:.1f} %, allowed {100 * arguments.max_growth:.0f} %), final {after[-1] / 2**20:.1f} MiB")
        log("  RSS every 10 s (MiB): " + " ".join(f"{mib:.0f}" for _, mib in report["rss_timeline_mib"]))
        log("soak: passed" if passed else "soak: FAILED")
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
