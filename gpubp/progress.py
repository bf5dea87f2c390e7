"""Progress of a fit on stderr: tqdm's bar on a terminal, plain lines in a log.

A batch job's log (stderr a file or a pipe) gets one line per epoch, at most one
every LOG_SECONDS, and the last one always, instead of the bar's carriage returns.
"""

from __future__ import annotations

import sys
import time

LOG_SECONDS = 5.0


def progress(total: int, desc: str, unit: str, done: int = 0):
    """A bar (``update``, ``set_postfix``, ``close``) counting ``unit``s up to ``total``."""
    stream = sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, mininterval=0.5, initial=done)
    return LogLines(total, desc, unit, done, stream)


class LogLines:
    """tqdm's interface, writing ``desc: 12/200 units, loss=0.5 (3.1 s)`` lines."""

    def __init__(self, total, desc, unit, done, stream):
        self.total, self.desc, self.unit, self.n, self.stream = total, desc, unit, done, stream
        self.start = time.monotonic()
        self.last = -LOG_SECONDS
        self.postfix = {}
        self.shown = done

    def set_postfix(self, values: dict, refresh: bool = False) -> None:
        self.postfix = dict(values)

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= LOG_SECONDS:
            self._line()

    def close(self) -> None:
        if self.n != self.shown:
            self._line()

    def _line(self) -> None:
        now = time.monotonic()
        words = "".join(f", {k}={v}" for k, v in self.postfix.items())
        print(
            f"{self.desc}: {self.n}/{self.total} {self.unit}s{words} ({now - self.start:.1f} s)",
            file=self.stream,
            flush=True,
        )
        self.last, self.shown = now, self.n
