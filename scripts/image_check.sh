#!/usr/bin/env bash
# The release check of the container image: builds the Dockerfile's runtime stage with podman,
# runs it under a real memory limit (cgroup) on a full-size model mounted read-only, and checks
# what a user relies on: /ready, the image's health-check command, the non-root user, the limit
# the server read from its own cgroup, and the memory-limited burst of
# scripts/load/whole_request.py (two 32 × 1024-token ColBERT requests and a 16 MB /tokenize at
# once) answered without the container being OOM-killed.
#
# Usage (as root): scripts/image_check.sh MODEL_DIR [HEADROOM_BYTES]
#   MODEL_DIR: a BGE-M3 model directory (e.g. `bgem3 synth --preset bge-m3 --out /tmp/m3`).
#   HEADROOM_BYTES: memory above the server's resident size (default 1.5 GB).
#
# This machine kind has no Docker engine and no registry: podman and runc from Debian (the default
# crun refuses this machine's cgroup layout), a Debian bookworm base made with debootstrap and
# imported as localhost/debian:bookworm-slim, and the binary from scripts/build-release.sh
# (--build-arg BINARY=prebuilt; the Swift build stage is for `docker build` where its image can
# be pulled).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODEL=$(realpath "${1:?usage: scripts/image_check.sh MODEL_DIR [HEADROOM_BYTES]}")
HEADROOM=${2:-1500000000}
PODMAN=(podman --runtime /usr/sbin/runc)
NAME=bgem3-image-check
PORT=18081

for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || { apt-get update -q && apt-get install -y -q podman runc debootstrap; break; }
done
if ! "${PODMAN[@]}" image exists localhost/debian:bookworm-slim; then
  rootfs=$(mktemp -d /var/tmp/bgem3-bookworm-XXXXXX)
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian
  tar -C "$rootfs" -c . | "${PODMAN[@]}" import - localhost/debian:bookworm-slim
  rm -rf "$rootfs"
fi
[ -x .build-static/dist/bgem3 ] || scripts/build-release.sh .build-static/dist

started=$(date +%s)
"${PODMAN[@]}" build --format docker --network host --build-arg BINARY=prebuilt --build-arg RUNTIME_IMAGE=localhost/debian:bookworm-slim \
  -t localhost/bgem3:check .
echo "image_check: image built in $(( $(date +%s) - started )) s, $("${PODMAN[@]}" image inspect --format '{{.Size}}' localhost/bgem3:check) bytes"

# whole_request.py sends XLM-R token ids to make inputs of exact lengths, hence TOKEN_IDS=accept; its
# two ColBERT requests take ~50 s of computing on 2 CPUs together, so the deadline is 120 s (with 60 s
# the second is refused at once as busy: a clear answer, but the check wants every request served).
# The limit: the server's resident size at int8 (measured by a first run without a limit) plus the headroom.
"${PODMAN[@]}" rm -f "$NAME" >/dev/null 2>&1 || true
run() {  # run LIMIT: the container, detached
  "${PODMAN[@]}" run -d --name "$NAME" --network host --ulimit nofile=16384:16384 --ulimit nproc=1024:1024 ${1:+--memory "$1"} \
    -v "$MODEL:/model:ro" -v bgem3-image-check-data:/data -e BGE_M3_MODEL=/model -e BGE_M3_BIND=127.0.0.1:$PORT \
    -e BGE_M3_PRECISION=int8 -e BGE_M3_TOKEN_IDS=accept -e BGE_M3_REQUEST_TIMEOUT_SECS=120 localhost/bgem3:check >/dev/null
}
wait_ready() {
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && return 0
    [ "$("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$NAME")" = true ] || { "${PODMAN[@]}" logs "$NAME" | tail -20; return 1; }
    sleep 1
  done
  return 1
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {'d': d}))" "$1"; }

run ""
wait_ready
resident=$(curl -s "http://127.0.0.1:$PORT/health" | field "d['memory']['resident_at_start_bytes']")
"${PODMAN[@]}" rm -f "$NAME" >/dev/null
limit=$(( resident + HEADROOM ))
echo "image_check: resident $(( resident >> 20 )) MiB; running with --memory $(( limit >> 20 )) MiB"

run "$limit"
started=$(date +%s)
wait_ready
echo "image_check: ready in $(( $(date +%s) - started )) s"
failures=()
health=$(curl -s "http://127.0.0.1:$PORT/health")
source=$(echo "$health" | field "d['memory']['limit_source']")
read_limit=$(echo "$health" | field "d['memory']['limit_bytes']")
# The kernel rounds the limit down to whole pages.
(( limit - read_limit >= 0 && limit - read_limit < 65536 )) && [[ "$source" == cgroup* ]] \
  || failures+=("the server read a limit of $read_limit ($source), not the container's $limit")
"${PODMAN[@]}" exec "$NAME" bgem3 health --url "http://127.0.0.1:$PORT/live" >/dev/null || failures+=("the image's health check failed")
user=$("${PODMAN[@]}" exec "$NAME" id -u)
[ "$user" = 10001 ] || failures+=("runs as uid $user, not 10001")
echo "image_check: limit $(( read_limit >> 20 )) MiB from $source; health check ok; uid $user"

burst=0
report=$(mktemp)
python3 scripts/load/whole_request.py --port "$PORT" > "$report" || burst=$?
cat "$report"
# The report is the tool's log lines, then one JSON object.
statuses=$(python3 -c "
import json, sys
text = open(sys.argv[1]).read()
start = text.rfind('\n{') + 1
print(' '.join(str(s) for s in json.loads(text[start:])['statuses'].values()))" "$report" 2>/dev/null || echo none)
[ "$statuses" = "200 200 200" ] || failures+=("not every request of the burst was served: statuses $statuses")
state=$("${PODMAN[@]}" inspect --format '{{.State.Running}} {{.State.OOMKilled}}' "$NAME")
cgroup=$(find /sys/fs/cgroup/memory -type d -name "*$("${PODMAN[@]}" inspect --format '{{.Id}}' "$NAME")*" | head -1)
peak=$(cat "$cgroup/memory.max_usage_in_bytes" 2>/dev/null || echo 0)
failcnt=$(cat "$cgroup/memory.failcnt" 2>/dev/null || echo "?")
echo "image_check: after the burst: running/OOM-killed $state; cgroup peak $(( peak >> 20 )) MiB of $(( limit >> 20 )) MiB, failcnt $failcnt"
[ "$burst" = 0 ] || failures+=("the burst failed (whole_request.py exit $burst)")
[ "$state" = "true false" ] || failures+=("the container is not running, or was OOM-killed: $state")
"${PODMAN[@]}" rm -f "$NAME" >/dev/null
"${PODMAN[@]}" volume rm -f bgem3-image-check-data >/dev/null 2>&1 || true

if [ ${#failures[@]} -gt 0 ]; then
  printf 'image_check: FAILED: %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "image_check: passed"
