"""The GPU check collects every test module that can import on a machine without the
test extras (the lent GPU machine has none of nbformat, nbclient, ipykernel,
array-api-strict or mnist1d), so one missing extra cannot stop every GPU test."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MISSING = ("nbformat", "nbclient", "ipykernel", "array_api_strict", "mnist1d")


@pytest.mark.slow
def test_gpu_tests_are_collected_without_the_test_extras(tmp_path):
    for name in MISSING:
        (tmp_path / f"{name}.py").write_text(f"raise ModuleNotFoundError(name='{name}')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-m",
            "gpu",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:benchmark",  # pytest-benchmark, where installed, warns under xdist
            "tests",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "tests/test_gpu.py::" in out.stdout and "error" not in out.stdout.splitlines()[-1]


def test_the_gpu_check_script_fails_when_no_gpu_test_ran():
    script = (ROOT / "scripts" / "gpu-check.sh").read_text()
    assert "-m gpu" in script and "none ran" in script
    assert "--backends cupy -m gpu" in script and "--backends numba,reference" in script
