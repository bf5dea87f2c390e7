#!/usr/bin/env bash
# The GPU check, for the lent GPU machine: no network needed (CuPy, PyTorch,
# pytest, NumPy and scikit-learn are there; the test extras are not, and the
# tests that need them skip). From the repository root:
#
#   scripts/gpu-check.sh tests           # card, config, the `gpu` tests, the suite on CuPy and NumPy
#   scripts/gpu-check.sh agreement       # CPU against GPU, every pair and depth; digits side by side
#   scripts/gpu-check.sh bench [CONFIGS] # epoch times, one process per configuration (default: all)
#   scripts/gpu-check.sh profile         # where each step's time goes, gpubp and PyTorch eager
#   scripts/gpu-check.sh levers          # stacks of networks against one; TF32's gradient error
#   scripts/gpu-check.sh scaling         # CPU against GPU over batch size and width
#   scripts/gpu-check.sh speed [PARTS]   # issue 17: gpu tests, levers against .before/, epochs, profile
#
# Each step has a time limit and a log in $LOGS (default gpu-check-out). Where $OUT
# is set (the device tool's output folder) the logs are packed after every step into
# $OUT/gpu-check.tgz, so a run stopped at its limit still returns what it did.
# Every pytest run names its backends (--backends, tests/conftest.py): there the cupy
# backend is the real CuPy, and the tests that run once run on the first one named.
# Without mpiexec, an mpich wheel in .whl/ (carried) is installed under /tmp/mpich.
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${LOGS:-gpu-check-out}
WHAT=${1:-tests}
mkdir -p "$LOGS"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0

pack() {
    if [ -n "${OUT:-}" ] && [ "$(cd "$OUT" && pwd)" != "$(cd "$LOGS" && pwd)" ]; then
        tar czf "$OUT/gpu-check.tgz" -C "$LOGS" .
    fi
}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $LOGS/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$LOGS/$name.log"
    echo "== $name: exit $rc after $((SECONDS - start))s"
    [ "$rc" -eq 0 ] || status=1
    pack
}

mpi_runtime() {
    command -v mpiexec > /dev/null && return
    local wheel
    wheel=$(ls .whl/mpich-*.whl 2> /dev/null | head -n 1)
    [ -n "$wheel" ] || return
    python -m pip install -q --no-index --no-deps --no-compile --prefix /tmp/mpich "$wheel"
    local bin
    bin=$(dirname "$(find /tmp/mpich -path '*/bin/mpiexec' | head -n 1)")
    export PATH="$bin:$PATH" LD_LIBRARY_PATH="$bin/../lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

PYTEST=(python -m pytest -q -rs -p no:cacheprovider -p no:benchmark tests)
python -c "import xdist" 2> /dev/null && PYTEST+=(-n 4)
python -c "import pytest_timeout" 2> /dev/null && PYTEST+=(--timeout 240)

card() {
    step card 60 sh -c 'nvidia-smi; python -c "import sys, numpy, scipy, sklearn, cupy, torch
print(sys.version); print(\"numpy\", numpy.__version__, \"scipy\", scipy.__version__, \"sklearn\", sklearn.__version__)
print(\"cupy\", cupy.__version__, \"cuda runtime\", cupy.cuda.runtime.runtimeGetVersion(), \"driver\", cupy.cuda.runtime.driverGetVersion())
print(\"torch\", torch.__version__, torch.version.cuda)"; command -v mpiexec; python -c "import mpi4py; print(\"mpi4py\", mpi4py.__version__)"'
}

case "$WHAT" in
tests)
    mpi_runtime
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # Open MPI, as root there
    card
    step config 60 python -c "import gpubp; gpubp.show_config()"
    step gpu-tests 150 "${PYTEST[@]}" --backends cupy -m gpu
    if ! grep -q " passed" "$LOGS/gpu-tests.log" || grep -q "needs CuPy and a device" "$LOGS/gpu-tests.log"; then
        echo "== gpu-tests: none ran, or some skipped for want of a GPU: FAILED"
        status=1
    fi
    step suite-cupy 270 "${PYTEST[@]}" --backends cupy
    step suite-numpy 200 "${PYTEST[@]}" --backends numba,reference -m "not gpu"
    ;;
agreement)
    step agreement 200 python -m benchmarks.agreement --out "$LOGS"
    ;;
bench)
    for config in $(echo "${2:-a,b,c32,c1024,d}" | tr , ' '); do
        step "bench-$config" 240 python -m benchmarks.epoch --device gpu --configs "$config" \
            --threads 16 --no-scaling --out "$LOGS/$config"
    done
    ;;
profile)
    step profile 200 python -m benchmarks.profile_gpu --out "$LOGS"
    ;;
levers)
    step levers 240 python -m benchmarks.gpu_levers --out "$LOGS"
    ;;
speed)
    # issue 17 in one call of under 10 minutes: the gpu tests, then the levers against
    # copies of gpubp from before a change (carried in .before/; the packages named in
    # $BEFORE, default gpubp_before), the elementwise kernels' memory speed, the epoch
    # table at 60,000 rows (torch.compile for (a) and (b), whose targets name it) and the
    # profile with graphs. $2 picks the parts (default all, in this order). A copy from
    # before: echo /.before/ >> .git/info/exclude; mkdir -p .before; git archive REV gpubp
    # | tar -x -C .before; mv .before/gpubp .before/gpubp_before (then carry .before).
    export PYTHONPATH="$PWD/.before:$PYTHONPATH"
    BEFORE=${BEFORE:-gpubp_before}
    card
    for part in $(echo "${2:-tests,levers,kernels,a,b,d,c32,profile}" | tr , ' '); do
        case "$part" in
        tests) step gpu-tests 90 "${PYTEST[@]}" --backends cupy -m gpu ;;
        levers) step levers 90 python -m benchmarks.gpu_levers --before "$BEFORE" --out "$LOGS" ;;
        kernels) step kernels 60 python -m benchmarks.gpu_kernels --out "$LOGS" ;;
        profile) step profile 60 python -m benchmarks.profile_gpu --configs a,b,d --steps 50 \
            --out "$LOGS" ;;
        *)
            compile=$([ "$part" = a ] || [ "$part" = b ] || echo --no-compile)
            step "bench-$part" 120 python -m benchmarks.epoch --device gpu --configs "$part" \
                --threads 16 --no-scaling --epochs "${EPOCHS:-5}" --before "$BEFORE" $compile \
                --out "$LOGS/$part"
            ;;
        esac
    done
    ;;
scaling)
    step scaling 200 python -c "
import argparse, json
from benchmarks.scaling import sweep
args = argparse.Namespace(quick=True)
json.dump(sweep(args, True, '$LOGS/scaling-gpu.png'), open('$LOGS/scaling-gpu.json', 'w'))
"
    ;;
*)
    echo "usage: scripts/gpu-check.sh tests|agreement|bench [CONFIGS]|profile|levers|scaling|speed" >&2
    exit 2
    ;;
esac
echo "gpu-check $WHAT: $([ $status -eq 0 ] && echo all steps passed || echo some steps FAILED)"
exit $status
