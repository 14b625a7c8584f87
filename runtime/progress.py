"""Progress for long work: a tqdm bar on a terminal, one summary line in a log.

A bar redraws itself with carriage returns; written to a file or a CI log
(no TTY) that fills it with partial lines. So :func:`progress` returns a tqdm
bar only when the stream is a terminal, and otherwise an object with the same
``update``/``close`` calls that prints a single line when the work ends::

    datagen: 200/200 frames in 12.4 s (16.1 frames/s)
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    """What callers use of a progress bar."""

    def update(self, n: int = 1) -> Any: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...

    def close(self) -> None: ...


class _Summary:
    """No redraws: counts, then one line on ``close`` (idempotent)."""

    def __init__(self, total: int | None, desc: str, unit: str, stream: TextIO) -> None:
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.n = 0
        self._t0 = time.perf_counter()
        self._closed = False
        self.postfix = ""

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.n == 0:  # nothing done (failed at the start): no line to add beside the error
            return
        wall = time.perf_counter() - self._t0
        done = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        rate = f" ({self.n / wall:.1f} {self.unit}s/s{'; ' + self.postfix if self.postfix else ''})" if wall > 0 else ""
        print(f"{self.desc}: {done} {self.unit}s in {wall:.1f} s{rate}", file=self.stream, flush=True)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int | None, desc: str, unit: str, *, enabled: bool = True,
             stream: TextIO | None = None) -> Progress:
    """A bar for ``total`` units of work (None: unknown) on ``stream`` (default stderr).

    ``enabled=False`` (``--no-progress``) shows nothing at all.
    """
    out = stream if stream is not None else sys.stderr
    if not enabled:
        return _Silent()
    if out.isatty():
        from tqdm import tqdm

        bar: Progress = tqdm(total=total, desc=desc, unit=unit, file=out, leave=False)
        return bar
    return _Summary(total, desc, unit, out)
