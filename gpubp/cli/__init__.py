"""The ``gpubp`` command: ``train``, ``predict``, ``export`` and ``info``.

A thin face over the estimators and save/load. Whatever happens, the command ends with
status 0, 1 (an error), 2 (a bad option), 75 (preempted: go on later) or 130
(interrupted), an error is one line on stderr and a warning one line, never a
traceback. ``options`` holds the command line, one module each the commands (``train``
with ``data``, its data sets and files; ``predict``; ``export``; ``info``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

from ..errors import DeviceMemoryError, DivergenceError, InsufficientMemoryError, Preempted
from .options import CommandError, parser

__all__ = ["CommandError", "main"]


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    name = f"gpubp {args.command}"
    with one_line_warnings(name):
        try:
            return args.run(args)
        except BrokenPipeError:
            return _reader_left()
        except Preempted as exc:
            print(f"{name}: {exc}; no model written", file=sys.stderr)
            return exc.code
        except KeyboardInterrupt:
            saved = "; no model written" if args.command == "train" else ""
            print(f"{name}: interrupted{saved}", file=sys.stderr)
            return 130
        except Exception as exc:  # noqa: BLE001 - the one line the command promises
            print(f"{name}: error: {words(exc)}", file=sys.stderr)
            return 1


def words(exc: Exception) -> str:
    """An error in the command's words: its message, the estimator's parameter names as
    the command's options; an error nobody foresaw names its type, to be reported."""
    text = str(exc)
    if isinstance(exc, DivergenceError):
        return text.replace("learning_rate_init", "--lr") + " No model written."
    if isinstance(exc, (InsufficientMemoryError, DeviceMemoryError)):
        return text  # they say what to change
    if isinstance(exc, MemoryError):
        return f"out of memory: {text or 'an allocation failed'}"
    if isinstance(exc, (CommandError, ValueError, TypeError, OSError, RuntimeError)):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text} (unexpected: please report it)"


@contextlib.contextmanager
def one_line_warnings(name: str):
    """Warnings shown as one line each, ``gpubp train: warning: ...``, not Python's two."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{name}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _reader_left() -> int:
    """The reader of our output went away (``| head``): stop quietly, as SIGPIPE would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's last flush at exit must not fail
    return 141
