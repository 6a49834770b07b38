"""The one way Python starts and talks to `bgem3 serve`: the end-to-end checks in Tests/EndToEnd and
the load tools in scripts/load use it.

    with Server(model, args=["--precision", "fp32"]) as server:
        server.wait_ready()
        status, body = server.post("/v1/embeddings", {"input": "hello"})

The server binds a port the system chooses (`--bind 127.0.0.1:0`) and its log goes to a file (a pipe
nobody drains would fill and stall it); the port is read from its "listening" line. Probe fits go
to a scratch directory unless the caller names one, never the user's ~/.cache. `Server.attach(port)`
talks to a server already running (in a container).
"""
import http.client
import json
import os
import re
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LISTENING = re.compile(r"listening.*:(\d+)")


def default_binary():
    """BGEM3_BINARY, else the release build."""
    return os.environ.get("BGEM3_BINARY") or os.path.join(ROOT, ".build/release/bgem3")


class Server:
    """A `bgem3 serve` process on a loopback port, optionally started inside a cgroup."""

    def __init__(self, model, *, binary=None, args=(), env=None, cgroup_procs=None, start_timeout=60):
        environment = dict(os.environ)
        environment.update(env or {})
        if "--probe-cache-dir" not in args and "BGE_M3_PROBE_CACHE_DIR" not in (env or {}):
            environment["BGE_M3_PROBE_CACHE_DIR"] = tempfile.mkdtemp(prefix="bgem3-probe-")
        command = [binary or default_binary(), "serve", "--model", model, "--bind", "127.0.0.1:0", *args]
        if cgroup_procs:
            # Join the cgroup first, then become the server: the limit applies from its first byte.
            command = ["sh", "-c", f'echo $$ > "{cgroup_procs}" && exec "$@"', "sh", *command]
        self.log = tempfile.NamedTemporaryFile(prefix="bgem3-serve-", suffix=".log", delete=False, mode="w")
        self.process = subprocess.Popen(command, env=environment, stdout=self.log, stderr=subprocess.STDOUT)
        self.host = "127.0.0.1"
        self.port = self._read_port(start_timeout)
        self.last_headers = {}

    @classmethod
    def attach(cls, port, host="127.0.0.1"):
        """A server this object did not start: no process, no log."""
        server = cls.__new__(cls)
        server.process, server.log, server.host, server.port, server.last_headers = None, None, host, port, {}
        return server

    def _read_port(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            match = LISTENING.search(self.log_text())
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                raise RuntimeError(f"bgem3 serve exited with {self.process.returncode} before listening:\n{self.log_text()[-4000:]}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"bgem3 serve did not listen within {timeout} s:\n{self.log_text()[-4000:]}")

    @property
    def base_url(self):
        return f"http://{self.host}:{self.port}"

    def log_text(self):
        if self.log is None:
            return ""
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def alive(self):
        """Its process still runs; for an attached server, /live answers 200."""
        if self.process is not None:
            return self.process.poll() is None
        try:
            return self.get("/live")[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout=600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log.name}")
            try:
                if self.get("/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready within {timeout} s")

    def request(self, method, path, body=None, headers=None, timeout=3600):
        """Returns (status, headers with lower-case names, body bytes); never raises on an HTTP status."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(method, path, body, headers or {})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def get(self, path, timeout=30):
        status, self.last_headers, body = self.request("GET", path, timeout=timeout)
        return status, body

    def post(self, path, payload, timeout=3600):
        """POSTs `payload` as JSON (a str or bytes is sent as it is)."""
        body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        status, self.last_headers, data = self.request("POST", path, body, {"Content-Type": "application/json"}, timeout)
        return status, data

    def health(self):
        return json.loads(self.get("/health")[1])

    def metric(self, name):
        """Sum of every series of a metric in /metrics, or None when it has none."""
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

    def stop(self, timeout=60):
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status (None when attached)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.stop()


def status_field(pid, name):
    """A byte count from /proc/PID/status (VmRSS, VmHWM)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
