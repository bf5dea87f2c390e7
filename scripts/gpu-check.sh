#!/usr/bin/env bash
# The GPU check, for the lent GPU machine: no installs and no network needed
# (CuPy, PyTorch, pytest, NumPy and scikit-learn are there). From the repository
# root: prints the card and versions, runs the `gpu`-marked tests, then the GPU
# part of the benchmark suite. Logs, JSON and Markdown go to $OUT (or
# ./gpu-check-out). Meant to finish within 8 minutes on an H100.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
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

step card 30 nvidia-smi
step config 60 python -c "import gpubp; gpubp.show_config()"
step gpu-tests 180 python -m pytest -m gpu -q -rs -p no:cacheprovider tests
if ! grep -q " passed" "$OUT/gpu-tests.log"; then
    echo "== gpu-tests: none ran (all skipped?): FAILED"
    status=1
fi
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
echo "gpu-check: $([ $status -eq 0 ] && echo all steps passed || echo some steps FAILED)"
exit $status
