"""Bounded waits on a capture: open and read time-outs, the reopen backoff, and when a live source gives up.

A capture backend can block inside ``open`` or ``read`` as long as it likes (a stalled HTTP
stream once took 186 s to fail). ``sources`` passes OpenCV's own time-outs to the backends that
have them; the two helpers here are the backstop for backends that ignore them:

- ``open_within`` runs an opener in a daemon thread and stops waiting after the open time-out;
- ``WatchedReader`` stamps every read, so the capture thread can call a read that has not
  returned within the read time-out a stall, abandon it and reopen.

A thread stuck in a blocking backend call cannot be killed. It is a daemon, it never touches the
source again, and it releases its capture itself if the call ever returns (releasing a capture
under a running read crashes some backends). A stall therefore costs one idle thread and one
capture until the backend gives up on its own; nothing waits for it, and it does not keep the
process alive.

No cv2 or numpy here, so ``give_up_after_s`` is cheap to import for ``--help``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

DEFAULT_OPEN_TIMEOUT_S = 5.0
DEFAULT_READ_TIMEOUT_S = 5.0
GRACE_S = 0.2  # our watchdogs wait this much longer than the backend's own time-out, so that one fires first
POLL_S = 0.05  # how often a waiting thread looks at the stop event and the watchdog
STOP_GRACE_S = 0.2  # after stop, how long a running read may take to return before it is abandoned


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` a source uses (fakes implement this in tests)."""

    def read(self) -> tuple[bool, Any]: ...
    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name
    def release(self) -> None: ...
    def get(self, prop: int) -> float: ...
    def set(self, prop: int, value: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reopen policy of a live source: ``attempts`` tries, waiting base_s * 2**k, capped at max_s."""

    attempts: int = 5
    base_s: float = 0.1
    max_s: float = 2.0

    def delay_s(self, attempt: int) -> float:
        return float(min(self.base_s * 2**attempt, self.max_s))


def give_up_after_s(backoff: Backoff | None = None, open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S,
                    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S) -> float:
    """Worst-case seconds from a live source's last frame to its ``SourceError``.

    The read that stalls, then for each of ``backoff.attempts`` reopen attempts its backoff
    delay, an open that takes the whole open time-out and a first read that stalls again (only
    a frame resets the attempts). Each time-out counts GRACE_S, the margin the watchdog leaves
    the backend's own time-out; the watchdog's polling adds up to POLL_S per step on top.
    With the defaults: 5.2 + (0.1 + 0.2 + 0.4 + 0.8 + 1.6) + 5 * (5.2 + 5.2) = 60.3 s.
    """
    backoff = backoff or Backoff()
    open_s, read_s = open_timeout_s + GRACE_S, read_timeout_s + GRACE_S
    delays_s = sum(backoff.delay_s(k) for k in range(backoff.attempts))
    return round(read_s + delays_s + backoff.attempts * (open_s + read_s), 3)


class _TimedOpen:
    """An opener running in its own daemon thread; a capture it opens after the caller gave up is released."""

    def __init__(self, opener: Callable[[], Capture], name: str) -> None:
        self._opener = opener
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._abandoned = False
        self.cap: Capture | None = None
        self.error: Exception | None = None
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        cap, error = None, None
        try:
            cap = self._opener()
        except Exception as exc:  # handed to the waiting thread
            error = exc
        with self._lock:
            self.cap, self.error, late = cap, error, self._abandoned
            self._done.set()
        if late and cap is not None:
            cap.release()

    def wait(self, timeout_s: float, stop: threading.Event) -> bool:
        """True when the opener returned within ``timeout_s``; False on time-out or ``stop`` (abandoned)."""
        deadline = time.perf_counter() + timeout_s
        try:
            while not self._done.is_set() and not stop.is_set():
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._done.wait(min(POLL_S, left))
        finally:  # also on KeyboardInterrupt in the main thread
            with self._lock:
                self._abandoned = not self._done.is_set()
        return not self._abandoned


def open_within(opener: Callable[[], Capture], timeout_s: float, stop: threading.Event, name: str) -> Capture | None:
    """``opener()``, waited for at most ``timeout_s`` + GRACE_S in a daemon thread named ``name``.

    None when it did not return in time or ``stop`` was set; re-raises the opener's exception.
    """
    opening = _TimedOpen(opener, name)
    if not opening.wait(timeout_s + GRACE_S, stop):
        return None
    if opening.error is not None:
        raise opening.error
    return opening.cap


class WatchedReader:
    """One capture, read by exactly one thread, which stamps each read for a watchdog in another.

    ``live``: an exception from the capture's read is a failure to recover from (``failure``
    says why), not an error. Once abandoned (a stall, or stop), ``read`` returns None without a
    frame and the body is expected to return; the capture is released when the body returns,
    by the thread that read it.
    """

    def __init__(self, cap: Capture, live: bool) -> None:
        self.cap = cap
        self.live = live
        self.failure: str | None = None  # why the last read gave no frame
        self.abandoned = False
        self._error: Exception | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._read_started: float | None = None  # perf_counter s when the running read began

    def read(self) -> Any | None:
        """The capture's next image; None when the read failed (see ``failure``) or the reader was abandoned."""
        with self._lock:
            self._read_started = started = time.perf_counter()
        try:
            ok, image = self.cap.read()
        except Exception as exc:
            if not self.live:
                raise
            ok, image, self.failure = False, None, f"read raised {exc}"
        with self._lock:
            self._read_started = None
            if self.abandoned:
                return None
        if ok and image is not None:
            return image
        took_s = time.perf_counter() - started  # a slow failure is usually the backend's own read time-out
        self.failure = self.failure or ("read failed" if took_s < POLL_S else f"read failed after {took_s:.1f} s")
        return None

    def watch(self, body: Callable[[WatchedReader], None], *, timeout_s: float | None,
              stop: threading.Event, name: str) -> str | None:
        """Run ``body(self)`` until it returns; why the capture failed, or None (the end, or stop).

        With ``timeout_s`` the body runs in a daemon thread named ``name``: a read that has not
        returned within ``timeout_s`` (+ GRACE_S) is a stall, and a read still running STOP_GRACE_S after
        ``stop`` is left behind; either way this returns without waiting for it. Without
        ``timeout_s`` the body runs here. Re-raises the body's unexpected exception.
        """
        if timeout_s is None:
            self._run(body)
        else:
            thread = threading.Thread(target=self._run, args=(body,), name=name, daemon=True)
            thread.start()
            if self._wait(timeout_s, stop):
                return f"read did not return within {timeout_s:g} s"
            if not self._done.is_set():
                return None  # stopped during a read that does not return
            thread.join()
        if self._error is not None:
            raise self._error
        return self.failure

    def _run(self, body: Callable[[WatchedReader], None]) -> None:
        try:
            body(self)
        except Exception as exc:  # re-raised by watch() in the capture thread
            self._error = exc
        finally:
            self.cap.release()
            self._done.set()

    def _wait(self, timeout_s: float, stop: threading.Event) -> bool:
        """Wait for the body to return; True (and abandoned) when a read stalls past ``timeout_s`` + GRACE_S."""
        while not self._done.wait(POLL_S):
            if stop.is_set():
                if not self._done.wait(STOP_GRACE_S):
                    with self._lock:
                        self.abandoned = True
                return False
            with self._lock:
                started = self._read_started
                if started is not None and time.perf_counter() - started > timeout_s + GRACE_S:
                    self.abandoned = True
                    return True
        return False
