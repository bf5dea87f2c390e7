"""Checkpoint files: written atomically, read whole, the newest that reads.

A checkpoint is a file of the model file's version 1 container (an .npz of arrays
and a JSON description, never a pickle; every array with its SHA-256), written
atomically (``gpubp.file_formats.write_atomically``: a temporary file, flushed,
renamed, the folder flushed) as ``checkpoint-NNNNNNNN.npz``; the newest two are
kept, and a damaged newest one falls back to the one before, with a warning.
``pack`` and ``unpack`` turn a run's state (dicts, lists, numbers, arrays of
either backend) into JSON and host arrays and back. What a checkpoint holds, and
when it is written, is ``gpubp.checkpoint``'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import re

import numpy as np

from .backend import to_numpy
from .errors import CheckpointError, ModelFileError, warn_at_caller
from .file_formats import NpzFile, sha256, sync_folder, write_atomically, write_npz

FORMAT = "gpubp-checkpoint"
VERSION = 1
PATTERN = "checkpoint-{:08d}.npz"
KEPT = 2  # the newest checkpoints kept: the last one and the one before


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
