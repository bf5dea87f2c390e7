"""Checkpoints of a training run, and going on from them bit for bit.

A checkpoint holds the run as a value (DESIGN 6): the weights theta, the
optimiser's state (velocities, Adam's moments and step count, the learning rate
and its schedule's counters), the loop's record (``History``: loss curve,
validation scores, no-improvement count, best weights), the host generator's
state now and before the fit drew its first number (the starting weights and the
validation split follow from it), and, for a checkpoint written inside an epoch,
the ``Position`` there: the generator's state before the epoch drew its order, the
rows passed and the sums of the steps taken, and the weights the epoch started
from. With the same data, settings and number of ranks, going on from it takes
the steps the uninterrupted run would have taken, on the same numbers.

How the files are written and read is ``gpubp.checkpoint_files``'s. A fit's checkpoints
are one ``Run``, opened (``open_run``) with the fit's ``identity`` once every rank can;
``training`` goes around the training loop: the saved state put back before, the alarm
stopped after; the loop (``gpubp.train.run_epochs``) ``announce``s where it goes on from
and ``end``s the run: the last checkpoint of a run that is over, holding the loop's state
and why it stopped, or ``Preempted``.

A run that ended by reaching ``max_iter`` can be extended: the same fit with a larger
``max_iter`` goes on from its last checkpoint, to the end the longer run would have had.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import sys
import threading
import time

import numpy as np

from .backend import is_sparse
from .checkpoint_files import FORMAT, VERSION, Folder, pack, unpack
from .distributed import agree
from .epoch import Position
from .errors import CheckpointError, InputError, Preempted
from .file_formats import NpzFile
from .inputs.shards import sampled_digest
from .objective import EpochSums

AUTO_SECONDS = 60.0  # "auto": at the end of an epoch, at most once a minute
ON_DEVICE = ("best_theta", "kept")  # the history's arrays of the backend (weights)
FINGERPRINT_ROWS = 4096  # the rows of X, y and the weights that a data fingerprint reads


# -- when ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cadence:
    """When to write: every ``epochs`` epochs; or ("auto", ``at_epoch_end``) at an epoch's
    end when none was written in the last ``seconds`` (the first epoch's end always), and
    inside an epoch at the next step once ``seconds`` have passed since the later of the
    last write and the last epoch's end; or ``seconds`` after the last write, at the next
    step."""

    epochs: int | None = None
    seconds: float | None = None
    at_epoch_end: bool = True


def cadence(every) -> Cadence:
    """``checkpoint_every``: "auto" (the first epoch's end, then at most once a minute,
    inside an epoch longer than a minute too), an epoch count
    (1: every epoch) or seconds as text ("30s": every 30 s, at the next step)."""
    if every == "auto":
        return Cadence(seconds=AUTO_SECONDS)
    if isinstance(every, (int, np.integer)) and not isinstance(every, bool) and every >= 1:
        return Cadence(epochs=int(every))
    if isinstance(every, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(s?)\s*", every)
        if match and match.group(2):
            return Cadence(seconds=float(match.group(1)), at_epoch_end=False)
        if match and match.group(1).isdigit() and int(match.group(1)) >= 1:
            return Cadence(epochs=int(match.group(1)))
    raise InputError(
        f"checkpoint_every={every!r}: give 'auto', a number of epochs (1 or more) or a "
        "number of seconds such as '30s'"
    )


# -- what identifies a run -----------------------------------------------------------------

NOT_IDENTITY = ("verbose", "backend", "checkpoint", "checkpoint_every")  # may change on resume
LONGER = "max_iter"  # may grow: a run that reached it goes on (``Run``)


def plain(value):
    """A parameter's value as JSON (tuples as lists; a generator by its kind)."""
    if isinstance(value, (np.random.Generator, np.random.RandomState)):
        return type(value).__name__
    if isinstance(value, np.ndarray):
        value = value.tolist()
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)


def identity(kind, params, data, backend, comm, n_outputs, classes, more: dict) -> dict:
    """What a checkpoint of this fit must have been written for: the estimator's kind and
    parameters (but NOT_IDENTITY), the shapes, classes, ranks and data, and ``more``."""
    return {
        "estimator": kind,
        **{k: plain(v) for k, v in params.items() if k not in NOT_IDENTITY},
        "n_features": data.n_features,
        "n_outputs": n_outputs,
        "classes": plain(classes),
        "ranks": 1 if comm is None else comm.size,
        **more,
        "data": fingerprint(data, backend, comm),
    }


def fingerprint(data, backend, comm=None) -> str:
    """A digest of the training data: its size, and X, the encoded targets and the case
    weights at FINGERPRINT_ROWS evenly spaced rows (with several ranks, of every rank's
    rows). It reads a few thousand rows; a change elsewhere goes unseen."""

    def read(positions):
        if data.streamed:
            return data.gather(positions)
        rows = data.source_rows(positions)
        part = data.subset(backend, backend.to_device(rows), rows)
        return [
            a if a is None or isinstance(a, np.ndarray) else backend.to_host(a)
            for a in (part.X.toarray() if is_sparse(part.X) else part.X, part.Y, part.w_host)
        ]

    head = (data.n, data.n_global, data.n_features)
    own = sampled_digest(head, data.n, FINGERPRINT_ROWS, read)
    if comm is None:
        return own
    return hashlib.blake2b("".join(comm.allgather(own)).encode(), digest_size=16).hexdigest()


def mismatch(saved: dict, now: dict) -> list[str]:
    """What differs between a checkpoint's identity and this fit's, in words."""
    words = []
    for key in sorted(set(saved) | set(now)):
        if saved.get(key) != now.get(key):
            if key == "data":
                words.append("the training data (X, y or sample_weight) is not the same")
            else:
                words.append(f"{key} was {saved.get(key)} and is now {now.get(key)}")
    return words


# -- a run ---------------------------------------------------------------------------------


def open_run(folder, every, identity: dict, comm):
    """The ``Run`` in ``folder``, opened on every rank (rank 0 writes, every rank reads)
    once all of them can (a refused checkpoint raises on all of them)."""
    writer = comm is None or comm.rank == 0
    return agree(comm, lambda: Run(folder, every, identity, writer))


def newest(folder):
    """(path, training seconds so far) of the newest checkpoint in ``folder`` that names
    them, from its description alone (None: no checkpoint there)."""
    if not os.path.isdir(folder):
        return None
    for path in Folder(folder, writer=False).files():
        try:
            with NpzFile(path) as f:
                state = json.loads(f.description())["state"]
        except Exception:  # noqa: BLE001 - a damaged file: the one before may do
            continue
        return path, float(state.get("seconds") or 0.0)
    return None


def start_of(folder):
    """The generator state that the run whose checkpoints are in ``folder`` started from
    (None: no checkpoint there)."""
    saved = Folder(folder, writer=False).latest() if os.path.isdir(folder) else None
    return None if saved is None else saved[0]["state"]["start_rng"]


@contextlib.contextmanager
def training(run, net, optimizer, history, rng, start_rng, to_device):
    """Around a training loop (``run`` None: no checkpoints): the saved state put back
    before, the alarm stopped after. Yields whether to skip the loop and what follows it:
    only for a finished checkpoint of an earlier gpubp, whose state is the fit's end. In
    a run finished since, the loop takes no step (``run_epochs`` returns the saved
    reason) and what follows it runs again as it did."""
    if run is None:
        yield False
        return
    run.bind(net, optimizer, history, rng, start_rng, to_device)
    if run.finished:
        run.announce_finished()
    try:
        yield run.finished is True
    finally:
        run.close()


class Run:
    """A fit's checkpoints: reads the newest at the start, writes new ones when due.

    ``identity`` (JSON-able) says what run this is; a checkpoint of another is refused,
    but for a larger ``max_iter`` (``LONGER``). ``bind`` names the values a checkpoint
    holds; ``saved`` is the state read at the start (None: none), ``position`` its place
    inside an epoch; ``finished`` why the run ended ("" while it goes on; True for a
    checkpoint written before checkpoints held the reason); ``seconds`` the training time
    of the earlier processes. Only the ``writer`` (rank 0 of several) writes and speaks;
    every rank reads.
    """

    def __init__(self, path, every, identity: dict, writer: bool = True):
        self.cadence = cadence(every)
        self.folder = Folder(path, writer)
        self.identity = json.loads(json.dumps(identity))
        self.saved, self.position, self.finished = None, None, ""
        self.read_from, self.extended, self.seconds = None, None, 0.0
        self._stop, self._alarm, self._last, self._written = None, None, time.monotonic(), 0
        self._values, self._began = None, time.monotonic()
        latest = self.folder.latest()
        if latest is None:
            return
        description, arrays, path = latest
        state = description["state"]
        self._refuse_another(description["identity"], state, path)
        self.saved, self.read_from = (state, arrays), path
        self.finished = state["finished"] or ""
        self.seconds = float(state.get("seconds") or 0.0)
        before = description["identity"].get(LONGER)
        if self.finished == "max_iter" and self.identity.get(LONGER, 0) > before:
            self.finished, self.extended = "", before

    def _refuse_another(self, saved: dict, state: dict, path) -> None:
        """CheckpointError unless the checkpoint is of this run (a larger max_iter may go on
        from a checkpoint written with its epoch count; a smaller one than it has run may
        not)."""
        now = self.identity
        epochs = state.get("epochs")
        if epochs is not None and saved.get(LONGER) != now.get(LONGER):
            if now.get(LONGER, 0) < epochs:
                raise CheckpointError(
                    f"the checkpoint {path} has run {epochs} epochs: {LONGER} was "
                    f"{saved.get(LONGER)} and is now {now.get(LONGER)}; give {LONGER} of at "
                    f"least {epochs}, or remove {self.folder.path} to start afresh"
                )
            saved = dict(saved, **{LONGER: now.get(LONGER)})
        different = mismatch(saved, now)
        if different:
            raise CheckpointError(
                f"the checkpoint {path} belongs to another run: {'; '.join(different)}. Run "
                "with the settings and data it was written with to go on from it, or remove "
                f"{self.folder.path} (or give another checkpoint folder) to start afresh"
            )

    def start_rng(self):
        """The generator state the run started from (None: no checkpoint yet)."""
        return None if self.saved is None else self.saved[0]["start_rng"]

    def bind(self, net, optimizer, history, rng, start_rng, to_device) -> None:
        """What a checkpoint holds: net.theta, the optimiser's state, the history, the
        generator (and its state ``start_rng`` before the fit drew anything); the saved
        state, if any, is put back into them."""
        self._values = (net, optimizer, history, rng, start_rng)
        if self.saved is not None:
            self._restore(to_device)

    def _restore(self, to_device) -> None:
        """The saved state back into the bound values, the backend's arrays (theta, the
        optimiser's state, the best and kept weights, an epoch's running loss and starting
        weights) through ``to_device``: a checkpoint of one backend resumes on the other."""
        net, optimizer, history, rng, _ = self._values
        state = unpack(*self.saved)
        net.theta[...] = to_device(state["theta"])
        optimizer.load_state(state["optimizer"], to_device)
        for key, value in state["history"].items():
            if key in ON_DEVICE and value is not None:
                value = to_device(value)
            setattr(history, key, _as_field(getattr(history, key), value))
        rng.bit_generator.state = state["rng"]
        if state["position"] is not None:
            p = state["position"]
            sums = EpochSums(**p["sums"])
            if isinstance(sums.total, np.ndarray):
                sums.total = to_device(sums.total)
            if np.ndim(sums.penalty_weight) == 0 and isinstance(sums.penalty_weight, np.ndarray):
                sums.penalty_weight = to_device(sums.penalty_weight)  # summed on the device
            self.position = Position(p["epoch_rng"], sums, to_device(p["start_theta"]))

    def announce(self, epochs: int, max_iter: int, rows: int, batch_size: int) -> None:
        """Say on stderr where a run that read a checkpoint goes on from: which checkpoint,
        after which epoch (``epochs`` done) or at which step of the next."""
        if self.read_from is None or self.finished or not self.folder.writer:
            return
        where = f"after epoch {epochs} of {max_iter}"
        if self.extended is not None:
            where += f" (it had reached max_iter={self.extended})"
        if self.position is not None and self.position.sums.rows:
            steps = math.ceil(rows / batch_size)
            step = math.ceil(self.position.sums.rows / batch_size)
            where = f"in epoch {epochs + 1} of {max_iter}, after step {step} of {steps}"
        say(f"going on from the checkpoint {self.read_from}, {where}")

    def announce_finished(self) -> None:
        """Say on stderr that the run read is finished and trains nothing."""
        if not self.folder.writer:
            return
        said = f"the run checkpointed in {self.folder.path} is finished"
        state = self.saved[0]
        if isinstance(self.finished, str):
            said += f" (stopped: {self.finished}, after {state['epochs']} epochs)"
        say(f"{said}: nothing to train")

    def take_position(self):
        """The saved place inside an epoch, once (then None): where the first epoch starts."""
        position, self.position = self.position, None
        return position

    def watch(self, stop: dict) -> None:
        """Ask ``stop`` for a checkpoint inside an epoch when the cadence's seconds have
        passed (an alarm on a thread of its own, when the cadence is in seconds)."""
        self._stop = stop
        c = self.cadence
        if c.seconds is not None and self.folder.writer and self._alarm is None:
            self._alarm = Alarm(c.seconds, stop)

    def pause(self, position) -> None:
        """A checkpoint inside an epoch, at ``position``; then the loop goes on."""
        self._write(position)
        if self._stop is not None:
            self._stop["save"] = False
            self._stop["now"] = bool(self._stop["quit"])

    def epoch_ended(self, n_iter: int) -> None:
        """A checkpoint at the end of epoch ``n_iter`` if the cadence says so."""
        c = self.cadence
        if c.epochs is not None:
            if n_iter % c.epochs == 0:
                self._write(None)
        elif c.at_epoch_end and (not self._written or time.monotonic() - self._last >= c.seconds):
            self._write(None)
        elif c.at_epoch_end and self._alarm is not None:
            self._alarm.reset()  # inside an epoch: a minute after the later of the two

    def end(self, reason: str) -> None:
        """After the loop stopped for ``reason``: the last checkpoint of a run that is over,
        holding the loop's state and ``reason`` (a fit with it does not train again); a
        preempted run raises Preempted."""
        self.close()
        if reason == "preempted":
            raise Preempted(
                f"training preempted; its checkpoint is in {self.folder.path}: run the same "
                "command or fit again to go on"
            )
        if reason != "interrupted" and not self.finished:
            self._write(None, finished=reason)

    def elapsed(self) -> float:
        """The run's training time in seconds: the earlier processes' and this one's."""
        return self.seconds + time.monotonic() - self._began

    def close(self) -> None:
        if self._alarm is not None:
            self._alarm.close()  # no thread of the run outlives it
            self._alarm = None

    def _write(self, position, finished: str = "") -> None:
        if not self.folder.writer:
            return
        net, optimizer, history, rng, start_rng = self._values
        state = {
            "theta": net.theta,
            "optimizer": optimizer.state(),
            "history": history,
            "rng": rng.bit_generator.state,
            "start_rng": start_rng,
            "position": position,
            "finished": finished,
            "epochs": int(getattr(history, "epoch", getattr(history, "n_iter", 0))),
            "seconds": self.elapsed(),
        }
        arrays = {}
        tree = pack(state, arrays)
        description = {
            "format": FORMAT,
            "version": VERSION,
            "identity": self.identity,
            "state": tree,
        }
        self.folder.write(description, arrays)
        self._last, self._written = time.monotonic(), self._written + 1
        if self._alarm is not None:
            self._alarm.reset()


class Alarm:
    """Asks ``stop`` for a checkpoint at the next step (``stop["save"]`` and ``"now"``) once
    ``seconds`` have passed since it was started or last ``reset``: one thread for a run."""

    def __init__(self, seconds: float, stop: dict):
        self.seconds, self.stop = seconds, stop
        self._lock = threading.Condition()
        self._closed = False
        self.due = time.monotonic() + seconds
        self._thread = threading.Thread(target=self._wait, name="gpubp-checkpoint-timer")
        self._thread.daemon = True
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self.due = time.monotonic() + self.seconds
            self._lock.notify()

    def _wait(self) -> None:
        with self._lock:
            while not self._closed:
                left = self.due - time.monotonic()
                if left <= 0:
                    self.stop["save"] = True
                    self.stop["now"] = True
                    self.due = math.inf
                    continue
                self._lock.wait(None if left == math.inf else left)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join()


def say(words: str) -> None:
    """A line on stderr about the checkpoints, as the command and a fit print it."""
    print(f"gpubp: {words}", file=sys.stderr)


def _as_field(current, value):
    """A saved history value in the type the field has (NumPy arrays stay NumPy)."""
    if isinstance(current, np.ndarray) and isinstance(value, list):
        return np.array(value, dtype=current.dtype)
    return value
