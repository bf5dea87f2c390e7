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
``training`` goes around the training loop: the saved state put back before, the timer
stopped after, and at the end the last checkpoint of a run that is over, or
``Preempted``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import threading
import time

import numpy as np

from .backend import is_sparse
from .checkpoint_files import FORMAT, VERSION, Folder, pack, unpack
from .distributed import agree
from .epoch import Position
from .errors import CheckpointError, InputError, Preempted
from .inputs.shards import sampled_digest
from .objective import EpochSums

AUTO_SECONDS = 60.0  # "auto": at the end of an epoch, at most once a minute
ON_DEVICE = ("best_theta", "kept")  # the history's arrays of the backend (weights)
FINGERPRINT_ROWS = 4096  # the rows of X, y and the weights that a data fingerprint reads


# -- when ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cadence:
    """When to write: every ``epochs`` epochs, at an epoch's end once ``seconds`` have
    passed (``at_epoch_end``), or ``seconds`` after the last write at the next step."""

    epochs: int | None = None
    seconds: float | None = None
    at_epoch_end: bool = True


def cadence(every) -> Cadence:
    """``checkpoint_every``: "auto" (an epoch's end, at most every 60 s), an epoch count
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


def start_of(folder):
    """The generator state that the run whose checkpoints are in ``folder`` started from
    (None: no checkpoint there)."""
    saved = Folder(folder, writer=False).latest() if os.path.isdir(folder) else None
    return None if saved is None else saved[0]["state"]["start_rng"]


@contextlib.contextmanager
def training(run, net, optimizer, history, rng, start_rng, to_device):
    """Around a training loop (``run`` None: no checkpoints): yields whether the run is
    already over (a rerun of a finished fit trains nothing); the saved state put back
    before, the timer stopped after; and once the loop ended, the last checkpoint of a
    run that is over, or ``Preempted`` (status 75) for one preempted, its checkpoint
    written. The loop's stop reasons are the history's."""
    if run is None:
        yield False
        return
    run.bind(net, optimizer, history, rng, start_rng, to_device)
    finished = run.finished
    try:
        yield finished
    finally:
        run.close()
    if not finished:
        run.end(getattr(history, "stop_reasons", None) or [history.stop_reason])


class Run:
    """A fit's checkpoints: reads the newest at the start, writes new ones when due.

    ``identity`` (JSON-able) says what run this is; a checkpoint of another is refused.
    ``bind`` names the values a checkpoint holds; ``saved`` is the state read at the
    start (None: none), ``position`` its place inside an epoch. Only the ``writer``
    (rank 0 of several) writes; every rank reads.
    """

    def __init__(self, path, every, identity: dict, writer: bool = True):
        self.cadence = cadence(every)
        self.folder = Folder(path, writer)
        self.identity = json.loads(json.dumps(identity))
        self.saved, self.position, self.finished = None, None, False
        self._stop, self._timer, self._last = None, None, time.monotonic()
        self._values = None
        latest = self.folder.latest()
        if latest is None:
            return
        description, arrays, path = latest
        different = mismatch(description["identity"], self.identity)
        if different:
            raise CheckpointError(
                f"the checkpoint {path} belongs to another run: {'; '.join(different)}. Run "
                "with the settings and data it was written with to go on from it, or remove "
                f"{self.folder.path} (or give another checkpoint folder) to start afresh"
            )
        self.saved = (description["state"], arrays)
        self.finished = bool(description["state"]["finished"])

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

    def take_position(self):
        """The saved place inside an epoch, once (then None): where the first epoch starts."""
        position, self.position = self.position, None
        return position

    def watch(self, stop: dict) -> None:
        """Ask ``stop`` for a checkpoint every ``cadence.seconds`` (a timer on a thread of
        its own, when the cadence is in seconds)."""
        self._stop = stop
        self._start_timer()

    def _start_timer(self) -> None:
        self.close()
        if self._stop is None or self.cadence.at_epoch_end or not self.folder.writer:
            return

        def due():
            self._stop["save"] = True
            self._stop["now"] = True

        self._timer = threading.Timer(self.cadence.seconds, due)
        self._timer.name, self._timer.daemon = "gpubp-checkpoint-timer", True
        self._timer.start()

    def pause(self, position) -> None:
        """A checkpoint inside an epoch, at ``position``; then the loop goes on."""
        self._write(position)
        if self._stop is not None:
            self._stop["save"] = False
            self._stop["now"] = bool(self._stop["quit"])
        self._start_timer()

    def epoch_ended(self, n_iter: int) -> None:
        """A checkpoint at the end of epoch ``n_iter`` if the cadence says so."""
        c = self.cadence
        if c.epochs is not None and n_iter % c.epochs == 0:
            self._write(None)
        elif (
            c.at_epoch_end and c.seconds is not None and time.monotonic() - self._last >= c.seconds
        ):
            self._write(None)

    def end(self, reasons) -> None:
        """After the loop stopped for ``reasons``: the last checkpoint of a run that is over
        (a fit with it does not train again); a preempted run raises Preempted."""
        if "preempted" in reasons:
            raise Preempted(
                f"training preempted; its checkpoint is in {self.folder.path}: run the same "
                "fit again to go on"
            )
        if "interrupted" not in reasons:
            self.close()
            self._write(None, finished=True)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()  # no thread of the run outlives it
            self._timer = None

    def _write(self, position, finished: bool = False) -> None:
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
        self._last = time.monotonic()


def _as_field(current, value):
    """A saved history value in the type the field has (NumPy arrays stay NumPy)."""
    if isinstance(current, np.ndarray) and isinstance(value, list):
        return np.array(value, dtype=current.dtype)
    return value
