#!/usr/bin/env python3
"""Hugging Face `tokenizers` on the corpus `bgem3 bench --workloads tokenizer` uses, one thread,
so the two can be compared side by side on one machine.

Usage: peer_tokenizer_bench.py TOKENIZER_JSON [--runs N]
"""
import os, statistics, sys, time
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer

path = sys.argv[1]
runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
corpus = os.path.join(os.path.dirname(__file__), "..", "..", "Sources", "bgem3", "Resources", "multilingual-lines.txt")
lines = [l for l in open(corpus, encoding="utf-8").read().split("\n") if l]
size = sum(len(l.encode()) for l in lines)
loads = []
for _ in range(runs):
    t = time.perf_counter(); tok = Tokenizer.from_file(path); loads.append(time.perf_counter() - t)
for l in lines: tok.encode(l)
mbs, tps = [], []
for _ in range(runs):
    t = time.perf_counter(); passes = produced = 0
    while True:
        for l in lines: produced += len(tok.encode(l).ids)
        passes += 1
        el = time.perf_counter() - t
        if el >= 1.0: break
    mbs.append(passes * size / el / 1e6); tps.append(produced / el)
print(f"tokenizers {__import__('tokenizers').__version__}: load {statistics.median(loads):.3f} s, {statistics.median(mbs):.2f} MB/s, {statistics.median(tps):.0f} tokens/s")
