"""The benchmark suite runs and writes well-formed results (its timings are not tested)."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PAIRS

from benchmarks.configs import CONFIGS, gemm_shapes, step_flops
from benchmarks.scaling import crossover, plot
from gpubp.backend import cpu_kernels_reason

ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, *args: str):
    """``python -m module args`` from the checkout's root, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=900
    )


def test_gemm_count_is_three_per_layer_and_two_for_the_first():
    for config in CONFIGS.values():
        layers = len(config.layer_sizes) - 1
        assert len(gemm_shapes(config, 7)) == 3 * layers - 1
    a = CONFIGS["a"]
    assert step_flops(a, 128) == 2 * 128 * (2 * 784 * 128 + 3 * 128 * 10)


@pytest.mark.slow
def test_a_tiny_run_writes_json_and_markdown(tmp_path):
    out = run_module(
        "benchmarks.epoch",
        *("--rows", "600", "--configs", "a", "--epochs", "2", "--no-compile", "--no-scaling"),
        *("--out", str(tmp_path)),
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


def test_torch_gpu_memory_is_its_peak_in_use_during_the_fit_not_its_reserve(monkeypatch):
    from types import SimpleNamespace

    from benchmarks.contenders import Torch

    allocated = iter([5 * 2**20])
    fake = SimpleNamespace(
        cuda=SimpleNamespace(
            empty_cache=lambda: None,
            reset_peak_memory_stats=lambda: None,
            memory_allocated=lambda: next(allocated),
            max_memory_allocated=lambda: 12 * 2**20,
            max_memory_reserved=lambda: 99 * 2**20,
        )
    )
    monkeypatch.setitem(sys.modules, "torch", fake)
    contender = Torch("cuda")
    monkeypatch.setattr(contender, "prepare", lambda *args: None)
    contender.prepare_measured(CONFIGS["a"], None, None)
    assert contender.peak_bytes == 7 * 2**20  # above what was in use before the fit


@pytest.mark.cuda
def test_cupy_peak_in_use_counts_allocations_not_what_the_pool_holds():
    import cupy

    from benchmarks.contenders import PeakInUse

    held = cupy.empty(2**24, dtype=cupy.uint8)
    del held  # the pool keeps its 16 MiB
    with PeakInUse() as peak:
        a = cupy.empty(2**20, dtype=cupy.uint8)
        del a
        b = cupy.empty(2**19, dtype=cupy.uint8)
    assert peak.bytes == 2**20 and cupy.get_default_memory_pool().total_bytes() >= 2**24
    del b


def test_profile_splits_a_step_into_gemms_other_kernels_and_gpu_idle():
    from benchmarks.profile_gpu import busy_seconds, summarise

    assert busy_seconds([(0, 2), (1, 3), (5, 6)]) == 4  # overlaps counted once
    kernels = [
        ("sm90_xmma_gemm_f32f32_tf32f32", 0.0, 300.0),
        ("cupy_sigmoid__float32", 300.0, 400.0),
        ("ampere_sgemm_64x64_nn", 1000.0, 1200.0),
    ]
    r = summarise(kernels, wall=0.004, steps=2)  # 4 ms of wall for two steps
    assert r["kernels"] == 1.5 and r["wall_ms"] == 2.0
    assert r["gemm_ms"] == pytest.approx(0.25) and r["other_ms"] == pytest.approx(0.05)
    assert r["gpu_idle_ms"] == pytest.approx((4.0 - 0.6) / 2)


@pytest.mark.gpu
def test_the_agreement_table_covers_every_pair_depth_and_dtype(tmp_path):
    from benchmarks import agreement
    from benchmarks.agreement import DEPTHS, GOALS
    from gpubp.functions import ACTIVATIONS

    assert agreement.main(["--out", str(tmp_path), "--epochs", "2"]) == 0
    result = json.loads((tmp_path / "agreement.json").read_text())
    rows = result["equations"]
    assert len(rows) == len(ACTIVATIONS) * len(PAIRS) * len(DEPTHS) * len(GOALS)
    for row in rows:
        assert row["max_rel"] <= GOALS[row["dtype"]], row
    training = result["training"]
    assert len(training["loss_numpy"]) == len(training["loss_cupy"]) == 2
    assert training["accuracy_cupy"] == pytest.approx(training["accuracy_numpy"], abs=0.01)
    assert "| epoch | loss (numpy) | loss (cupy) |" in (tmp_path / "agreement.md").read_text()


def test_csv_read_benchmark_prints_rounds_and_a_median(capsys):
    from benchmarks import csv_read

    csv_read.main(rows=300, columns=4, rounds=2)
    out = capsys.readouterr().out
    assert out.count("round ") == 2 and "median of 2: " in out and "for 300 x 4" in out


@pytest.mark.slow
def test_own_process_gives_each_contender_a_process_and_interleaves_its_rounds(tmp_path):
    """A tiny run of benchmarks.own_process: one worker per contender (pids differ from
    each other and from the parent's), every command answered every round, the baseline
    imported from the checkout it names, and the table's rows written."""
    out = run_module(
        "benchmarks.own_process",
        *("--configs", "a", "--rows", "600", "--rounds", "2", "--baseline", str(ROOT)),
        *("--out", str(tmp_path)),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "own-process-cpu.json").read_text())
    entry = result["configs"]["a"]
    ran = set(entry["loop"])
    assert {"gpubp (numpy)", "scikit-learn", "GEMM floor", "gpubp (baseline)"} <= ran
    pids = list(entry["pids"].values())
    assert len(set(pids)) == len(pids) == len(ran) and all(p > 0 for p in pids)
    assert all(len(entry["loop"][name]) == 2 for name in ran)
    assert all(len(v) == 2 for v in entry["fit"].values()) and "GEMM floor" not in entry["fit"]
    assert Path(entry["gpubp from"]["gpubp (baseline)"]) == ROOT / "gpubp"
    reference = "gpubp (numpy, GPUBP_NUMBA=0)"
    assert reference in ran and "(GPUBP_NUMBA=0)" in entry["kernels"][reference]
    assert entry["kernels"]["gpubp (numpy)"] == cpu_kernels_reason()
    table = (tmp_path / "own-process-cpu.md").read_text()
    assert "| (a) 784-128-10 sigmoid, batch 128 | gpubp (numpy) |" in table
    # the per-round ratios: round i of one contender over round i of another
    fit, loop = entry["fit"], entry["loop"]
    speedups = [r / g for r, g in zip(fit[reference], fit["gpubp (numpy)"])]
    over_floor = [g / f for g, f in zip(loop["gpubp (numpy)"], loop["GEMM floor"])]
    row = next(line for line in table.splitlines() if line.startswith("| (a) | ") and "x (" in line)
    cells = row.split(" | ")
    for cell, ratios in ((cells[3], speedups), (cells[6], over_floor)):
        median = statistics.median(ratios)
        assert cell == f"{median:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
    if "torch eager (cpu)" in ran:
        assert "slowdown of gpubp after torch" in table
    else:
        assert "torch eager (cpu)" in entry["skipped"]


def test_the_cpu_profile_splits_the_epoch_into_phases_and_puts_the_methods_back():
    from benchmarks.cpu_profile import PHASES, profile
    from gpubp import network

    matmul = network.MLP.matmul
    entry = profile("a", 600, epochs=1)
    assert network.MLP.matmul is matmul
    phases = entry["phases_us_per_step"]
    assert entry["steps"] == 5 and set(PHASES.values()) < set(phases)
    assert all(phases[p] > 0 for p in PHASES.values())
    assert sum(phases.values()) * entry["steps"] / 1e6 == pytest.approx(entry["total"])
    # every method timed once a step; 784-128-10 makes five products a step (Z W for two
    # layers, Z^T Delta for two, Delta W^T for the second): each counted in its own phase
    calls = entry["calls_per_step"]
    assert calls.pop("matrix products (GEMMs)") == 5
    assert set(calls.values()) == {1}
    assert entry["floor"] > 0


def test_the_cpu_kernel_benchmark_times_every_kernel_against_its_reference():
    pytest.importorskip("numba")
    from benchmarks import cpu_kernels

    rows = cpu_kernels.measure(repeats=3)
    assert len({(r["kernel"], r["size"]) for r in rows}) == len(rows) == 3 * 5 + 2 * 3
    assert all(r["fused_us"] > 0 and r["reference_us"] > 0 for r in rows)
    text = cpu_kernels.markdown({"kernels": "k", "threads": 2, "repeats": 3, "rows": rows})
    assert "| Adam update | (b), (c32) 669,706 weights |" in text
    assert "| bias + sigmoid | 128 x 128 |" in text
    loops = cpu_kernels.loops(["a"], rows=300, rounds=2)
    assert [(r["config"], r["solver"]) for r in loops] == [("a", "sgd"), ("a", "adam")]
    assert all(r["ratio_range"][0] <= r["ratio"] <= r["ratio_range"][1] for r in loops)
    text = cpu_kernels.markdown(
        {"kernels": "k", "threads": 2, "repeats": 3, "rows": rows, "loops": loops}
        | {"rows_per_epoch": 300, "rounds": 2}
    )
    assert "| (a) | adam |" in text


@pytest.mark.slow
def test_model_files_times_both_formats(tmp_path):
    out = run_module(
        "benchmarks.model_files", "--sizes", "6,5,3", "--rounds", "2", "--out", str(tmp_path)
    )
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "model-files.json").read_text())
    assert set(results["times"]) == {"npz", "safetensors"}
    assert all(len(t["load"]) == 2 for t in results["times"].values())
    assert results["weight_bytes"] == 4 * (6 * 5 + 5 + 5 * 3 + 3)
    assert "| safetensors |" in (tmp_path / "model-files.md").read_text()


@pytest.mark.slow
def test_deploy_agreement_covers_every_activation_and_output(tmp_path):
    pytest.importorskip("skl2onnx")
    pytest.importorskip("onnxruntime")
    out = run_module("benchmarks.deploy_agreement", "--dtypes", "float32", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "deploy-agreement.json").read_text())
    assert len(rows) == 16 and {r["task"] for r in rows} >= {"multilabel", "regression"}
    assert all(r["sklearn"] < 1e-5 and r["onnx"] < 1e-5 for r in rows)


@pytest.mark.slow
def test_the_streaming_benchmark_runs_small(tmp_path):
    """benchmarks.streaming at toy sizes: each part writes its table; one memory worker
    (the memory part runs nine) measures a streamed epoch."""
    import numpy as np

    for part in (
        ["epoch", "--rounds", "1", "--rows", "300"],
        ["files", "--rows", "2000"],
        ["shuffle", "--rows", "3000", "--epochs", "2"],
    ):
        out = run_module("benchmarks.streaming", *part, "--out", str(tmp_path))
        assert out.returncode == 0, out.stderr
    shuffle = json.loads((tmp_path / "streaming-shuffle.json").read_text())
    assert set(shuffle["curves"]) == {"full", "buffered", "False"}
    for stem in ("epoch", "files", "shuffle"):
        assert "| " in (tmp_path / f"streaming-{stem}.md").read_text()
    np.save(tmp_path / "X.npy", np.zeros((500, 4), dtype=np.float32))
    np.save(tmp_path / "y.npy", np.arange(500) % 3)
    out = run_module(
        "benchmarks.streaming", "memory-worker", str(tmp_path / "X.npy"), str(tmp_path / "y.npy"),
        "streamed",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0 < measured["baseline"] <= measured["peak"] and measured["seconds"] > 0


def test_the_checkpoint_benchmark_times_fits_and_a_write_and_read(tmp_path):
    from benchmarks.checkpoints import epoch_costs, write_and_read

    costs = epoch_costs(rows=256, epochs=1, rounds=1, folder=str(tmp_path))
    assert set(costs) == {"none", "every epoch"} and all(len(v) == 1 for v in costs.values())
    b = write_and_read("b", 2, str(tmp_path))
    weights = 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
    assert b["weights"] == weights and b["bytes"] > 3 * 4 * weights  # theta, m and v
    assert len(b["times"]["write"]) == len(b["times"]["read"]) == 2
    assert not list(tmp_path.iterdir())  # its folders removed


@pytest.mark.gpu
def test_the_stack_levers_time_every_case_and_a_copy_from_before(monkeypatch, tmp_path):
    """Rows for one network, each stack, the largest stack in TF32, the one network
    without graphs, and both from ``gpubp_before`` (here a copy of gpubp itself)."""
    import shutil

    import numpy as np

    from benchmarks import contenders, gpu_levers

    class NoPeak:  # the stand-in has no memory hooks; the peak is tested on a GPU
        bytes = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(contenders, "PeakInUse", NoPeak)
    shutil.copytree(ROOT / "gpubp", tmp_path / "gpubp_before")
    monkeypatch.syspath_prepend(str(tmp_path))
    rows, runs = gpu_levers.stack_rows(1, before=["gpubp_before"], rows=300, Rs=(2, 3))
    names = [r["name"] for r in rows]
    assert names == [
        "one network", "stack of R = 2", "stack of R = 3", "one network, before",
        "stack of R = 3, before", "stack of R = 3, tf32", "one network, no CUDA graphs",
    ]  # fmt: skip
    assert [r["R"] for r in rows] == [1, 2, 3, 1, 3, 3, 1]
    assert rows[0]["vs_one_network"] == 1.0
    assert runs[3].net.__class__.__module__ == "gpubp_before.network"
    for run in runs:  # each trained: its weights moved from where its seed put them
        start = type(run.net)([784, 128, 10], "sigmoid", seed=0, backend="cupy", n_networks=run.R)
        assert not np.allclose(run.net.get_weights()[0][0], start.get_weights()[0][0])
    assert all(r["epoch_s"] > 0 and r["min_s"] <= r["epoch_s"] <= r["max_s"] for r in rows)


def test_a_gpubp_contender_from_a_package_that_is_not_there_is_unavailable():
    from benchmarks.contenders import Gpubp, Unavailable

    contender = Gpubp("cupy", package="gpubp_nowhere")
    assert contender.name == "gpubp nowhere (cupy)"
    with pytest.raises(Unavailable, match="gpubp_nowhere"):
        contender.load()


@pytest.mark.gpu
def test_the_kernel_bandwidth_table_times_each_kernel_once_warm(monkeypatch):
    from benchmarks import gpu_kernels

    timed = gpu_kernels.cases(rows=8, width=16, vector=False)
    names = [name for name, _, _ in timed]
    assert names[:2] == ["bias + ReLU", "row gather"]
    for _, nbytes, run in timed:  # each runs with the arguments it is timed with
        run()
        assert nbytes > 0
    assert {"copy (cupy)", "ReLU derivative", "SGD step"} <= set(names)
    calls = []
    assert gpu_kernels.median_seconds(lambda: calls.append(1), repeats=3, inner=2) >= 0
    assert len(calls) == 1 + 3 * 2


@pytest.mark.cuda
def test_the_benchmarks_float4_sgd_step_is_the_sgd_step():
    import cupy
    import numpy as np

    from benchmarks import gpu_kernels
    from gpubp import kernels

    rng = np.random.default_rng(0)
    g, theta = (cupy.asarray(rng.normal(size=4096).astype(np.float32)) for _ in range(2))
    lr = cupy.full(1, 0.1, dtype=cupy.float32)
    want = kernels.SGD(g, lr, theta, theta.copy())
    cupy.RawKernel(gpu_kernels._SGD4, "sgd4")((4,), (256,), (g, lr, theta, cupy.int64(1024)))
    cupy.testing.assert_allclose(theta, want, rtol=1e-6)
