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

A checkpoint is a file of the model file's version 1 container (an .npz of arrays
and a JSON description, never a pickle; every array with its SHA-256), written
atomically (``gpubp.file_formats.write_atomically``: a temporary file, flushed,
renamed, the folder flushed) as ``checkpoint-NNNNNNNN.npz``; the newest two are
kept, and a damaged newest one falls back to the one before, with a warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import os
import re
import threading
import time

import numpy as np

from .backend import is_sparse, to_numpy
from .errors import CheckpointError, InputError, ModelFileError, warn_at_caller
from .file_formats import NpzFile, sha256, sync_folder, write_atomically, write_npz
from .inputs.shards import sampled_digest
from .train import EpochSums, Position

FORMAT = "gpubp-checkpoint"
VERSION = 1
PATTERN = "checkpoint-{:08d}.npz"
KEPT = 2  # the newest checkpoints kept: the last one and the one before
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


# -- the files -----------------------------------------------------------------------------


class Folder:
    """A run's checkpoint files in ``path``: ``write`` a new one, read the ``latest``."""

    def __init__(self, path, writer: bool = True):
        self.path = os.fspath(path)
        self.writer = writer
        if writer:
            self._check_writable()

    def _check_writable(self) -> None:
        try:
            os.makedirs(self.path, exist_ok=True)
            for stale in glob.glob(os.path.join(glob.escape(self.path), ".checkpoint-*.tmp")):
                os.unlink(stale)  # left by a write that was killed
            probe = os.path.join(self.path, ".gpubp-can-write")
            write_atomically(probe, lambda f: f.write(b"gpubp"))
            os.unlink(probe)
        except OSError as exc:
            raise CheckpointError(f"cannot write checkpoints to {self.path}: {exc}") from None

    def files(self) -> list[str]:
        """The checkpoint files, newest first."""
        names = glob.glob(os.path.join(glob.escape(self.path), "checkpoint-*.npz"))
        numbered = [(int(m.group(1)), p) for p in names if (m := _NUMBER.search(p))]
        return [p for _, p in sorted(numbered, reverse=True)]

    def write(self, description: dict, arrays: dict) -> str:
        """A new checkpoint file (the older ones but the newest KEPT - 1 removed after)."""
        files = self.files()
        number = int(_NUMBER.search(files[0]).group(1)) + 1 if files else 1
        path = os.path.join(self.path, PATTERN.format(number))
        digests = sha256(arrays)
        description = dict(description, arrays={k: digests[k] for k in arrays})
        try:
            write_npz(path, json.dumps(description), arrays)
        except OSError as exc:
            kept = f"; {files[0]} is intact" if files else ""
            raise CheckpointError(f"{exc}{kept}") from None
        for old in files[KEPT - 1 :]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(old)
        sync_folder(self.path)
        return path

    def latest(self):
        """(description, arrays, path) of the newest checkpoint that reads whole, or None
        where there is none; a damaged newer one is passed over with a warning."""
        damaged = []
        for path in self.files():
            try:
                description, arrays = read(path)
            except Exception as exc:  # any way of failing to read: a damaged file
                damaged.append(f"{path} ({exc})")
                continue
            if damaged:
                warn_at_caller(
                    f"checkpoint {'; '.join(damaged)} cannot be read; going on from {path}"
                )
            return description, arrays, path
        if damaged:
            raise CheckpointError(
                f"no checkpoint in {self.path} can be read: {'; '.join(damaged)}. Remove the "
                "folder (or pass another one) to start afresh"
            )
        return None


_NUMBER = re.compile(r"checkpoint-(\d+)\.npz$")


def read(path) -> tuple[dict, dict]:
    """(description, arrays) of a checkpoint file, every array checked against its SHA-256."""
    with NpzFile(path) as f:
        description = json.loads(f.description())
        if description.get("format") != FORMAT or description.get("version") != VERSION:
            raise ModelFileError(f"{path}: not a version {VERSION} gpubp checkpoint")
        declared = description["arrays"]
        if f.names() != set(declared):
            raise ModelFileError(f"{path}: its arrays are not the ones it lists")
        arrays = {name: f.read(name) for name in sorted(declared)}
    for name, digest in sha256(arrays).items():
        if digest != declared[name]:
            raise ModelFileError(f"{path}: {name} is damaged (its SHA-256 is not the one saved)")
    return description, arrays


# -- the state as JSON and arrays ----------------------------------------------------------


def pack(tree, arrays: dict):
    """``tree`` (dicts, lists, numbers, text, arrays) as JSON-able values, its arrays moved
    to the host into ``arrays`` and named there."""
    if isinstance(tree, dict):
        return {str(k): pack(v, arrays) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [pack(v, arrays) for v in tree]
    if dataclasses.is_dataclass(tree):
        return pack({f.name: getattr(tree, f.name) for f in dataclasses.fields(tree)}, arrays)
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    if isinstance(tree, np.generic) and tree.ndim == 0 and tree.dtype.kind in "biuf":
        tree = np.asarray(tree)  # keeps its dtype: a float32 sum stays float32
    if hasattr(tree, "shape") and hasattr(tree, "dtype"):
        name = f"a{len(arrays)}"
        arrays[name] = np.array(to_numpy(tree), order="C")  # 0-d stays 0-d
        return {"@array": name}
    raise TypeError(f"a checkpoint cannot hold {type(tree).__name__}")


def unpack(tree, arrays: dict):
    """The tree ``pack`` gave, its arrays NumPy arrays."""
    if isinstance(tree, dict):
        if "@array" in tree:
            return arrays[tree["@array"]]
        return {k: unpack(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [unpack(v, arrays) for v in tree]
    return tree


# -- what identifies a run -----------------------------------------------------------------


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

    def finish(self) -> None:
        """The last checkpoint: the run is over, and a fit with it does not train again."""
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
