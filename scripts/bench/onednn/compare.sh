#!/usr/bin/env bash
# Is a newer oneDNN a lever for bgem3's products? Times the engine's u8×s8→f32 product (or, with
# PRECISION fp32, its f32×f32→f32 product) on BGE-M3's shapes with Debian's oneDNN 2.6.3 (what the
# engine links) and with oneDNN 3.2 from PyPI's pinned onednn-cpu-gomp wheels (GNU OpenMP, as
# Debian's), alternating the two ROUNDS times, and prints each shape's median over the rounds; at
# int8 it then asks both for the per-row multiply a fused int8 epilogue needs. Run it alone on the
# machine (issue 19, build item 5).
#
#   scripts/bench/onednn/compare.sh [ROUNDS] [THREADS] [PRECISION]   # defaults: 5, 2, int8
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROUNDS=${1:-5}
export OMP_NUM_THREADS=${2:-2}
case ${3:-int8} in int8) MODE= ;; fp32) MODE=f32 ;; *) echo "PRECISION is int8 or fp32" >&2; exit 2 ;; esac
WORK=${ONEDNN_COMPARE_DIR:-/tmp/bgem3-onednn-compare}
mkdir -p "$WORK"
VERSION=2023.2.0
if [ ! -e "$WORK/v3/lib/libdnnl.so.3" ]; then
  python3 -m pip download -q --no-deps -d "$WORK/wheels" "onednn-cpu-gomp==$VERSION" "onednn-devel-cpu-gomp==$VERSION"
  mkdir -p "$WORK/v3"
  for wheel in "$WORK"/wheels/onednn_*"$VERSION"*.whl; do python3 -m zipfile -e "$wheel" "$WORK/unpacked"; done
  cp -r "$WORK/unpacked/onednn_devel_cpu_gomp-$VERSION.data/data/include" "$WORK/v3/"
  cp -r "$WORK/unpacked/onednn_cpu_gomp-$VERSION.data/data/lib" "$WORK/v3/"
fi
gcc -O2 -o "$WORK/matmul_v2" matmul_v2.c -ldnnl
gcc -O2 -o "$WORK/matmul_v3" matmul_v3.c -I"$WORK/v3/include" -L"$WORK/v3/lib" -l:libdnnl.so.3 -Wl,-rpath,"$WORK/v3/lib"
: > "$WORK/times"
for round in $(seq "$ROUNDS"); do
  "$WORK/matmul_v2" $MODE >> "$WORK/times"
  "$WORK/matmul_v3" $MODE >> "$WORK/times"
done
python3 - "$WORK/times" <<'PY'
import collections, statistics, sys
times = collections.defaultdict(list)
for line in open(sys.argv[1]):
    version, shape, name, ms = line.split()
    times[(shape, version)].append(float(ms))
shapes = sorted({s for s, _ in times}, key=lambda s: [int(x) for x in s.split("x")])
print(f"{'rows x in x out':18} {'2.6 ms':>8} {'3.2 ms':>8} {'2.6 GOP/s':>10} {'3.2 GOP/s':>10} {'3.2/2.6':>8}")
for shape in shapes:
    m, k, n = (int(x) for x in shape.split("x"))
    old, new = statistics.median(times[(shape, "2.x")]), statistics.median(times[(shape, "3.x")])
    print(f"{shape:18} {old:8.3f} {new:8.3f} {2*m*k*n/old*1e-6:10.0f} {2*m*k*n/new*1e-6:10.0f} {old/new:8.2f}x")
PY
if [ -z "$MODE" ]; then
  "$WORK/matmul_v2" rowscale | sort -u | head -3
  "$WORK/matmul_v3" rowscale | sort -u | head -3
fi
