"""What the load tools share: the server (scripts/bgem3server.py, accepting token ids), inputs of exact
lengths, a median, and log lines."""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bgem3server import ROOT, Server as BGEM3Server, status_field  # noqa: E402,F401 (re-exported to the tools)


class Server(BGEM3Server):
    """`bgem3 serve` accepting token ids: the load tools make inputs of exact lengths from XLM-R ids."""

    def __init__(self, model, env=None, cgroup_procs=None, args=()):
        super().__init__(model, args=["--token-ids", "accept", *args], env=env, cgroup_procs=cgroup_procs)


def token_text(length, seed):
    """Token ids for one input of `length` tokens once the server adds <s> and </s>."""
    generator = random.Random(seed)
    return [generator.randrange(5, 5000) for _ in range(length - 2)]


def sentence(seed):
    words = ["the", "memory", "aware", "server", "answers", "short", "questions", "quickly", "while", "long", "documents", "wait"]
    generator = random.Random(seed)
    return " ".join(generator.choice(words) for _ in range(12)) + "."


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else float("nan")


def log(message):
    print(message, flush=True)
