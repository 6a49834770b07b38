#!/usr/bin/env python3
"""The acceptance run of issue 5: the full-size synthetic model under a hard memory limit.

1. Starts the server once without a limit to read its resident size after start-up.
2. Creates a memory cgroup (v1 `memory.limit_in_bytes`, or v2 `memory.max`) with a limit of that
   resident size plus --headroom (default 1.5 GB), and starts the server inside it, so the kernel
   kills it if it ever passes the limit. Without a writable cgroup it falls back to
   BGE_M3_MEMORY_LIMIT and only watches the RSS (said so in the output).
3. Sends a burst: 16 concurrent requests of one 8192-token text each, plus 200 one-sentence
   requests, and samples the server's RSS every 50 ms.
4. Reports failures, whether the process survived, peak RSS against the limit, OOM splits, the
   probe's predicted against measured workspace, and the burst's wall time; then sends the same
   texts one at a time for the throughput comparison (--skip-sequential to leave that out;
   --compare-long K compares a burst and one-at-a-time on K long texts and the short ones).

    bgem3 synth --preset bge-m3 --out /tmp/m3synth --tokenizer ../shared/fixtures/xlmr-tokenizer/tokenizer.json
    sudo scripts/load/acceptance.py --model /tmp/m3synth
"""
import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

from loadkit import log, sentence, token_text
from limited import LimitedServer

def burst(server, long_texts, short_texts):
    """Sends every request at once; returns (statuses, seconds)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(long_texts) + len(short_texts)) as pool:
        futures = [pool.submit(server.post, "/v1/embeddings", {"input": [text]}) for text in long_texts]
        futures += [pool.submit(server.post, "/v1/embeddings", {"input": text}) for text in short_texts]
        statuses = [future.result()[0] for future in futures]
    return statuses, time.perf_counter() - started


def one_at_a_time(server, long_texts, short_texts):
    started = time.perf_counter()
    statuses = [server.post("/v1/embeddings", {"input": [text]})[0] for text in long_texts]
    statuses += [server.post("/v1/embeddings", {"input": text})[0] for text in short_texts]
    return statuses, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--headroom", type=float, default=1.5e9, help="bytes above the resident size")
    parser.add_argument("--long", type=int, default=16)
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--skip-sequential", action="store_true")
    parser.add_argument("--compare-long", type=int, default=None,
                        help="for the throughput comparison, send only this many of the long texts (with all short ones) "
                             "both as a burst and one at a time (default: all of them, one at a time after the burst)")
    arguments = parser.parse_args()
    env = {"BGE_M3_REQUEST_TIMEOUT_SECS": "14400", "BGE_M3_QUEUE_CAPACITY": "1000", "BGE_M3_PROBE_CACHE_DIR": "/tmp/bgem3-acceptance-cache"}

    with LimitedServer(arguments.model, arguments.headroom, env) as limited:
        server = limited.server
        health = server.health()
        log(f"resident after start-up: {limited.resident / 2**20:.0f} MiB; limit: {limited.limit / 2**20:.0f} MiB ({health['memory']['limit_source']}), "
            f"budget {health['memory']['budget_bytes'] / 2**20:.0f} MiB, probe {health['probe']}")
        long_texts = [token_text(8192, seed) for seed in range(arguments.long)]
        short_texts = [sentence(seed) for seed in range(arguments.short)]
        statuses, seconds = burst(server, long_texts, short_texts)
        alive = server.process.poll() is None
        failures = sum(1 for status in statuses if status != 200)
        log(f"burst: {len(statuses)} requests, {failures} failed, {seconds:.1f} s, server alive: {alive}")
        result = {
            "budget_bytes": health["memory"]["budget_bytes"],
            "probe": health["probe"],
            "requests": len(statuses),
            "failed": failures,
            "server_alive": alive,
            "oom_splits": server.metric("bgem3_oom_splits_total") or 0,
            "workspace_predicted_bytes_last": server.metric("bgem3_workspace_predicted_bytes"),
            "workspace_measured_bytes_last": server.metric("bgem3_workspace_measured_bytes"),
            "batches": server.metric("bgem3_batch_size_count"),
            "burst_seconds": round(seconds, 1),
        }
        _, metrics = server.get("/metrics")
        result["probe_shapes"] = [line for line in metrics.decode().splitlines()
                                  if line.startswith("bgem3_probe_predicted_bytes") or line.startswith("bgem3_probe_measured_bytes")]
        if not arguments.skip_sequential and alive:
            compared_long = long_texts[:arguments.compare_long] if arguments.compare_long is not None else long_texts
            if arguments.compare_long is not None:
                _, seconds = burst(server, compared_long, short_texts)
                result["compared_burst_seconds"] = round(seconds, 1)
            sequential_statuses, sequential_seconds = one_at_a_time(server, compared_long, short_texts)
            result["compared_texts"] = {"long": len(compared_long), "short": len(short_texts)}
            result["sequential_seconds"] = round(sequential_seconds, 1)
            result["sequential_failed"] = sum(1 for status in sequential_statuses if status != 200)
            result["speedup"] = round(sequential_seconds / seconds, 2)
        result.update(limited.report())
        print(json.dumps(result, indent=1))

if __name__ == "__main__":
    main()
