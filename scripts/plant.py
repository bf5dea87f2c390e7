"""Plant realistic slips in the code one at a time and run the tests that concern each:
does the suite catch them? (docs/testing.md, "Planted slips")

    python scripts/plant.py                      # every slip, its test files on every backend
    python scripts/plant.py --list               # the slips, where they go and their tests
    python scripts/plant.py bagging cv-refit     # these slips only
    python scripts/plant.py --whole              # the whole suite per slip, not its tests
    python scripts/plant.py --tree DIR --run "pytest -x -q {tests}" \\
        --run "GPUBP_NUMBA=0 pytest -x -q {tests}" \\
        --run "pytest -x -q --cupy-standin {tests}"  # another checkout (here: the suite
                                                     # before one run served three backends)

Each slip is planted in a fresh copy of the tree (its tracked and untracked files, not the
ignored ones; the working tree itself is never touched), and the commands run in that copy
with PYTHONPATH set to it, so that child processes import the planted code too. A slip
counts as caught when a command exits with 1 (tests failed) or runs past ``--timeout``
(a hang); later commands are then skipped. A slip whose text is not in its file exactly
once is reported stale: the code moved, and the slip must follow it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUN = "pytest -x -q -p no:cacheprovider {tests}"


@dataclass(frozen=True)
class Slip:
    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


SLIPS = [
    Slip(
        "cuda-kernel",
        "the CUDA Nesterov step takes the old velocity (kernels.py)",
        "gpubp/kernels.py",
        "v = mu * v_in - lr * g; theta = theta_in + mu * v - lr * g;",
        "v = mu * v_in - lr * g; theta = theta_in + mu * v_in - lr * g;",
        ("test_kernels", "test_graphs", "test_gpu", "test_optimizers"),
    ),
    Slip(
        "numba-kernel",
        "numba's Adam adds epsilon under the square root (cpu_kernels.py)",
        "gpubp/cpu_kernels.py",
        "rate * mi / (math.sqrt(vi) + eps)",
        "rate * mi / math.sqrt(vi + eps)",
        ("test_cpu_kernels", "test_optimizers", "test_estimators"),
    ),
    Slip(
        "reference-formula",
        "the softmax Jacobian's sum loses its F (functions.py)",
        "gpubp/functions.py",
        "F * (E - xp.sum(F * E, axis=-1, keepdims=True))",
        "F * (E - xp.sum(E, axis=-1, keepdims=True))",
        ("test_gradients", "test_network", "test_losses", "test_hand_worked", "test_torch_oracle"),
    ),
    Slip(
        "host-transfer",
        "each step reads its loss on the host (epoch.py)",
        "gpubp/epoch.py",
        "sums.total = sums.total + trace.loss * (end - start)",
        "sums.total = sums.total + float(trace.loss) * (end - start)",
        ("test_device_traffic", "test_graphs", "test_gpu"),
    ),
    Slip(
        "checkpoint-field",
        "a checkpoint leaves out the optimiser's step count t (optim.py)",
        "gpubp/optim.py",
        'k not in ("fused", "_rate_column")}',
        'k not in ("fused", "_rate_column", "t")}',
        ("test_checkpoint",),
    ),
    Slip(
        "resume-rng-order",
        "an epoch's generator state is taken after it drew its order (epoch.py)",
        "gpubp/epoch.py",
        "        self.rng_state = None if run is None else rng.bit_generator.state"
        "  # for a checkpoint\n"
        "        self.order = data.epoch_order(rng, shuffle, batch_size)\n",
        "        self.order = data.epoch_order(rng, shuffle, batch_size)\n"
        "        self.rng_state = None if run is None else rng.bit_generator.state"
        "  # for a checkpoint\n",
        ("test_checkpoint", "test_errors"),
    ),
    Slip(
        "streamed-order",
        "a streamed chunk reads its rows sorted, not in the epoch's order (inputs/data.py)",
        "gpubp/inputs/data.py",
        "                else order[start : start + step]\n",
        "                else np.sort(order[start : start + step])\n",
        ("test_streaming",),
    ),
    Slip(
        "bounded-reader",
        "a Parquet file is read whole, then cut into chunks (tables.py)",
        "gpubp/tables.py",
        "for batch in f.iter_batches(batch_size=rows):",
        "for batch in f.read().to_batches(max_chunksize=rows):",
        ("test_cli_files",),
    ),
    Slip(
        "command-option",
        "the command's --penalty is not passed on (cli/train.py)",
        "gpubp/cli/train.py",
        "        penalty=args.penalty,\n",
        "",
        ("test_cli", "test_cli_edges", "test_cli_files", "test_penalties"),
    ),
    Slip(
        "error-message",
        "a CSV's errors name the line before (tables.py)",
        "gpubp/tables.py",
        "    table = _tidy(table, 2)\n    if table.empty:",
        "    table = _tidy(table, 1)\n    if table.empty:",
        ("test_cli", "test_cli_edges", "test_cli_files"),
    ),
    Slip(
        "mpi-path",
        "a rank also takes the first case of the next rank's shard (train_distributed.py)",
        "gpubp/train_distributed.py",
        "cases[(cases >= lo) & (cases < hi)]",
        "cases[(cases >= lo) & (cases <= hi)]",
        ("test_distributed",),
    ),
    Slip(
        "saved-file-field",
        "a saved model leaves out weight elimination's w0 (model_checks.py)",
        "gpubp/model_checks.py",
        '        "w0": net.w0,\n',
        "",
        ("test_persist", "test_penalties", "test_properties"),
    ),
    Slip(
        "stack-rate",
        "the adaptive schedule cuts every network's rate when one stops improving (optim.py)",
        "gpubp/optim.py",
        "self._set_learning_rate(np.where(cut, rates / 5.0, rates))",
        "self._set_learning_rate(rates / 5.0)",
        ("test_stack", "test_optimizers", "test_cv"),
    ),
    Slip(
        "bagging",
        "the out-of-bag output averages over every network, not the ones it is out of (bagging.py)",
        "gpubp/estimators/bagging.py",
        "F[done : done + n][seen] = sums[seen] / voters[seen, None]",
        "F[done : done + n][seen] = sums[seen] / len(voters)",
        ("test_bagging",),
    ),
    Slip(
        "cv-refit",
        "the CV refit keeps the default learning rate, not the best one (estimators/cv_search.py)",
        "gpubp/estimators/cv_search.py",
        "alpha=self.alpha_, learning_rate_init=self.learning_rate_init_",
        "alpha=self.alpha_",
        ("test_cv",),
    ),
]


# The audit of "Tests that see features together": slips in streaming, checkpoints,
# preemption, the watchdog, bagging, the graph cache and the readers (docs/testing.md).
TOGETHER = ("test_together",)
SLIPS += [
    Slip(
        "stream-tail",
        "a streamed epoch in turn drops its last, shorter chunk (inputs/data.py)",
        "gpubp/inputs/data.py",
        "                for start in range(0, self.n, step)\n",
        "                for start in range(0, self.n - self.n % step, step)\n",
        (*TOGETHER, "test_streaming"),
    ),
    Slip(
        "stream-resume-slice",
        "a resumed epoch in turn reads its chunk from the chunk's start again (inputs/data.py)",
        "gpubp/inputs/data.py",
        "                positions = slice(positions.start + skip, positions.stop)",
        "                positions = slice(positions.start, positions.stop)",
        (*TOGETHER, "test_streaming"),
    ),
    Slip(
        "stream-pause-skip",
        "a streamed epoch paused for a checkpoint starts its rows again (epoch.py)",
        "gpubp/epoch.py",
        "chunks = data.chunks(net.backend, order, batch_size, skip=run.sums.rows)",
        "chunks = data.chunks(net.backend, order, batch_size, skip=0)",
        (*TOGETHER, "test_streaming"),
    ),
    Slip(
        "validation-tail",
        "a streamed validation set is scored without its last, shorter chunk (inputs/data.py)",
        "gpubp/inputs/data.py",
        "        for start in range(0, held_out.n, step):",
        "        for start in range(0, held_out.n - step + 1, step):",
        (*TOGETHER, "test_streaming"),
    ),
    Slip(
        "buffer-seed",
        "the rows within a buffer take the same order every epoch and seed (inputs/data.py)",
        "gpubp/inputs/data.py",
        "rng = np.random.default_rng([self.seed, b])",
        "rng = np.random.default_rng(b)",
        ("test_streaming",),
    ),
    Slip(
        "reader-hang",
        "the reader thread is joined before it is told to stop (inputs/data.py)",
        "gpubp/inputs/data.py",
        "        done.set()\n        thread.join()\n",
        "        thread.join()\n        done.set()\n",
        (*TOGETHER, "test_streaming"),
    ),
    Slip(
        "reader-left",
        "the reader thread is told to stop but not waited for (inputs/data.py)",
        "gpubp/inputs/data.py",
        "        done.set()\n        thread.join()\n",
        "        done.set()\n",
        (*TOGETHER, "test_streaming"),
    ),
    Slip(
        "feed-pinned",
        "the host refills the pinned buffer before its copy has finished (inputs/device.py)",
        "gpubp/inputs/device.py",
        "            self.filled.synchronize()  # the pinned buffers' last copy is done: "
        "refill them\n",
        "            pass\n",
        ("test_streaming",),
    ),
    Slip(
        "feed-event",
        "the compute stream takes a chunk without waiting for its copy (inputs/device.py)",
        "gpubp/inputs/device.py",
        "        compute.wait_event(self.filled)\n",
        "",
        ("test_streaming",),
    ),
    Slip(
        "feed-drained",
        "the copy stream refills the staging buffer before compute has moved it (inputs/device.py)",
        "gpubp/inputs/device.py",
        "                self.stream.wait_event(self.drained)\n",
        "                pass\n",
        ("test_streaming",),
    ),
    Slip(
        "timer-left",
        "a timed checkpoint's alarm is not closed when the fit ends (checkpoint.py)",
        "gpubp/checkpoint.py",
        "            self._alarm.close()  # no thread of the run outlives it\n",
        "            pass\n",
        (*TOGETHER, "test_checkpoint_trust"),
    ),
    Slip(
        "alarm-once",
        "the alarm is not set going again after a checkpoint, so it rings once (checkpoint.py)",
        "gpubp/checkpoint.py",
        "        if self._alarm is not None:\n            self._alarm.reset()\n",
        "",
        TOGETHER,
    ),
    Slip(
        "auto-first",
        "auto waits a minute for its first checkpoint, as before (checkpoint.py)",
        "gpubp/checkpoint.py",
        "(not self._written or time.monotonic()",
        "(time.monotonic()",
        ("test_checkpoint_trust",),
    ),
    Slip(
        "longer-finished",
        "a run that reached max_iter stays finished when max_iter is raised (checkpoint.py)",
        "gpubp/checkpoint.py",
        'self.finished, self.extended = "", before',
        "self.extended = before",
        ("test_checkpoint_trust",),
    ),
    Slip(
        "longer-anything",
        "max_iter may be lowered below the epochs a checkpoint has run (checkpoint.py)",
        "gpubp/checkpoint.py",
        "if now.get(LONGER, 0) < epochs:",
        "if now.get(LONGER, 0) < 0:",
        ("test_checkpoint_trust",),
    ),
    Slip(
        "end-after",
        "the last checkpoint is written after the loop's end changed the weights (train.py)",
        "gpubp/train.py",
        "    if run is not None:\n        run.end(reason)",
        "    if run is not None and False:\n        run.end(reason)",
        ("test_checkpoint", "test_checkpoint_trust"),
    ),
    Slip(
        "cli-catch-some",
        "the command lets an error type it did not list out as a traceback (cli/__init__.py)",
        "gpubp/cli/__init__.py",
        "        except Exception as exc:  # noqa: BLE001 - the one line the command promises\n",
        "        except (CommandError, ValueError, TypeError, OSError) as exc:\n",
        ("test_cli_first_hour",),
    ),
    Slip(
        "warnings-python",
        "the command's warnings are Python's two lines (cli/__init__.py)",
        "gpubp/cli/__init__.py",
        "        warnings.showwarning = show\n",
        "        pass\n",
        ("test_cli", "test_cli_first_hour"),
    ),
    Slip(
        "parser-usage",
        "an option argparse cannot parse prints the usage too (cli/options.py)",
        "gpubp/cli/options.py",
        '        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\\n")\n',
        "        super().error(message)\n",
        ("test_cli_first_hour",),
    ),
    Slip(
        "out-here",
        "train writes into the current folder, as before (cli/options.py)",
        "gpubp/cli/options.py",
        'OUT = "gpubp-run"',
        'OUT = "."',
        ("test_cli_first_hour",),
    ),
    Slip(
        "overwrite-silent",
        "train replaces a model in --out that another run wrote (cli/train.py)",
        "gpubp/cli/train.py",
        "    if not ours:\n",
        "    if False:\n",
        ("test_cli_first_hour",),
    ),
    Slip(
        "force-ignored",
        "--force does not let train replace a model (cli/train.py)",
        "gpubp/cli/train.py",
        "    if args.force or not os.path.exists(path):\n",
        "    if not os.path.exists(path):\n",
        ("test_cli_first_hour",),
    ),
    Slip(
        "own-model-refused",
        "a run of the checkpoint that wrote the model may not replace it (cli/train.py)",
        "gpubp/cli/train.py",
        '    ours = args.checkpoint is not None and record.get("checkpoint")',
        '    ours = args.checkpoint is None and record.get("checkpoint")',
        ("test_cli_first_hour",),
    ),
    Slip(
        "empty-left",
        "a refused run leaves the folders it made (cli/train.py)",
        "gpubp/cli/train.py",
        "            _remove_if_empty(folder)\n",
        "            pass\n",
        ("test_cli_first_hour", "test_checkpoint"),
    ),
    Slip(
        "split-shuffled",
        "rows read whole train in the split's shuffled order (cli/train.py)",
        "gpubp/cli/train.py",
        "    train, test = np.sort(train), np.sort(test)\n",
        "    if isinstance(X, SelectedRows):\n"
        "        train, test = np.sort(train), np.sort(test)\n",
        ("test_cli_first_hour",),
    ),
    Slip(
        "chunks-always",
        "Parquet and .npy files are read in chunks even when they fit (tables.py)",
        "gpubp/tables.py",
        "    return (need, limit) if need > limit else None\n",
        '    return (need, limit) if need > limit or file_kind(path) != "csv" else None\n',
        ("test_cli_first_hour",),
    ),
    Slip(
        "near-none",
        "a wrong column name suggests nothing (tables.py)",
        "gpubp/tables.py",
        "    close = difflib.get_close_matches(str(name), columns, n=3, cutoff=0.6)\n",
        "    close = []\n",
        ("test_cli_first_hour",),
    ),
    Slip(
        "drop-ignored",
        "--drop leaves nothing out (cli/data.py)",
        "gpubp/cli/data.py",
        "c != args.target and c not in args.drop]",
        "c != args.target]",
        ("test_cli_first_hour",),
    ),
    Slip(
        "early-stop-lost",
        "--early-stopping never reaches the estimator (cli/train.py)",
        "gpubp/cli/train.py",
        "        early_stopping=args.early_stopping,\n",
        "",
        ("test_cli_first_hour",),
    ),
    Slip(
        "finished-time",
        "a finished run rerun reports its own time, as if it had trained (cli/train.py)",
        "gpubp/cli/train.py",
        "        seconds = after[1]\n",
        "        pass\n",
        ("test_cli_first_hour",),
    ),
    Slip(
        "resume-silent",
        "a run that reads a checkpoint says nothing (checkpoint.py)",
        "gpubp/checkpoint.py",
        '        say(f"going on from the checkpoint {self.read_from}, {where}")\n',
        "",
        ("test_checkpoint_trust", "test_cli_first_hour"),
    ),
    Slip(
        "one-class-repr",
        "the one-class error prints np.int64(1) (estimators/targets.py)",
        "gpubp/estimators/targets.py",
        "(only.item() if isinstance(only, np.generic) else only)!r}",
        "only!r}",
        ("test_cli_first_hour",),
    ),
    Slip(
        "init-name",
        "a misspelled parameter's error names BaseMLP (estimators/base.py)",
        "gpubp/estimators/base.py",
        '            cls.__init__ = renamed(BaseMLP.__init__, f"{cls.__name__}.__init__")\n',
        "            pass\n",
        ("test_cli_first_hour",),
    ),
    Slip(
        "memory-dtype",
        "a fit's memory need is sized in float64 whatever its dtype (memory.py)",
        "gpubp/memory.py",
        "    itemsize = np.dtype(dtype).itemsize\n",
        "    itemsize = 8\n",
        ("test_memory",),
    ),
    Slip(
        "memory-unchecked",
        "a new network is allocated without asking whether it fits (plan.py)",
        "gpubp/estimators/plan.py",
        "        check_fits(who, sizes, stack, self.dtype, self.solver, batch, early, backend)\n",
        "",
        ("test_memory",),
    ),
    Slip(
        "growth-unseen",
        "a loss grown tenfold past its start does not count as diverged (divergence.py)",
        "gpubp/divergence.py",
        "| (loss > GROWTH * start) |",
        "|",
        ("test_divergence",),
    ),
    Slip(
        "lost-unseen",
        "a loss back above its start and tenfold its lowest is not diverged (divergence.py)",
        "gpubp/divergence.py",
        "lost = (loss > start) & (",
        "lost = (loss > 2 * start) & (",
        ("test_divergence",),
    ),
    Slip(
        "growth-unseen-one",
        "one network's loss grown tenfold past its start is not diverged (divergence.py)",
        "gpubp/divergence.py",
        "        return loss > GROWTH * start or (loss > start",
        "        return (loss > start",
        ("test_divergence",),
    ),
    Slip(
        "start-each-resume",
        "a resumed run measures its starting loss again, at the resumed weights (train.py)",
        "gpubp/train.py",
        "if record.history.start_loss is None and not resumed:",
        "if True:",
        ("test_divergence",),
    ),
    Slip(
        "start-sample",
        "the starting loss leaves out the case weights (divergence.py)",
        "gpubp/divergence.py",
        "xp.sum(R_i if part.w is None else R_i * part.w, axis=-1)",
        "xp.sum(R_i, axis=-1)",
        ("test_divergence",),
    ),
    Slip(
        "stack-timer",
        "the epochs never start the timed checkpoints' timer (train.py)",
        "gpubp/train.py",
        "            if run is not None:\n                run.watch(stop)\n",
        "",
        TOGETHER,
    ),
    Slip(
        "quit-checkpoint",
        "a preempted or interrupted epoch writes no checkpoint where it stopped (epoch.py)",
        "gpubp/epoch.py",
        "        if self.quit and self.checkpoints is not None:\n"
        "            self.checkpoints.pause(self.position())\n",
        "",
        (*TOGETHER, "test_errors"),
    ),
    Slip(
        "signals-restore",
        "only SIGINT's handler is put back after a fit: SIGTERM stays caught (train.py)",
        "gpubp/train.py",
        "        for s, h in previous.items():\n            signal.signal(s, h)\n",
        "        signal.signal(signal.SIGINT, previous[signal.SIGINT])\n",
        (*TOGETHER, "test_errors"),
    ),
    Slip(
        "file-fsync",
        "an atomic write renames its file before flushing it to the disk (file_formats.py)",
        "gpubp/file_formats.py",
        "                f.flush()\n                os.fsync(f.fileno())\n",
        "                f.flush()\n",
        ("test_durability", "test_persist"),
    ),
    Slip(
        "folder-fsync",
        "an atomic write does not flush the folder after its rename (file_formats.py)",
        "gpubp/file_formats.py",
        "\n    sync_folder(folder)\n",
        "\n",
        ("test_durability", "test_persist"),
    ),
    Slip(
        "temp-left",
        "an interrupted atomic write leaves its temporary file (file_formats.py)",
        "gpubp/file_formats.py",
        "    except BaseException:\n        _remove(tmp)\n        raise\n",
        "    except BaseException:\n        raise\n",
        ("test_durability", "test_persist"),
    ),
    Slip(
        "watchdog-armed",
        "the watchdog stays armed after an all-reduce: the job ends after fit (distributed.py)",
        "gpubp/distributed.py",
        "            self.watchdog.since = None\n",
        "            pass\n",
        ("test_distributed",),
    ),
    Slip(
        "oob-chunk",
        "the out-of-bag pass reads the counts of the outer chunk, not the piece (bagging.py)",
        "gpubp/estimators/bagging.py",
        "left_out = (counts[:, done : done + n] == 0)[..., None]",
        "left_out = (counts[:, start : start + n] == 0)[..., None]",
        (*TOGETHER, "test_bagging"),
    ),
    Slip(
        "oob-rows",
        "the out-of-bag outputs fill the first rows, not the training rows (estimators/bagging.py)",
        "gpubp/estimators/bagging.py",
        "    F[rows] = F_rows\n",
        "    F[: len(rows)] = F_rows\n",
        (*TOGETHER, "test_bagging"),
    ),
    Slip(
        "predict-tail",
        "prediction drops the last, shorter chunk of rows (inputs/prepare.py)",
        "gpubp/inputs/prepare.py",
        "    for start in range(0, n, rows):\n",
        "    for start in range(0, max(n - rows, 0) + 1, rows):\n",
        (*TOGETHER, "test_edges"),
    ),
    Slip(
        "graph-cache-leak",
        "the graph cache's steps hold their network: no fitted network is ever freed (graphs.py)",
        "gpubp/graphs.py",
        "weakref.proxy(net), optimizer, key",
        "net, optimizer, key",
        ("test_graphs", "test_estimators"),
    ),
    Slip(
        "graph-key-momentum",
        "the graph cache's key leaves out the momentum (graphs.py)",
        "gpubp/graphs.py",
        'baked = ("momentum", "nesterov", "beta_1", "beta_2", "epsilon")',
        'baked = ("nesterov", "beta_1", "beta_2", "epsilon")',
        ("test_graphs",),
    ),
    Slip(
        "graph-key-alpha",
        "the graph cache's key leaves out alpha (graphs.py)",
        "gpubp/graphs.py",
        "        tuple(np.ravel(objective.alpha)),\n",
        "",
        ("test_graphs",),
    ),
    Slip(
        "graph-key-penalty",
        "the graph cache's key leaves out the penalty and w0 (graphs.py)",
        "gpubp/graphs.py",
        "        net.penalty,\n        net.w0,\n",
        "",
        ("test_graphs", "test_penalties"),
    ),
    Slip(
        "graph-never-replayed",
        "a captured step is never launched: each step runs its kernels again (graphs.py)",
        "gpubp/graphs.py",
        "        return lambda: graph.launch(stream)\n",
        "        return self.step\n",
        ("test_graphs",),
    ),
    Slip(
        "npy-row-names",
        "a .npy file read in chunks numbers every chunk's rows from 1 (tables.py)",
        "gpubp/tables.py",
        "        index = pd.RangeIndex(start + 1, start + 1 + len(block))\n",
        "        index = pd.RangeIndex(1, 1 + len(block))\n",
        ("test_cli_files",),
    ),
    Slip(
        "parquet-row-names",
        "a Parquet file read in chunks numbers every chunk's rows from 1 (tables.py)",
        "gpubp/tables.py",
        "            first += len(table)\n",
        "",
        ("test_cli_files",),
    ),
    Slip(
        "cv-chunk-rng",
        "the CV's second chunk of networks shuffles on from the first's generator (cv.py)",
        "gpubp/estimators/cv_search.py",
        "            chunk_rng = np.random.default_rng(shuffle_seed)\n",
        "            chunk_rng = chunk_rng if i else np.random.default_rng(shuffle_seed)\n",
        (*TOGETHER, "test_cv"),
    ),
    Slip(
        "command-temp-left",
        "the command's temporary copy of a data file is left in --out (cli/data.py)",
        "gpubp/cli/data.py",
        "    cleanup.callback(shutil.rmtree, folder, ignore_errors=True)\n",
        "",
        ("test_cli_files",),
    ),
]


# The input path and the training plan (issue 49): prepare, plan, publish, one epoch loop.
PATH_SLIPS = [
    Slip(
        "prepare-labels",
        "a data-parallel classifier encodes only its own rank's classes (inputs/prepare.py)",
        "gpubp/inputs/prepare.py",
        "labels = all_labels(comm, targets, y) if reset or not incremental else None",
        "labels = None",
        ("test_distributed",),
    ),
    Slip(
        "targets-keep",
        "partial_fit fits a new label binarizer on every call (estimators/targets.py)",
        "gpubp/estimators/targets.py",
        "self.keep, self.warm_start = keep and binarizer is not None, warm_start",
        "self.keep, self.warm_start = False, warm_start",
        ("test_estimators", "test_reference"),
    ),
    Slip(
        "plan-bootstrap-seed",
        "a warm refit of a bag draws new bootstrap samples (estimators/plan.py)",
        "gpubp/estimators/plan.py",
        "elif first or previous.bootstrap_seed is None:",
        "elif True:",
        ("test_bagging",),
    ),
    Slip(
        "checkpoint-end",
        "a run that is over writes no last checkpoint, so a rerun trains again (checkpoint.py)",
        "gpubp/checkpoint.py",
        'if reason != "interrupted" and not self.finished:',
        "if False:",
        ("test_checkpoint", "test_checkpoint_trust"),
    ),
    Slip(
        "loop-epoch-end",
        "the loop never asks for a checkpoint at an epoch's end (train.py)",
        "gpubp/train.py",
        "                if run is not None:\n                    run.epoch_ended(record.epochs)\n",
        "",
        ("test_checkpoint", "test_reference"),
    ),
    Slip(
        "holdout-stratify",
        "early stopping's split is never stratified (estimators/holdout.py)",
        "gpubp/estimators/holdout.py",
        "if targets.classifier and n_outputs == 1:",
        "if False:",
        ("test_estimators", "test_reference"),
    ),
    Slip(
        "publish-on-error",
        "a fit stopped by an error publishes nothing (estimators/base.py)",
        "gpubp/estimators/base.py",
        "        try:\n            plan.run(prepared, previous, outcome, incremental)\n"
        "        finally:\n            self._publish(outcome)\n",
        "        plan.run(prepared, previous, outcome, incremental)\n"
        "        self._publish(outcome)\n",
        ("test_estimators", "test_errors", "test_together"),
    ),
    Slip(
        "cv-dense",
        "the CV search hands a sparse X to its stack (estimators/cv_search.py)",
        "gpubp/estimators/cv_search.py",
        "streaming=False, stack=True",
        "streaming=False, stack=False",
        ("test_cv", "test_edges"),
    ),
    Slip(
        "stack-going",
        "a stack's epochs go on after every network has stopped (train_stack.py)",
        "gpubp/train_stack.py",
        "        return bool(self.history.running.any())",
        "        return True",
        ("test_stack", "test_reference"),
    ),
    Slip(
        "doc-parameter-skipped",
        "the estimators' Parameters section leaves out init (estimators/docstrings.py)",
        "gpubp/estimators/docstrings.py",
        '        if name == "self" or name not in PARAMETERS:',
        '        if name in ("self", "init") or name not in PARAMETERS:',
        ("test_docs",),
    ),
    Slip(
        "doc-parameter-missing",
        "load's docstring forgets a parameter (persist.py)",
        "gpubp/persist.py",
        "    backend : {'auto', 'numpy', 'cupy'}, default='auto'\n"
        "        Where the loaded model runs.\n",
        "",
        ("test_docs",),
    ),
    Slip(
        "api-page-name",
        "the API page leaves out a public name (docs/api.md)",
        "docs/api.md",
        "   Preempted\n   PREEMPTED\n",
        "   Preempted\n",
        ("test_docs",),
    ),
    Slip(
        "doc-link",
        "a page links to a page that is not there (docs/performance.md)",
        "docs/performance.md",
        "the [performance history](performance-history.md).",
        "the [performance history](history.md).",
        ("test_docs",),
    ),
    Slip(
        "constant-doc",
        "PREEMPTED loses its doc comment: its page shows int's docstring (gpubp/__init__.py)",
        "gpubp/__init__.py",
        "#: The exit status of a preempted run, 75 (EX_TEMPFAIL: try again later). A job script"
        " that\n#: sees it requeues the job, and the same command goes on from its checkpoint.\n",
        "",
        ("test_docs",),
    ),
    Slip(
        "link-anchor",
        "the link checker looks only for files, not anchors (tests/test_docs.py)",
        "tests/test_docs.py",
        '            elif parts.fragment and file.suffix == ".html":',
        "            elif False:",
        ("test_docs",),
    ),
    Slip(
        "readme-link",
        "the README links to a page under a wrong name (README.md)",
        "README.md",
        "[long runs and preemption](docs/guide/long-runs.md)",
        "[long runs and preemption](docs/guide/long-run.md)",
        ("test_docs",),
    ),
    Slip(
        "doc-claim",
        "a guide page's example claims a score it does not print (docs/guide/gpu-or-laptop.md)",
        "docs/guide/gpu-or-laptop.md",
        "print(round(cpu.score(X / 16, y), 2))  # 0.98",
        "print(round(cpu.score(X / 16, y), 2))  # 0.99",
        ("test_examples",),
    ),
    Slip(
        "notebook-assert",
        "an assert back in a notebook's middle cell (notebooks/03)",
        "notebooks/03_what_the_network_learns.ipynb",
        '"N_times_loss = len(X_train) * model.loss_\\n",',
        '"N_times_loss = len(X_train) * model.loss_\\n",\n    "assert N_times_loss > 0\\n",',
        ("test_notebooks",),
    ),
]
SLIPS += PATH_SLIPS

# What scikit-learn's MLP users asked for (issue 52): class weights, the Poisson loss,
# early stopping on the loss, callbacks, pipelines in skops files.
ASKED_SLIPS = [
    Slip(
        "poisson-delta",
        "the Poisson loss's delta goes through g' again: (f - y) f (functions.py)",
        "gpubp/functions.py",
        "return F, xp.sum(F - Y * T + y_log_y - Y, axis=-1), F - Y",
        "return F, xp.sum(F - Y * T + y_log_y - Y, axis=-1), (F - Y) * F",
        ("test_poisson", "test_optimizers"),
    ),
    Slip(
        "poisson-factor",
        "the Poisson loss scaled by 1 / (2K) as the squared error (estimators/targets.py)",
        "gpubp/estimators/targets.py",
        'return 1.0 if self.loss == "poisson" else 1.0 / (2 * K)',
        "return 1.0 / (2 * K)",
        ("test_poisson", "test_optimizers"),
    ),
    Slip(
        "poisson-negative",
        "negative counts let through unless below -1 (estimators/targets.py)",
        "gpubp/estimators/targets.py",
        'if self.loss == "poisson" and (Y < 0).any():',
        'if self.loss == "poisson" and (Y < -1).any():',
        ("test_poisson",),
    ),
    Slip(
        "onnx-exp",
        "the ONNX graph reshapes T, not exp(T), for loss='poisson' (onnx_export.py)",
        "gpubp/onnx_export.py",
        "            scope,\n            predictions,\n",
        "            scope,\n            flat.full_name,\n",
        ("test_poisson",),
    ),
    Slip(
        "balanced-unweighted",
        "'balanced' class weights from unweighted counts (estimators/targets.py)",
        "gpubp/estimators/targets.py",
        "class_weight, classes=classes, y=y, sample_weight=sample_weight",
        "class_weight, classes=classes, y=y",
        ("test_class_weight",),
    ),
    Slip(
        "class-weight-streamed",
        "a streamed fit takes a column of labels as multi-label rows (inputs/prepare.py)",
        "gpubp/inputs/prepare.py",
        "targets.weigh, labels[:, 0] if flat else labels, w_host, comm",
        "targets.weigh, labels, w_host, comm",
        ("test_class_weight",),
    ),
    Slip(
        "cv-fold-balance",
        "the CV search's class weights from all the cases, not each fold's (cv_search.py)",
        "gpubp/estimators/cv_search.py",
        "            y, w = y_all[train], w_all[train]\n",
        "            y, w = y_all, w_all\n",
        ("test_class_weight",),
    ),
    Slip(
        "stop-on-loss-one",
        "one network's loss rule counts a lower loss as no improvement (train.py)",
        "gpubp/train.py",
        "worse, better = val_loss > best - tol, val_loss < best",
        "worse, better = val_loss < best - tol, val_loss < best",
        ("test_early_stopping_loss",),
    ),
    Slip(
        "stop-on-loss-stack",
        "a stack stops on the score whatever early_stopping_metric says (train_stack.py)",
        "gpubp/train_stack.py",
        'if stop_on == "loss":  # lower is better',
        'if stop_on == "losses":  # lower is better',
        ("test_early_stopping_loss",),
    ),
    Slip(
        "added-later-identity",
        "early_stopping_metric in every checkpoint's identity (estimators/plan.py)",
        "gpubp/estimators/plan.py",
        'ADDED_LATER = {"early_stopping_metric": "score", "class_weight": None}',
        'ADDED_LATER = {"class_weight": None}',
        ("test_reference",),
    ),
    Slip(
        "callback-stop-ignored",
        "a callback's request to stop is not heard (train.py)",
        "gpubp/train.py",
        "                if stopped or asked:\n",
        "                if stopped:\n",
        ("test_callbacks",),
    ),
    Slip(
        "callback-stale-net",
        "an epoch's fitted_estimator keeps the network of the last fit (callbacks.py)",
        "gpubp/estimators/callbacks.py",
        'return {**self.fitted_attributes, "_net": None, "_weights": host}',
        'return {**self.fitted_attributes, "_weights": host}',
        ("test_callbacks",),
    ),
    Slip(
        "pipeline-trust-all",
        "a pipeline file's untrusted types are all trusted (pipeline_files.py)",
        "gpubp/pipeline_files.py",
        "unknown = [t for t in untrusted if t not in TRUSTED]",
        "unknown = []",
        ("test_pipeline_files",),
    ),
    Slip(
        "pipeline-columns",
        "the command turns a pipeline's text columns into numbers (cli/predict.py)",
        "gpubp/cli/predict.py",
        "    if isinstance(model, Pipeline):\n        return table[names]\n",
        "",
        ("test_pipeline_files",),
    ),
    Slip(
        "pickle-kept",
        "a pickled stack keeps its stopped networks' weights on the device (weights.py)",
        "gpubp/estimators/weights.py",
        "on_device = [k for k in ON_DEVICE if getattr(history, k, None) is not None]",
        'on_device = [k for k in ("best_theta",) if getattr(history, k, None) is not None]',
        ("test_gpu",),
    ),
]
SLIPS += ASKED_SLIPS


def copy_tree(tree: Path, into: Path) -> None:
    """The tracked and untracked (not ignored) files of the git checkout ``tree``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=tree,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = tree / os.fsdecode(name)
        target = into / os.fsdecode(name)
        if source.is_symlink():  # docs/notebooks: the link itself, as git keeps it
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def plant(copy: Path, slip: Slip) -> bool:
    """Put ``slip`` into the copy; False if its text is not in the file exactly once."""
    path = copy / slip.path
    text = path.read_text() if path.exists() else ""
    if text.count(slip.old) != 1:
        return False
    path.write_text(text.replace(slip.old, slip.new))
    return True


def first_failure(output: str) -> str:
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    return match.group(1) if match else ""


def run_slip(tree: Path, slip: Slip, commands: list[str], whole: bool, timeout: float) -> dict:
    tests = "" if whole else " ".join(f"tests/{t}.py" for t in slip.tests)
    with tempfile.TemporaryDirectory(prefix=f"plant-{slip.name}-") as folder:
        copy = Path(folder)
        copy_tree(tree, copy)
        if not plant(copy, slip):
            return {"verdict": "stale", "by": "", "test": "", "seconds": 0.0}
        paths = [folder, *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        started = time.perf_counter()
        for i, command in enumerate(commands, start=1):
            run = subprocess.Popen(
                command.format(tests=tests),
                shell=True,
                cwd=copy,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # a group of its own: a hang is ended whole
            )
            try:
                stdout, stderr = run.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)  # the shell, pytest and its workers
                run.communicate()
                return _verdict("caught (timeout)", i, "", started)
            out = subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr)
            stopped = out.returncode == 2 and "stopping after" in out.stdout  # xdist's -x
            if out.returncode == 1 or stopped:
                return _verdict("caught", i, first_failure(out.stdout), started)
            if out.returncode != 0:
                tail = (out.stdout + out.stderr).strip().splitlines()[-3:]
                return _verdict(f"error {out.returncode}: {' | '.join(tail)}", i, "", started)
        return _verdict("missed", 0, "", started)


def _verdict(verdict: str, by: int, test: str, started: float) -> dict:
    seconds = time.perf_counter() - started
    return {"verdict": verdict, "by": by or "", "test": test, "seconds": seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="slips to plant (default: all)")
    parser.add_argument("--list", action="store_true", help="list the slips and stop")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to copy")
    parser.add_argument(
        "--run",
        action="append",
        help=f"a command ({{tests}}: the slip's test files); default {DEFAULT_RUN!r}",
    )
    parser.add_argument("--whole", action="store_true", help="run the whole suite per slip")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per command")
    args = parser.parse_args(argv)
    known = {s.name: s for s in SLIPS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"no slip named {', '.join(unknown)}; --list shows them")
    slips = [known[n] for n in args.names] or SLIPS
    if args.list:
        for s in slips:
            print(f"{s.name:18} {s.what}\n{'':18} tests: {', '.join(s.tests)}")
        return 0
    commands = args.run or [DEFAULT_RUN]
    print("| slip | what | verdict | command | first failing test | s |")
    print("|---|---|---|---|---|---|")
    missed = 0
    for slip in slips:
        r = run_slip(args.tree.resolve(), slip, commands, args.whole, args.timeout)
        missed += not r["verdict"].startswith("caught")
        print(
            f"| {slip.name} | {slip.what} | {r['verdict']} | {r['by']} | {r['test']} "
            f"| {r['seconds']:.0f} |",
            flush=True,
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
