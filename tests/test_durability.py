"""Durability of a write: the order of the file-system calls of an atomic write, as a
crash of the machine would see them (write, flush the file, rename, flush the folder),
and what an interrupted write leaves."""

import os
import stat

import numpy as np
import pytest

import gpubp
from gpubp import file_formats
from gpubp.checkpoint_files import Folder


@pytest.fixture
def calls(monkeypatch):
    """The file-system calls of gpubp's writes, in order: ("fsync", what the descriptor
    is: "file" or "folder"), ("replace", target name), ("unlink", name)."""
    seen = []
    real_fsync, real_replace, real_unlink = os.fsync, os.replace, os.unlink

    def fsync(fd):
        kind = "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        seen.append(("fsync", kind))
        return real_fsync(fd)

    def replace(src, dst, *a, **kw):
        seen.append(("replace", os.path.basename(dst)))
        return real_replace(src, dst, *a, **kw)

    def unlink(path, *a, **kw):
        seen.append(("unlink", os.path.basename(path)))
        return real_unlink(path, *a, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "unlink", unlink)
    return seen


def durable(seen, name) -> bool:
    """Whether ``name`` was flushed, then renamed into place, then its folder flushed."""
    rename = seen.index(("replace", name))
    return ("fsync", "file") in seen[:rename] and ("fsync", "folder") in seen[rename + 1 :]


@pytest.mark.parametrize("by_name", [False, True])
def test_an_atomic_write_flushes_the_file_renames_it_then_flushes_the_folder(
    tmp_path, calls, by_name
):
    target = tmp_path / "model.bin"

    def write(f):
        if by_name:
            with open(f, "wb") as g:
                g.write(b"new")
        else:
            f.write(b"new")

    file_formats.write_atomically(target, write, by_name=by_name)
    assert target.read_bytes() == b"new"
    assert calls == [("fsync", "file"), ("replace", "model.bin"), ("fsync", "folder")]


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_a_saved_model_is_durable(tmp_path, calls, suffix):
    X = np.random.default_rng(0).normal(size=(40, 3))
    model = gpubp.MLPRegressor(
        hidden_layer_sizes=(4,), max_iter=2, random_state=0, backend="numpy", tol=1e9
    )
    model.fit(X, X[:, 0])
    calls.clear()
    gpubp.save(model, tmp_path / f"m{suffix}")
    assert durable(calls, f"m{suffix}")


def test_a_checkpoint_is_durable_and_the_oldest_goes_after_the_newest_is(tmp_path, calls):
    folder = Folder(tmp_path / "run")
    for k in range(3):
        folder.write({"k": k}, {"a": np.full(3, k)})
    renamed = [name for call, name in calls if call == "replace"]
    assert renamed == [".gpubp-can-write", *(f"checkpoint-{k:08d}.npz" for k in (1, 2, 3))]
    for k in (1, 2, 3):
        assert durable(calls, f"checkpoint-{k:08d}.npz")
    # the oldest is removed only once the newest is in place, and the removal flushed
    removed = calls.index(("unlink", "checkpoint-00000001.npz"))
    assert removed > calls.index(("replace", "checkpoint-00000003.npz"))
    assert ("fsync", "folder") in calls[removed + 1 :]
    assert [p.rsplit(os.sep, 1)[-1] for p in folder.files()] == [
        "checkpoint-00000003.npz",
        "checkpoint-00000002.npz",
    ]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_an_interrupted_write_leaves_the_old_file_and_no_temporary_one(tmp_path, stop):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")

    def write(f):
        f.write(b"half")
        raise stop

    with pytest.raises(stop if isinstance(stop, type) else type(stop)):
        file_formats.write_atomically(target, write)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]
