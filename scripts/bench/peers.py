#!/usr/bin/env python3
"""The standing peers of `bgem3 bench`: ONNX Runtime and OpenVINO on the same ONNX export of a
BGE-M3-shaped model, on the same workloads, with the same threads.

Set-up (once): the peer environment and export of ../shared/bench/peer_bench.py (`make DIR` writes
DIR/model.onnx), plus `pip install openvino nncf` into that environment.

Usage:
    peers.py RUNTIME MODEL_DIR PRECISION WORKLOAD [WORKLOAD ...] [--runs N] [--threads T] [--mixed-lengths FILE]

RUNTIME is `ort` or `openvino`; PRECISION fp32, int8 (ONNX Runtime: dynamic quantisation of the
weights, `quantize_dynamic`; OpenVINO: `nncf.quantize`, static, weights and activations, calibrated
on 32 random sequences of 16-512 tokens), or bf16 (OpenVINO's inference precision hint; needs
AVX512-BF16). Quantised models are cached beside model.onnx. WORKLOAD is 1xN (one sequence of N
tokens) or 64xmixed: the 64 lengths of `bgem3 bench`'s workload, read from a `bgem3 bench --json`
output (--mixed-lengths; its `lengths` field), run in padded batches of each --batches size
(default 1, 4, 8) with the sequences sorted by length; the best batch size is reported, with
tokens/s counting real tokens, from --mixed-runs timed runs (default 1) after a warm-up pass.

Prints one JSON object per workload: runtime, version, precision, workload, tokens, seconds_median
(of --runs timed runs after one warm-up), tokens_per_s, best_batch, rss_after_load_mb, peak_rss_mb.
The exported graph ends at the last hidden state: the BGE-M3 heads (bgem3 computes them) are not
run, which flatters the peers by a fraction of a percent.
"""
import argparse
import json
import os
import resource
import statistics
import time

import numpy as np


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def inputs(lengths, seed):
    """Padded ids and mask for sequences of these lengths (<s> ... </s>, pad 1)."""
    generator = np.random.default_rng(seed)
    longest = max(lengths)
    ids = np.ones((len(lengths), longest), dtype=np.int64)
    mask = np.zeros((len(lengths), longest), dtype=np.int64)
    for row, length in enumerate(lengths):
        ids[row, 0], ids[row, length - 1] = 0, 2
        ids[row, 1:length - 1] = generator.integers(5, 250000, size=length - 2)
        mask[row, :length] = 1
    return {"input_ids": ids, "attention_mask": mask}


class OnnxRuntime:
    name = "onnxruntime"

    def __init__(self, directory, precision, threads):
        import onnxruntime as ort
        self.version = ort.__version__
        path = os.path.join(directory, "model.onnx")
        if precision == "int8":
            quantised = os.path.join(directory, "model.int8.onnx")
            if not os.path.exists(quantised):
                from onnxruntime.quantization import QuantType, quantize_dynamic
                quantize_dynamic(path, quantised, weight_type=QuantType.QInt8)
            path = quantised
        elif precision != "fp32":
            raise SystemExit(f"ONNX Runtime's CPU provider has no {precision} path here")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def run(self, feed):
        self.session.run(None, feed)


class OpenVINO:
    name = "openvino"

    def __init__(self, directory, precision, threads):
        import openvino as ov
        self.version = ov.__version__
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if precision == "int8":
            model = self.quantised(core, directory)
            config["INFERENCE_PRECISION_HINT"] = "f32"
        else:
            model = core.read_model(os.path.join(directory, "model.onnx"))
            config["INFERENCE_PRECISION_HINT"] = {"fp32": "f32", "bf16": "bf16"}[precision]
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    @staticmethod
    def quantised(core, directory):
        import openvino as ov
        path = os.path.join(directory, "openvino-int8.xml")
        if os.path.exists(path):
            return core.read_model(path)
        import nncf
        model = core.read_model(os.path.join(directory, "model.onnx"))
        generator = np.random.default_rng(7)
        samples = [inputs([int(generator.integers(16, 513))], seed) for seed in range(32)]
        quantised = nncf.quantize(model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(samples))
        ov.save_model(quantised, path)
        return quantised

    def run(self, feed):
        self.request.infer(feed)


def timed(runtime, batches, runs):
    for feed in batches:  # warm-up: every shape once
        runtime.run(feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for feed in batches:
            runtime.run(feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runtime", choices=["ort", "openvino"])
    parser.add_argument("directory")
    parser.add_argument("precision", choices=["fp32", "bf16", "int8"])
    parser.add_argument("workloads", nargs="+")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mixed-lengths", help="a `bgem3 bench --json` output holding the 64xmixed lengths")
    parser.add_argument("--batches", default="1,4,8", help="batch sizes tried for 64xmixed")
    parser.add_argument("--mixed-runs", type=int, default=1)
    arguments = parser.parse_args()

    runtime = (OnnxRuntime if arguments.runtime == "ort" else OpenVINO)(arguments.directory, arguments.precision, arguments.threads)
    after_load = rss_mb()
    for workload in arguments.workloads:
        if workload == "64xmixed":
            if not arguments.mixed_lengths:
                raise SystemExit("64xmixed needs --mixed-lengths (a bgem3 bench --json output with that workload)")
            report = json.load(open(arguments.mixed_lengths))
            lengths = next(w["lengths"] for w in report["workloads"] if w["name"] == "64xmixed")
            ordered = sorted(lengths)
            results = {}
            for batch in (int(b) for b in arguments.batches.split(",")):
                feeds = [inputs(ordered[i:i + batch], i) for i in range(0, len(ordered), batch)]
                results[batch] = timed(runtime, feeds, arguments.mixed_runs)
            best = min(results, key=results.get)
            seconds, tokens = results[best], sum(lengths)
            extra = {"best_batch": best, "seconds_by_batch": results}
        else:
            count, length = (int(x) for x in workload.split("x"))
            seconds = timed(runtime, [inputs([length] * count, 1)], arguments.runs if length > 64 else max(arguments.runs, 20))
            tokens, extra = count * length, {}
        print(json.dumps({"runtime": runtime.name, "version": runtime.version, "precision": arguments.precision,
                          "workload": workload, "tokens": tokens, "seconds_median": seconds, "tokens_per_s": tokens / seconds,
                          "threads": arguments.threads, "rss_after_load_mb": round(after_load), "peak_rss_mb": round(peak_mb()),
                          **extra}), flush=True)


if __name__ == "__main__":
    main()
