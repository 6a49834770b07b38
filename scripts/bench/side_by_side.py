#!/usr/bin/env python3
"""bgem3 against its peers, side by side: alternating rounds in one session, medians and ratios.

Usage:
    side_by_side.py --model BGEM3_MODEL_DIR --onnx PEER_MODEL_DIR --precision int8 \
        [--workloads 1x16,1x128,1x512,64xmixed] [--peers ort,openvino] [--rounds 3] [--threads 2] \
        [--peer-python /tmp/peer/bin/python]

Each round runs `bgem3 bench --json` and then each peer (scripts/bench/peers.py), every one in its own
process, in an order that rotates from round to round, so that a slow spell of the machine falls on
all of them. Prints, per workload, each runtime's median seconds over the rounds (the 64xmixed
peers at their best batching), and bgem3's speed as a multiple of each peer's (above 1: bgem3 is
faster); one JSON object with every figure goes to --json. Nothing else CPU-heavy may run meanwhile.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run_bgem3(binary, model, precision, workloads, threads, runs, report):
    output = subprocess.run([binary, "bench", "--model", model, "--precision", precision, "--workloads", ",".join(workloads),
                             "--threads", str(threads), "--runs", str(runs), "--json"], capture_output=True, text=True, check=True).stdout
    with open(report, "w") as f:
        f.write(output)
    document = json.loads(output)
    return {w["name"]: w["seconds_median"] for w in document["workloads"]}, document


def run_peer(python, peer, model, precision, workloads, threads, runs, lengths_file):
    command = [python, os.path.join(HERE, "peers.py"), peer, model, precision, *workloads, "--threads", str(threads), "--runs", str(runs)]
    if "64xmixed" in workloads:
        command += ["--mixed-lengths", lengths_file]
    output = subprocess.run(command, capture_output=True, text=True)
    if output.returncode != 0:
        print(f"{peer} failed: {output.stderr[-2000:]}", file=sys.stderr)
        return {}, []
    lines = [json.loads(line) for line in output.stdout.splitlines() if line.startswith("{")]
    return {line["workload"]: line["seconds_median"] for line in lines}, lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="bgem3's model directory")
    parser.add_argument("--onnx", required=True, help="the peers' directory with model.onnx (../shared/bench/peer_bench.py make)")
    parser.add_argument("--precision", default="int8", choices=["fp32", "bf16", "int8"])
    parser.add_argument("--workloads", default="1x16,1x128,1x512,64xmixed")
    parser.add_argument("--peers", default="ort,openvino")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--binary", default=os.environ.get("BGEM3_BINARY", os.path.join(ROOT, ".build/release/bgem3")))
    parser.add_argument("--peer-python", default="/tmp/peer/bin/python")
    parser.add_argument("--json", help="write every figure here")
    arguments = parser.parse_args()

    workloads = arguments.workloads.split(",")
    peers = [p for p in arguments.peers.split(",") if p and not (p == "ort" and arguments.precision == "bf16")]
    lengths_file = tempfile.mktemp(suffix=".json")
    if "64xmixed" in workloads:  # the peers need the lengths before their first round
        run_bgem3(arguments.binary, arguments.model, arguments.precision, ["64xmixed"], arguments.threads, 1, lengths_file)
    names = ["bgem3"] + peers
    seconds = {name: {w: [] for w in workloads} for name in names}
    raw = []
    for round_index in range(arguments.rounds):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for name in order:
            if name == "bgem3":
                figures, document = run_bgem3(arguments.binary, arguments.model, arguments.precision, workloads, arguments.threads,
                                              arguments.runs, lengths_file)
                raw.append({"round": round_index, "runtime": "bgem3", "report": document})
            else:
                figures, lines = run_peer(arguments.peer_python, name, arguments.onnx, arguments.precision, workloads,
                                          arguments.threads, arguments.runs, lengths_file)
                raw.append({"round": round_index, "runtime": name, "report": lines})
            for workload, value in figures.items():
                seconds[name][workload].append(value)
            print(f"round {round_index + 1} {name}: " + ", ".join(f"{w} {v:.4f} s" for w, v in figures.items()), flush=True)

    medians = {name: {w: statistics.median(v) for w, v in per.items() if v} for name, per in seconds.items()}
    print(f"\nmedians over {arguments.rounds} rounds, {arguments.precision}, {arguments.threads} threads (seconds; ratio = peer time / bgem3 time)")
    print("workload   " + "".join(f"{n:>12}" for n in names) + "".join(f"{'vs ' + p:>12}" for p in peers))
    for workload in workloads:
        mine = medians["bgem3"].get(workload)
        cells = "".join(f"{medians[n].get(workload, float('nan')):12.4f}" for n in names)
        ratios = "".join(f"{(medians[p].get(workload, float('nan')) / mine if mine else float('nan')):11.2f}x" for p in peers)
        print(f"{workload:<11}{cells}{ratios}")
    if arguments.json:
        with open(arguments.json, "w") as f:
            json.dump({"precision": arguments.precision, "threads": arguments.threads, "medians": medians, "seconds": seconds, "raw": raw}, f)


if __name__ == "__main__":
    main()
