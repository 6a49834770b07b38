"""A bgem3 server under a real memory limit, for the acceptance runs: the limit is the server's own
resident size after start-up plus a headroom, enforced by a memory cgroup (v1
`memory.limit_in_bytes`, or v2 `memory.max`) so that the kernel kills the server if it ever passes
it. Without a writable cgroup the limit is given as BGE_M3_MEMORY_LIMIT and only the RSS is
watched (said so in the output). The RSS is sampled every 20 ms meanwhile."""
import os
import threading
import time

from loadkit import Server, log, status_field

CGROUP_V1 = "/sys/fs/cgroup/memory"
CGROUP_V2 = "/sys/fs/cgroup"


def make_cgroup(limit):
    """A fresh memory cgroup with this limit; returns (directory, procs file, kind) or None."""
    name = f"bgem3-acceptance-{os.getpid()}"
    try:
        if os.path.exists(os.path.join(CGROUP_V1, "memory.limit_in_bytes")):
            path = os.path.join(CGROUP_V1, name)
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
                f.write(str(limit))
            try:  # no swap to hide in
                with open(os.path.join(path, "memory.memsw.limit_in_bytes"), "w") as f:
                    f.write(str(limit))
            except OSError:
                pass
            return path, os.path.join(path, "cgroup.procs"), "cgroup v1"
        if os.path.exists(os.path.join(CGROUP_V2, "cgroup.controllers")):
            path = os.path.join(CGROUP_V2, name)
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "memory.max"), "w") as f:
                f.write(str(limit))
            return path, os.path.join(path, "cgroup.procs"), "cgroup v2"
    except OSError as error:
        log(f"no writable memory cgroup ({error}); falling back to BGE_M3_MEMORY_LIMIT and watching RSS")
    return None


def read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class LimitedServer:
    """`with LimitedServer(model, headroom, env, args) as limited:` — `limited.server` is ready."""

    def __init__(self, model, headroom, env, args=()):
        unlimited = Server(model, env=env, args=args)
        try:
            unlimited.wait_ready()
            self.resident = unlimited.health()["memory"]["resident_at_start_bytes"]
        finally:
            unlimited.stop()
        self.limit = int(self.resident + headroom)
        self.cgroup = make_cgroup(self.limit)
        server_env = dict(env)
        if self.cgroup is None:
            server_env["BGE_M3_MEMORY_LIMIT"] = str(self.limit)
        self.server = Server(model, env=server_env, cgroup_procs=self.cgroup[1] if self.cgroup else None, args=args)
        self.peak_rss_sampled = 0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while not self._stop.is_set():
            rss = status_field(self.server.process.pid, "VmRSS")
            if rss:
                self.peak_rss_sampled = max(self.peak_rss_sampled, rss)
            time.sleep(0.02)

    def __enter__(self):
        self.server.wait_ready()
        return self

    def __exit__(self, *exception):
        self._stop.set()
        self.server.stop()
        if self.cgroup:
            try:
                os.rmdir(self.cgroup[0])
            except OSError:
                pass

    @property
    def kind(self):
        return self.cgroup[2] if self.cgroup else None

    def report(self):
        """The memory figures every acceptance run prints."""
        vmhwm = self.server.peak_rss() or 0
        return {
            "limit_bytes": self.limit,
            "resident_at_start_bytes": self.resident,
            "cgroup": self.kind,
            "peak_rss_bytes_sampled": self.peak_rss_sampled,
            "peak_rss_bytes_vmhwm": vmhwm,
            "cgroup_max_usage_bytes": read_int(os.path.join(self.cgroup[0], "memory.max_usage_in_bytes")) if self.cgroup else None,
            "cgroup_failcnt": read_int(os.path.join(self.cgroup[0], "memory.failcnt")) if self.cgroup else None,
            "peak_rss_under_limit": max(self.peak_rss_sampled, vmhwm) < self.limit,
        }
