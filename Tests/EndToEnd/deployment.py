"""Checks the container and Kubernetes files against what the server relies on.

Usage: deployment.py BGEM3_BINARY

It first checks itself: a few broken variants of the real files (no memory limit, a readiness
probe on the wrong route, caches off the volume, …) must each be caught.

Parses Dockerfile, deploy/runtime-packages.txt and every manifest under deploy/kubernetes, and
fails (exit 1, one line per problem) unless: the probes hit /live and /ready on the port the
server binds; the memory limit is set (the server sizes its budget from the cgroup limit) and
fits the model; the model and probe caches live on the persistent volume the claim provides; the
Service and the autoscaler point at the Deployment; the image runs as the user the pod expects;
every BGE_M3_* variable set is one `bgem3 serve` knows."""
import pathlib
import re
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
problems = []


def problem(message):
    problems.append(message)


def load():
    """The files as parsed data: kustomization, manifests by kind, file names, Dockerfile text."""
    directory = ROOT / "deploy" / "kubernetes"
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    present = sorted({p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"})
    manifests = {}
    for name in present:
        for document in yaml.safe_load_all((directory / name).read_text()):
            if document:
                manifests[document["kind"]] = document
    return kustomization, manifests, present, (ROOT / "Dockerfile").read_text()


def quantity(text):
    """Bytes in a Kubernetes memory quantity such as 4Gi or 3500M."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?)?", str(text))
    if not match:
        raise ValueError(f"not a memory quantity: {text}")
    return float(match.group(1)) * units.get(match.group(2) or "", 1)


def check(kustomization, manifests, present, dockerfile, help_text):
    listed = set(kustomization.get("resources", []))
    if listed != set(present):
        problem(f"kustomization.yaml lists {sorted(listed)} but the directory has {sorted(present)}")
    for kind in ["Deployment", "Service", "HorizontalPodAutoscaler", "PersistentVolumeClaim"]:
        if kind not in manifests:
            problem(f"no {kind} under deploy/kubernetes")
    if problems:
        return
    deployment, service = manifests["Deployment"], manifests["Service"]
    autoscaler, claim = manifests["HorizontalPodAutoscaler"], manifests["PersistentVolumeClaim"]
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    if deployment["spec"]["selector"]["matchLabels"].items() - labels.items():
        problem("the Deployment's selector does not match its pod labels")
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}

    # Every variable is one the server reads.
    for name in env:
        if name.startswith("BGE_M3_") and name not in help_text:
            problem(f"{name} is set in the Deployment but `bgem3 serve --help` does not know it")

    # Probes on the port the server binds.
    port = int((env.get("BGE_M3_BIND") or "0.0.0.0:8081").rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    if ports.get("http") != port:
        problem(f"container port 'http' is {ports.get('http')}, the server binds {port}")
    for probe, path in [("livenessProbe", "/live"), ("readinessProbe", "/ready"), ("startupProbe", "/live")]:
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("http", port):
            problem(f"{probe} must GET {path} on the http port, found {get}")
    startup = container.get("startupProbe", {})
    if startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3) < 600:
        problem("the startupProbe allows less than 10 minutes: a first start downloads the model")

    # Memory: the limit the server reads from its cgroup, and room for the model at its precision.
    limits = container.get("resources", {}).get("limits", {})
    requests = container.get("resources", {}).get("requests", {})
    if "memory" not in limits:
        problem("no memory limit: the server sizes its batches from the cgroup limit")
    else:
        precision = env.get("BGE_M3_PRECISION", "auto")
        needed = {"fp32": 4 * 2**30, "bf16": 3 * 2**30}.get(precision, 2 * 2**30)
        if quantity(limits["memory"]) < needed:
            problem(f"memory limit {limits['memory']} is below {needed / 2**30:.0f} GiB, what BGE-M3 needs at {precision}")
        if "BGE_M3_MEMORY_LIMIT" in env:
            problem("BGE_M3_MEMORY_LIMIT overrides the cgroup limit; leave it out so the budget follows resources.limits")
    if "cpu" not in requests:
        problem("no CPU request: the autoscaler's CPU utilisation is relative to it")

    # Caches on the claim's volume.
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for variable in ["BGE_M3_CACHE_DIR", "BGE_M3_PROBE_CACHE_DIR"]:
        path = env.get(variable)
        owner = next((name for mount, name in mounts.items() if path and (path + "/").startswith(mount.rstrip("/") + "/")), None)
        if owner is None:
            problem(f"{variable}={path} is not on a mounted volume")
        elif volumes.get(owner, {}).get("persistentVolumeClaim", {}).get("claimName") != claim["metadata"]["name"]:
            problem(f"{variable} is on volume {owner}, not on the claim {claim['metadata']['name']}")
    if container.get("securityContext", {}).get("readOnlyRootFilesystem") and "/tmp" not in mounts:
        problem("a read-only root filesystem needs a volume at /tmp")
    timeout = float(env.get("BGE_M3_REQUEST_TIMEOUT_SECS", 60))
    drain = float(env.get("BGE_M3_DRAIN_SECS", 5))
    if pod.get("terminationGracePeriodSeconds", 30) <= drain + timeout:
        problem(f"terminationGracePeriodSeconds must exceed the drain ({drain:g} s) plus the request timeout ({timeout:g} s), "
                "so that requests arriving during the drain still finish")
    probe = container.get("readinessProbe", {})
    noticed = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
    if drain < min(noticed, 10):
        problem(f"BGE_M3_DRAIN_SECS={drain:g} is shorter than the readiness probe needs to notice ({noticed} s) or 10 s: "
                "requests still routed to a stopping pod would be refused")

    # Service and autoscaler point at the Deployment.
    if service["spec"]["selector"].items() - labels.items():
        problem("the Service's selector does not match the pod labels")
    for entry in service["spec"]["ports"]:
        if entry["targetPort"] not in ("http", port):
            problem(f"the Service targets port {entry['targetPort']}, not the server's")
    target = autoscaler["spec"]["scaleTargetRef"]
    if (target["kind"], target["name"], target["apiVersion"]) != ("Deployment", deployment["metadata"]["name"], deployment["apiVersion"]):
        problem(f"the autoscaler targets {target}, not the Deployment")
    if not 1 <= autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]:
        problem("the autoscaler's replica range is empty")

    # The image agrees with the pod.
    user = re.search(r"^USER (\d+)", dockerfile, re.M)
    if not user or int(user.group(1)) == 0:
        problem("the Dockerfile must switch to a numeric non-root USER")
    elif int(user.group(1)) != pod.get("securityContext", {}).get("runAsUser"):
        problem(f"the image runs as {user.group(1)}, the pod as {pod.get('securityContext', {}).get('runAsUser')}")
    if not re.search(r"HEALTHCHECK[^\n]*(\\\n[^\n]*)*/live", dockerfile):
        problem("the Dockerfile's HEALTHCHECK must check /live")
    if f"EXPOSE {port}" not in dockerfile:
        problem(f"the Dockerfile does not EXPOSE {port}")
    for variable in ["BGE_M3_CACHE_DIR", "BGE_M3_PROBE_CACHE_DIR"]:
        if f"{variable}={env.get(variable)}" not in dockerfile:
            problem(f"the Dockerfile's {variable} differs from the Deployment's {env.get(variable)}")
    if "scripts/build-release.sh" not in dockerfile or "runtime-packages.txt" not in dockerfile:
        problem("the Dockerfile must build with scripts/build-release.sh and install deploy/runtime-packages.txt")


def self_test(help_text):
    """Each broken variant must be caught, with a message that names what broke."""
    import copy

    def deployment_container(m):
        return m["Deployment"]["spec"]["template"]["spec"]["containers"][0]

    def set_env(m, name, value):
        for entry in deployment_container(m)["env"]:
            if entry["name"] == name:
                entry["value"] = value

    mutations = {
        "memory limit": lambda m, d: deployment_container(m)["resources"]["limits"].pop("memory"),
        "readinessProbe": lambda m, d: deployment_container(m)["readinessProbe"]["httpGet"].update(path="/live"),
        "BGE_M3_PROBE_CACHE_DIR": lambda m, d: set_env(m, "BGE_M3_PROBE_CACHE_DIR", "/var/cache/bgem3"),
        "Service's selector": lambda m, d: m["Service"]["spec"].update(selector={"app": "other"}),
        "autoscaler targets": lambda m, d: m["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"].update(name="other"),
        "BGE_M3_TYPO": lambda m, d: deployment_container(m)["env"].append({"name": "BGE_M3_TYPO", "value": "1"}),
        "below 4 GiB": lambda m, d: set_env(m, "BGE_M3_PRECISION", "fp32") or deployment_container(m)["resources"]["limits"].update(memory="3Gi"),
        "terminationGracePeriodSeconds": lambda m, d: m["Deployment"]["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=65),
        "BGE_M3_DRAIN_SECS": lambda m, d: set_env(m, "BGE_M3_DRAIN_SECS", "1"),
    }
    kustomization, manifests, present, dockerfile = load()
    failures = []
    for expected, mutate in mutations.items():
        broken = copy.deepcopy(manifests)
        mutate(broken, dockerfile)
        problems.clear()
        check(kustomization, broken, present, dockerfile, help_text)
        if not any(expected in line for line in problems):
            failures.append(f"a broken variant ({expected}) was not caught: {problems}")
    problems.clear()
    check(kustomization, manifests, present, dockerfile.replace("USER 10001:10001", "USER root"), help_text)
    if not any("non-root" in line for line in problems):
        failures.append("an image running as root was not caught")
    problems.clear()
    return failures


if __name__ == "__main__":
    help_text = subprocess.run([sys.argv[1], "serve", "--help"], capture_output=True, text=True, check=True).stdout
    failures = self_test(help_text)
    for line in failures:
        print("deployment: self-test:", line, file=sys.stderr)
    if failures:
        sys.exit(1)
    check(*load(), help_text)
    for line in problems:
        print("deployment:", line, file=sys.stderr)
    if problems:
        sys.exit(1)
    print("deployment: Dockerfile and deploy/kubernetes agree with the server (and 10 broken variants were caught)")
