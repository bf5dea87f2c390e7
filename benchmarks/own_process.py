"""Epoch and fit times with every contender in a process of its own (issue 14's headline).

    python -m benchmarks.own_process [--configs a,b,c32] [--rounds 5] [--threads 2]
                                     [--baseline DIR] [--out DIR]

A user trains with one library in a process; so here each contender (gpubp with
numba's kernels and with the reference NumPy formulas, PyTorch eager, scikit-learn,
the GEMM floor, and gpubp in a process where PyTorch trains an epoch before each of
gpubp's) lives in a worker process of its own, prepared once, and the parent
interleaves their rounds (A B C D A B C D ...).
Each round times three things in every worker, in an order that rotates from round
to round: a fresh ``fit`` of one epoch (set-up included: validating and converting
the 188 MB of input, building the model), one more ``partial_fit`` epoch of the
prepared estimator, and the training loop alone (the GEMM floor's worker times the
step's products). Only one worker runs at a time, and the next waits until the last
one's threads are idle. Medians over the rounds; ratios of medians.
``--baseline DIR`` adds gpubp imported from another checkout (a ``git worktree`` of
an earlier commit), to measure a change against what came before in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONTENDERS = ("gpubp", "gpubp-reference", "torch", "sklearn", "floor", "gpubp-after-torch")
GPUBP_KEYS = ("gpubp", "gpubp-reference", "baseline", "gpubp-after-torch")  # run gpubp
LABELS = {
    "gpubp": "gpubp (numpy)",
    "gpubp-reference": "gpubp (numpy, GPUBP_NUMBA=0)",
    "baseline": "gpubp (baseline)",
    "torch": "torch eager (cpu)",
    "sklearn": "scikit-learn",
    "floor": "GEMM floor",
    "gpubp-after-torch": "gpubp after a torch epoch",
}


# -- the worker: one contender, commands on stdin, one JSON line per answer --------


def worker(config_name: str, key: str, rows: int, threads: int, gpubp_path: str | None) -> int:
    from .threads import set_thread_env

    set_thread_env(threads)
    if key == "gpubp-reference":  # the reference NumPy formulas, as without numba
        os.environ["GPUBP_NUMBA"] = "0"
    if gpubp_path:
        sys.path.insert(0, gpubp_path)
    import numpy as np
    from threadpoolctl import threadpool_info

    from .configs import CONFIGS, make_data
    from .contenders import Unavailable, cpu_contender
    from .measure import gemm_floor

    config = CONFIGS[config_name]
    X, y = make_data(rows, config.layer_sizes[0])
    answer = {"ready": True, "pid": os.getpid()}
    contender = torch_first = None
    try:
        if key == "floor":
            gemm_floor(config, rows, np)  # warm-up
        else:
            contender = cpu_contender("gpubp" if key in GPUBP_KEYS else key)
            contender.load()
            if key == "gpubp-after-torch":
                torch_first = cpu_contender("torch")
                torch_first.prepare(config, X, y)
            contender.prepare(config, X, y)
            if key in GPUBP_KEYS:
                import gpubp

                contender.prepare_loop(config, X, y)
                answer["gpubp"] = os.path.dirname(gpubp.__file__)
                reason = getattr(gpubp.backend, "cpu_kernels_reason", None)
                answer["kernels"] = reason() if reason else "the reference NumPy formulas"
    except Unavailable as exc:
        answer = {"ready": False, "why": str(exc)}
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    answer["blas"] = [
        f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}), "
        f"{i['num_threads']} threads"
        for i in threadpool_info()
    ]
    _say(answer)
    loop = getattr(contender, "loop", None) or getattr(contender, "epoch", None)
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        if torch_first is not None:
            torch_first.epoch()
        start = time.perf_counter()
        if key == "floor":
            seconds = gemm_floor(config, rows, np)["seconds"]
        else:
            if command == "fit":
                contender.fit_once(config, X, y)
            elif command == "epoch":
                contender.epoch()
            else:
                loop()
            seconds = time.perf_counter() - start
        _say({"seconds": seconds})
    return 0


def _say(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# -- the parent: start the workers, interleave their rounds ----------------------


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, every thread
    except OSError:
        return 0


def _wait_idle(pid: int, poll: float = 0.05, limit: float = 3.0) -> None:
    """Return when the process used no CPU for ``poll`` seconds (or after ``limit``)."""
    deadline, before = time.monotonic() + limit, _cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(poll)
        now = _cpu_ticks(pid)
        if now == before:
            return
        before = now


class Worker:
    def __init__(self, config, key, rows, threads, gpubp_path=None):
        cmd = [sys.executable, "-m", "benchmarks.own_process", "--worker", config, key]
        cmd += [str(rows), str(threads)] + ([gpubp_path] if gpubp_path else [])
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.key, self.name = key, LABELS[key]
        self.proc = subprocess.Popen(
            cmd, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.hello = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.key} exited with {self.proc.wait()}")
        return json.loads(line)

    def ask(self, command: str) -> float:
        """The seconds the worker took, once its threads have gone idle (a BLAS or OpenMP
        pool spins for a while after its work: it must not steal the next worker's cores)."""
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        seconds = self._read()["seconds"]
        _wait_idle(self.proc.pid)
        return seconds

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait()


def measure(config: str, keys, rows: int, threads: int, rounds: int, baseline=None) -> dict:
    """Interleaved rounds of fit, epoch and loop times, one worker process per contender."""
    workers, skipped = [], {}
    for key in keys:
        w = Worker(config, key, rows, threads, baseline if key == "baseline" else None)
        if w.hello["ready"]:
            workers.append(w)
        else:
            skipped[w.name] = w.hello["why"]
            w.close()
    plan = {  # which contenders answer which command
        "fit": [w for w in workers if w.key not in ("floor", "gpubp-after-torch")],
        "epoch": [w for w in workers if w.key != "floor"],
        "loop": workers,
    }
    times = {command: {w.name: [] for w in ws} for command, ws in plan.items()}
    commands = list(plan)
    try:
        for r in range(rounds):  # each round starts with another command: what runs just
            for command in commands[r % 3 :] + commands[: r % 3]:  # before is not always alike
                for w in plan[command]:
                    times[command][w.name].append(w.ask(command))
    finally:
        for w in workers:
            w.close()
    return {
        **times,
        "skipped": skipped,
        "blas": {w.name: w.hello["blas"] for w in workers},
        "gpubp from": {w.name: w.hello["gpubp"] for w in workers if "gpubp" in w.hello},
        "kernels": {w.name: w.hello["kernels"] for w in workers if "kernels" in w.hello},
        "pids": {w.name: w.hello["pid"] for w in workers},
    }


def _median(times: dict, who: str):
    return statistics.median(times[who]) if times.get(who) else None


def _speedup(times: dict, to: str, who: str) -> str:
    """How many times faster ``who`` is than ``to``: the ratio of their medians."""
    slow, fast = _median(times, to), _median(times, who)
    return "-" if slow is None or fast is None else f"{slow / fast:.2f}x"


def _per_round(times: dict, top: str, bottom: str) -> str:
    """The median (min-max) over rounds of top's time / bottom's time in the same round:
    contenders of one round run seconds apart, so a slow spell of a shared machine that
    lasts a round moves both."""
    a, b = times.get(top), times.get(bottom)
    if not a or not b:
        return "-"
    r = [x / y for x, y in zip(a, b)]
    return f"{statistics.median(r):.2f}x ({min(r):.2f}-{max(r):.2f})"


def _cell(times: dict, who: str) -> str:
    v = times.get(who)
    return "-" if not v else f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})"


def markdown(results: dict) -> str:
    from .configs import CONFIGS

    env = results["environment"]
    torch, sklearn, floor = LABELS["torch"], LABELS["sklearn"], LABELS["floor"]
    lines = [
        f"Measured {env['date']} on {env['machine']}; Python {env['python']}, NumPy "
        f"{env['numpy']}, scikit-learn {env['scikit-learn']}, PyTorch {env['torch']}; "
        f"{env['threads']} threads; OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE'] or 'unset'}.",
        "",
        f"{results['rows']:,} rows; each contender in a process of its own, "
        f"{results['rounds']} interleaved rounds; seconds, median (min-max). fit: a fresh "
        "estimator's `fit` of one epoch, set-up included (for PyTorch: tensors, model, "
        "optimiser, one epoch); epoch: one more epoch of the fitted estimator (`partial_fit`, "
        "which checks its input again; PyTorch's loop); loop: the training loop alone "
        "(gpubp's `run_epoch`, PyTorch's loop; scikit-learn's is its `partial_fit`). "
        "Speed-ups are ratios of medians, above 1 when this contender is faster.",
        "",
        "| config | contender | fit s | epoch s | loop s | fit vs torch | fit vs sklearn "
        "| epoch vs torch | epoch vs sklearn | loop / GEMM floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in results["configs"].items():
        fit, epoch, loop = entry["fit"], entry["epoch"], entry["loop"]
        for who in loop:
            over_floor = (
                f"{_median(loop, who) / _median(loop, floor):.2f}x" if floor in loop else "-"
            )
            lines.append(
                f"| ({name}) {CONFIGS[name].describe()} | {who} | {_cell(fit, who)} | "
                f"{_cell(epoch, who)} | {_cell(loop, who)} | {_speedup(fit, torch, who)} | "
                f"{_speedup(fit, sklearn, who)} | {_speedup(epoch, torch, who)} | "
                f"{_speedup(epoch, sklearn, who)} | {over_floor} |"
            )
        for who, why in entry["skipped"].items():
            lines.append(f"| ({name}) | {who} | skipped: {why} | | | | | | | |")
        alone, after = LABELS["gpubp"], LABELS["gpubp-after-torch"]
        if alone in loop and after in loop:
            lines.append(
                f"| ({name}) | slowdown of gpubp after torch (time after / alone) | | "
                f"{_median(epoch, after) / _median(epoch, alone):.2f}x | "
                f"{_median(loop, after) / _median(loop, alone):.2f}x | | | | | |"
            )
    gpubp, reference = LABELS["gpubp"], LABELS["gpubp-reference"]
    lines += [
        "",
        "Ratios within each round, median (min-max) over the rounds; speed-ups above 1 when "
        "gpubp is faster, loop / floor is a time over the floor's.",
        "",
        "| config | fit vs torch | fit vs sklearn | fit vs GPUBP_NUMBA=0 | loop vs torch "
        "| loop vs GPUBP_NUMBA=0 | loop / floor | torch loop / floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in results["configs"].items():
        fit, loop = entry["fit"], entry["loop"]
        cells = [
            _per_round(fit, torch, gpubp),
            _per_round(fit, sklearn, gpubp),
            _per_round(fit, reference, gpubp),
            _per_round(loop, torch, gpubp),
            _per_round(loop, reference, gpubp),
            _per_round(loop, gpubp, floor),
            _per_round(loop, torch, floor),
        ]
        lines.append(f"| ({name}) | " + " | ".join(cells) + " |")
    blas = sorted({b for e in results["configs"].values() for v in e["blas"].values() for b in v})
    lines += ["", "BLAS in the workers: " + "; ".join(blas) + "."]
    kernels = {who: k for e in results["configs"].values() for who, k in e["kernels"].items()}
    lines += ["", "CPU kernels: " + "; ".join(f"{who}: {k}" for who, k in kernels.items()) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        return worker(argv[1], argv[2], int(argv[3]), int(argv[4]), (argv[5:] or [None])[0])
    p = argparse.ArgumentParser(prog="python -m benchmarks.own_process", description=__doc__)
    p.add_argument("--configs", default="a,b,c32", help="comma-separated (default a,b,c32)")
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--rows", type=int, default=60_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--baseline", help="a checkout whose gpubp runs as one more contender")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--stem", default="own-process-cpu", help="file names in --out")
    args = p.parse_args(argv)
    from .epoch import environment

    keys = args.contenders.split(",") + (["baseline"] if args.baseline else [])
    env = environment(argparse.Namespace(threads=args.threads), gpu=False)
    env["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE", "")
    results = {"environment": env, "rows": args.rows, "rounds": args.rounds, "configs": {}}
    for config in args.configs.split(","):
        results["configs"][config] = measure(
            config, keys, args.rows, args.threads, args.rounds, args.baseline
        )
        print(markdown({**results, "configs": {config: results["configs"][config]}}))
    from .measure import write_results

    write_results(args.out, args.stem, results, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
