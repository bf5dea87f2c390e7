#!/usr/bin/env bash
# The GPU check, for the lent GPU machine: no installs and no network needed
# (CuPy, PyTorch, pytest, NumPy and scikit-learn are there; the test extras are
# not, and the tests that need them skip). From the repository root:
#
#   scripts/gpu-check.sh tests   # card, config, the `gpu` tests, the whole suite twice
#   scripts/gpu-check.sh bench   # the GPU benchmarks
#   scripts/gpu-check.sh         # both (longer than one 10-minute device call)
#
# Logs, JSON and Markdown go to $OUT (or ./gpu-check-out). Every pytest run pins
# GPUBP_BACKEND: on a GPU machine "auto" would otherwise mean CuPy everywhere.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
WHAT=${1:-all}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 40 "$OUT/$name.log"
    echo "== $name: exit $rc"
    [ "$rc" -eq 0 ] || status=1
}

PYTEST=(python -m pytest -q -rs -p no:cacheprovider tests)

if [ "$WHAT" = tests ] || [ "$WHAT" = all ]; then
    step card 30 nvidia-smi
    step config 60 python -c "import gpubp; gpubp.show_config()"
    step gpu-tests 180 env GPUBP_BACKEND=cupy "${PYTEST[@]}" -m gpu
    if ! grep -q " passed" "$OUT/gpu-tests.log" || grep -q "needs CuPy and a device" "$OUT/gpu-tests.log"; then
        echo "== gpu-tests: none ran, or some skipped for want of a GPU: FAILED"
        status=1
    fi
    step suite-numpy 240 env GPUBP_BACKEND=numpy "${PYTEST[@]}" -m "not gpu"
    step suite-cupy 300 env GPUBP_BACKEND=cupy "${PYTEST[@]}" -m "not gpu"
fi
if [ "$WHAT" = bench ] || [ "$WHAT" = all ]; then
    step bench-gpu 200 python -m benchmarks.epoch --device gpu --configs a,c32,c1024,d \
        --no-compile --no-scaling --threads 16 --out "$OUT"
    step bench-gpu-b 150 python -m benchmarks.epoch --device gpu --configs b --threads 16 \
        --no-scaling --out "$OUT/b"
    step scaling 120 python -c "
import argparse, json
from benchmarks.scaling import sweep
args = argparse.Namespace(quick=True)
json.dump(sweep(args, True, '$OUT/scaling-gpu.png'), open('$OUT/scaling-gpu.json', 'w'))
"
fi
echo "gpu-check: $([ $status -eq 0 ] && echo all steps passed || echo some steps FAILED)"
exit $status
