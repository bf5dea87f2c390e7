"""The ``gpubp`` command: ``train``, ``predict``, ``export`` and ``info``.

A thin face over the estimators and save/load. Errors are one line on stderr
and a non-zero exit status, never a traceback. ``options`` holds the command line,
one module each the commands (``train`` with ``data``, its data sets and files;
``predict``; ``export``; ``info``).
"""

from __future__ import annotations

import os
import sys

from ..distributed import DistributedError
from ..errors import (
    PREEMPTED,
    BackendError,
    CheckpointError,
    DivergenceError,
    ModelFileError,
    Preempted,
)
from .options import CommandError, parser

__all__ = ["CommandError", "main"]


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (
        CommandError,
        ValueError,
        TypeError,
        OSError,
        BackendError,
        DivergenceError,
        ModelFileError,
        DistributedError,
        CheckpointError,
    ) as exc:
        if isinstance(exc, BrokenPipeError):
            return _reader_left()
        print(f"gpubp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except Preempted as exc:
        print(f"gpubp {args.command}: {exc}; no model written", file=sys.stderr)
        return PREEMPTED
    except KeyboardInterrupt:
        saved = "; no model written" if args.command == "train" else ""
        print(f"gpubp {args.command}: interrupted{saved}", file=sys.stderr)
        return 130


def _reader_left() -> int:
    """The reader of our output went away (``| head``): stop quietly, as SIGPIPE would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's last flush at exit must not fail
    return 141
