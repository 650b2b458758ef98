#!/usr/bin/env bash
# Every CUDA-only check in one command: the tests that skip without CUDA (half precision, blocks under AMP/float16,
# the sparsity penalty under AMP, each block's CUDA path (deformable conv included) against its CPU path, ...) and
# the GPU benchmark table.
#
#   scripts/gpu_checks.sh [OUT_DIR] [bench key=value ...]     # OUT_DIR default: $OUT, else gpu-checks-<date>
#
# Writes to OUT_DIR: environment.txt, tests.log and tests.xml (JUnit), bench/ (bench.md, bench.json, bench.png,
# bench.log) and summary.txt. Extra arguments go to `yolo-attn bench` (e.g. budget=5 or models=[...]). Without
# CUDA it says so and exits 0, running nothing heavy. Exit status: 0 when the tests and the bench succeeded.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${OUT:-gpu-checks-$(date -u +%Y%m%d-%H%M%S)}"
if [[ $# -gt 0 && "$1" != *=* ]]; then  # a first argument without '=' is the folder; the rest go to the bench
    OUT_DIR="$1"
    shift
fi
PY="${PYTHON:-python}"
export YOLO_OFFLINE=1 MPLBACKEND=Agg

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_checks: no CUDA device here (torch.cuda.is_available() is False); nothing run."
    exit 0
fi

mkdir -p "$OUT_DIR/bench"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
# settings, datasets and caches of this run stay inside OUT_DIR (as in the test suite's temporary directory)
export YOLO_CONFIG_DIR="$OUT_DIR/.ultralytics" YOLO_ATTN_HOME="$OUT_DIR/.yolo-attn"

{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "nvidia-smi not available"
    "$PY" -c "import torch, torchvision, ultralytics, yolo_attn; print('torch', torch.__version__, 'CUDA', \
torch.version.cuda, '| torchvision', torchvision.__version__, '| ultralytics', ultralytics.__version__, \
'| yolo-attn', yolo_attn.__version__, '|', torch.cuda.get_device_name(0))"
    git -C "$ROOT" rev-parse --short HEAD 2>/dev/null
} > "$OUT_DIR/environment.txt" 2>&1
cat "$OUT_DIR/environment.txt"

echo "== CUDA-only tests -> $OUT_DIR/tests.log"
(cd "$ROOT" && PYTHONPATH="$ROOT/scripts${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m pytest -p cuda_only -p no:cacheprovider \
    -q -rs --junitxml="$OUT_DIR/tests.xml" tests) 2>&1 | tee "$OUT_DIR/tests.log"
tests_rc=${PIPESTATUS[0]}

echo "== GPU bench -> $OUT_DIR/bench"
(cd "$ROOT" && "$PY" -m yolo_attn bench device=0 "out=$OUT_DIR/bench" "$@") 2>&1 | tee "$OUT_DIR/bench/bench.log"
bench_rc=${PIPESTATUS[0]}

{
    echo "CUDA-only tests: exit $tests_rc ($(tail -n 1 "$OUT_DIR/tests.log"))"
    echo "GPU bench: exit $bench_rc (table: $OUT_DIR/bench/bench.md)"
} | tee "$OUT_DIR/summary.txt"
[[ $tests_rc -eq 0 && $bench_rc -eq 0 ]]
