"""The two containers of a gpubp model file, and writing a file atomically.

Format version 2 (what ``gpubp.save`` writes) is a safetensors file: the weights
``W_1, b_1, ..., W_L, b_L`` as tensors and the model's JSON description as the
metadata entry ``gpubp``. Version 1 is an .npz archive of those arrays plus
``classes`` and ``feature_names``, the description as its ``__gpubp__`` entry.
Both readers check an array's declared size against the file before allocating
it, and neither ever unpickles.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .errors import ModelFileError

SAFETENSORS_KEY = "gpubp"  # the metadata entry holding the description
NPZ_META = "__gpubp__"
ZIP_MAGIC = b"PK\x03\x04"  # every .npz is a zip archive
MAX_MEMBER_BYTES = 8 * 2**34  # an .npz member larger than any model we write


def container(path) -> str:
    """ "safetensors" or "npz", from the file's first bytes (a safetensors file is an
    8-byte header length and then its JSON header)."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head.startswith(ZIP_MAGIC):
        return "npz"
    if len(head) == 9 and head[8:] == b"{":
        return "safetensors"
    raise ModelFileError(
        f"{path}: not a gpubp model file (neither a safetensors file nor an .npz archive)"
    )


def sha256(arrays: dict) -> dict:
    """{name: the SHA-256 of the array's bytes as hexadecimal text}, the arrays hashed in
    threads (hashlib lets go of the GIL: two cores hash 134 MB in half the time)."""

    def digest(a):
        return hashlib.sha256(np.ascontiguousarray(a).data).hexdigest()

    with ThreadPoolExecutor(max(1, min(len(arrays), os.cpu_count() or 1))) as pool:
        return dict(zip(arrays, pool.map(digest, arrays.values())))


class SafetensorsFile:
    """A safetensors file open for reading (a context manager): ``description()``,
    ``names()`` and ``read(name)``. The library checks the header against the file's
    size when it opens it."""

    version = 2

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        from safetensors import safe_open

        self._file = safe_open(os.fspath(self.path), framework="np")
        metadata = self._file.metadata() or {}
        if SAFETENSORS_KEY not in metadata:
            self._file.__exit__(None, None, None)
            raise ModelFileError(
                f"{self.path}: not a gpubp model file (a safetensors file without a "
                f"{SAFETENSORS_KEY!r} description)"
            )
        self._description = metadata[SAFETENSORS_KEY]
        return self

    def __exit__(self, *exc):
        self._file.__exit__(*exc)

    def description(self) -> str:
        return self._description

    def names(self) -> set:
        return set(self._file.keys())

    def read(self, name) -> np.ndarray:
        return self._file.get_tensor(name)


class NpzFile:
    """An .npz model file open for reading, as ``SafetensorsFile``."""

    version = 1

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self._file = open(self.path, "rb")
        try:
            self._npz = np.load(self._file, allow_pickle=False)
            if not isinstance(self._npz, np.lib.npyio.NpzFile) or NPZ_META not in self._npz.files:
                raise ModelFileError(f"{self.path}: not a gpubp model file (no {NPZ_META} entry)")
        except BaseException:
            self._file.close()
            raise
        return self

    def __exit__(self, *exc):
        self._npz.close()
        self._file.close()

    def description(self) -> str:
        entry = self.read(NPZ_META)
        if entry.dtype.kind != "U" or entry.shape != ():
            raise ModelFileError(f"{self.path}: the {NPZ_META} entry is not a JSON text")
        return str(entry)

    def names(self) -> set:
        return set(self._npz.files) - {NPZ_META}

    def read(self, name) -> np.ndarray:
        """One array of the archive, its .npy header checked against the member's size
        first, so a header that claims more data than the file holds allocates nothing."""
        info = self._npz.zip.getinfo(f"{name}.npy")
        with self._npz.zip.open(info) as f:
            version = np.lib.format.read_magic(f)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read_header is None:
                raise ModelFileError(f"{self.path}: {name} has an unknown .npy version {version}")
            shape, _, dtype = read_header(f)
            size = f.tell() + dtype.itemsize * int(np.prod(shape, dtype=object))
        if dtype.hasobject or size != info.file_size or info.file_size > MAX_MEMBER_BYTES:
            raise ModelFileError(
                f"{self.path}: {name} declares shape {shape} of {dtype}, which does not match "
                f"its {info.file_size} bytes"
            )
        return self._npz[name]


READERS = {"safetensors": SafetensorsFile, "npz": NpzFile}


def write_safetensors(path, description: str, tensors: dict) -> None:
    """A version 2 file: ``tensors`` (C-contiguous NumPy arrays) and the description."""
    from safetensors.numpy import save_file

    write_atomically(
        path,
        lambda name: save_file(tensors, name, metadata={SAFETENSORS_KEY: description}),
        by_name=True,
    )


def write_npz(path, description: str, arrays: dict) -> None:
    """A version 1 file: ``arrays`` and the description as the __gpubp__ entry."""
    entries = {**arrays, NPZ_META: np.array(description)}
    write_atomically(path, lambda f: np.savez(f, **entries))


def write_atomically(path, write, *, by_name=False) -> None:
    """Call ``write(f)`` on a new binary file beside ``path`` (``write(name)``, its name,
    with ``by_name``, for writers that open the file themselves) and rename it onto
    ``path`` when complete: an error or interruption leaves what was at ``path`` as it
    was. The file is flushed to the disk before the rename and the folder after it, so
    that after a crash (even of the machine) ``path`` holds the old file or the new one,
    whole. Permissions follow the umask; errors name ``path``, never the temporary file."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    try:
        if by_name:
            mode = os.fstat(fd).st_mode & 0o777
            os.close(fd)
            write(tmp)
            os.chmod(tmp, mode)  # a writer that replaces the file sets its own permissions
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        _remove(tmp)
        raise
    sync_folder(folder)


def sync_folder(folder) -> None:
    """Flush a folder's entries (a rename, a removal) to the disk, where the system allows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # a file system that cannot sync folders
        pass
    finally:
        os.close(fd)


def _remove(path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
