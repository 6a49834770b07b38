"""Shared helpers of the load scripts: start a bgem3 server, send requests, read metrics."""
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("BGEM3_BINARY", os.path.join(ROOT, ".build/release/bgem3"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `bgem3 serve` process on a loopback port, optionally started inside a cgroup."""

    def __init__(self, model, env=None, cgroup_procs=None, args=()):
        self.port = free_port()
        environment = dict(os.environ)
        environment.update(env or {})
        # The load scripts send token ids (token_text) to make inputs of exact lengths: XLM-R ids.
        command = [BINARY, "serve", "--model", model, "--bind", f"127.0.0.1:{self.port}", "--token-ids", "accept", *args]
        if cgroup_procs:
            # Join the cgroup first, then become the server: the limit applies from its first byte.
            command = ["sh", "-c", f'echo $$ > "{cgroup_procs}" && exec "$@"', "sh", *command]
        self.log = open(f"/tmp/bgem3-load-{self.port}.log", "w")
        self.process = subprocess.Popen(command, env=environment, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log.name}")
            try:
                status, _ = self.get("/ready")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server not ready in time")

    def get(self, path):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, body

    def post(self, path, payload, timeout=3600):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        connection.request("POST", path, json.dumps(payload), {"Content-Type": "application/json"})
        response = connection.getresponse()
        body = response.read()
        self.last_headers = dict(response.getheaders())
        connection.close()
        return response.status, body

    def health(self):
        return json.loads(self.get("/health")[1])

    def metric(self, name):
        """Sum of every series of a metric in /metrics."""
        _, body = self.get("/metrics")
        total, found = 0.0, False
        for line in body.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        return total if found else None

    def rss(self):
        return status_field(self.process.pid, "VmRSS")

    def peak_rss(self):
        return status_field(self.process.pid, "VmHWM")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def status_field(pid, name):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


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
    sys.stdout.flush()
