"""The benchmark suite runs and writes well-formed results (its timings are not tested)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.configs import CONFIGS, gemm_shapes, step_flops
from benchmarks.scaling import crossover, plot

ROOT = Path(__file__).resolve().parents[1]


def test_gemm_count_is_three_per_layer_and_two_for_the_first():
    for config in CONFIGS.values():
        layers = len(config.layer_sizes) - 1
        assert len(gemm_shapes(config, 7)) == 3 * layers - 1
    a = CONFIGS["a"]
    assert step_flops(a, 128) == 2 * 128 * (2 * 784 * 128 + 3 * 128 * 10)


def test_a_tiny_run_writes_json_and_markdown(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.epoch",
            "--rows",
            "600",
            "--configs",
            "a",
            "--epochs",
            "2",
            "--no-compile",
            "--no-scaling",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "epoch-cpu.json").read_text())
    assert result["rows"] == 600 and result["environment"]["threads"] == 2
    entry = result["configs"]["a"]
    assert entry["floor"]["seconds"] > 0 and entry["floor"]["gflop"] > 0
    gpubp = entry["contenders"]["gpubp (numpy)"]
    assert gpubp["n"] == 2 and gpubp["min"] <= gpubp["median"] <= gpubp["max"]
    assert gpubp["vs_gemm_floor"] > 0 and gpubp["peak_memory_bytes"] >= 0
    assert "scikit-learn" in entry["contenders"]
    torch_ran = any(k.startswith("torch eager") for k in entry["contenders"])
    assert torch_ran or any(k.startswith("torch eager") for k in entry["skipped"])
    table = (tmp_path / "epoch-cpu.md").read_text()
    assert "| (a) 784-128-10 sigmoid, batch 128 | gpubp (numpy) |" in table


def test_crossover_and_the_scaling_plot(tmp_path):
    pytest.importorskip("matplotlib")
    cpu = {32: 1.0, 256: 0.5, 4096: 0.4}
    gpu = {32: 2.0, 256: 0.4, 4096: 0.1}
    assert crossover(cpu, gpu) == 256 and crossover(gpu, cpu) == 32
    assert crossover(cpu, {k: 9.0 for k in cpu}) is None
    result = {
        "rows": 10,
        "batch": {"numpy": cpu, "cupy": gpu},
        "width": {"numpy": cpu, "cupy": gpu},
    }
    plot(result, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_gpu_memory_is_the_allocators_peak_holding_for_both_contenders():
    """CuPy's pool total (what the pool holds; it never shrinks during a fit) is compared
    with PyTorch's peak reserved bytes, not its peak bytes in use."""
    from types import SimpleNamespace

    from benchmarks.contenders import Torch

    torch = Torch("cuda")
    torch.torch = SimpleNamespace(
        cuda=SimpleNamespace(max_memory_reserved=lambda: 7 * 2**20, max_memory_allocated=lambda: 1)
    )
    assert torch.peak_gpu_memory() == 7 * 2**20


def test_csv_read_benchmark_prints_rounds_and_a_median(capsys):
    from benchmarks import csv_read

    csv_read.main(rows=300, columns=4, rounds=2)
    out = capsys.readouterr().out
    assert out.count("round ") == 2 and "median of 2: " in out and "for 300 x 4" in out
