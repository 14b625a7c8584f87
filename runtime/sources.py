"""Frame sources: video files, cameras, RTSP/HTTP streams, GStreamer pipelines, synthetic.

``open_source(spec)`` turns a string into a ``Source``. Every source reads in its
own capture thread, so decoding overlaps inference:

- **live** sources (cameras, streams, ``synthetic:``) keep only the newest frame:
  a new frame replaces an unconsumed one and the drop is counted; a capture that
  fails is reopened with exponential backoff, and when that runs out the consumer
  gets ``SourceError(exit_code=1)``. Cameras and streams open and read under
  time-outs (``source_timeouts``): a read that has not returned within the read
  time-out is a failure like any other, so a stalled stream gives up within
  ``give_up_after_s(backoff, open_timeout_s, read_timeout_s)`` of its last frame.
- **files** are read in full through a small blocking queue (no drops), or, with
  ``realtime=True``, released at their own timestamps and behave like live ones.

The consumer calls ``read()``: it blocks until a frame it has not seen yet is
there, returns None at the end of the stream or within a few ms of ``close()``, and
raises the capture's error. OpenCV's and FFmpeg's own stderr logging is silenced on
import: our errors and warnings say what failed, once.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2

from edgepilot.runtime.errors import RUNTIME_FAILURE, SourceError
from edgepilot.runtime.frame import Frame
from edgepilot.runtime.options import MAX_SIDE
from edgepilot.runtime.source_timeouts import (
    DEFAULT_OPEN_TIMEOUT_S,
    DEFAULT_READ_TIMEOUT_S,
    Backoff,
    Capture,
    WatchedReader,
    give_up_after_s,
    open_within,
)
from edgepilot.runtime.synthetic import SyntheticCapture, write_pattern_clip

__all__ = ["Backoff", "Capture", "Source", "SyntheticCapture", "give_up_after_s", "open_source",
           "quiet_video_logs", "write_pattern_clip"]

log = logging.getLogger("edgepilot.sources")

_SYNTHETIC = re.compile(r"^synthetic:(\d+)x(\d+)@(\d+(?:\.\d+)?)(?::(\d+))?$")
_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https)://", re.IGNORECASE)
_JOIN_TIMEOUT_S = 1.0  # close() waits no longer for the capture thread (it only blocks in a file read)


def quiet_video_logs() -> None:
    """Silence OpenCV's and FFmpeg's own stderr logging, unless the user set OPENCV_LOG_LEVEL.

    FFmpeg reads OPENCV_FFMPEG_LOGLEVEL once per process, at the first video opened or written,
    which is why this runs when the module is imported. An OPENCV_FFMPEG_LOGLEVEL of the user's wins.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


quiet_video_logs()


class _FrameQueue:
    """Bounded frame queue. ``latest_only``: a put replaces the oldest frame (counted as a drop);
    otherwise a put blocks while full. ``finish`` marks the end (or an error) after queued frames."""

    def __init__(self, capacity: int, latest_only: bool) -> None:
        self.capacity = 1 if latest_only else max(1, capacity)
        self.latest_only = latest_only
        self.dropped = 0
        self._items: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._done = False
        self._error: BaseException | None = None

    def put(self, frame: Frame, stop: threading.Event) -> None:
        with self._cond:
            if self.latest_only and len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            while len(self._items) >= self.capacity and not stop.is_set():
                self._cond.wait(0.1)
            self._items.append(frame)
            self._cond.notify_all()

    def get(self, stop: threading.Event) -> Frame | None:
        with self._cond:
            while not self._items and not self._done and not stop.is_set():
                self._cond.wait(0.1)
            if self._items and not stop.is_set():
                frame = self._items.popleft()
                self._cond.notify_all()
                return frame
            if self._error is not None:
                raise self._error
            return None

    def finish(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._done, self._error = True, error
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class Source:
    """Frames from a capture read by a background thread; a context manager.

    ``opener`` returns an opened capture (it is called again to reopen a live one).
    ``limit`` ends the stream after that many captured frames (synthetic sources).
    ``open_timeout_s``: an open that has not returned by then fails (SourceError exit 2 at the
    start, a failed reopen attempt later). ``read_timeout_s``: a read that has not returned by
    then is a failed capture, reopened with ``backoff`` (live sources; None: reads are not timed).
    Reopen attempts reset only when a frame arrives, so a stalled live source raises within
    ``give_up_after_s(backoff, open_timeout_s, read_timeout_s)`` of its last frame.

    A read or open stuck inside the backend cannot be interrupted: it is left to a daemon
    thread that releases its capture if the call ever returns, and neither ``read()`` nor
    ``close()`` waits for it (see ``source_timeouts``).
    """

    def __init__(self, opener: Callable[[], Capture], *, description: str, live: bool,
                 realtime: bool = False, limit: int | None = None, backoff: Backoff | None = None,
                 queue_size: int = 4, open_timeout_s: float | None = None,
                 read_timeout_s: float | None = None) -> None:
        self.description = description
        self.live = live
        self.realtime = realtime and not live
        self.limit = limit
        self.backoff = backoff or Backoff()
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s if live else None
        self._opener = opener
        self._stop = threading.Event()
        cap = self._open()
        assert cap is not None  # only None once stopped
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else 30.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count: int | None = limit if limit is not None else (count if not live and count > 0 else None)
        self.captured = 0
        self.late = 0  # realtime files: frames dropped because decoding fell behind their timestamp
        self.reopen_attempts = 0
        self.cpu_s = 0.0  # CPU time of the capture's threads (reading and decoding), added as each one ends
        self._last_frame_t = time.perf_counter()
        self._stuck_warned = False
        self._queue = _FrameQueue(queue_size, latest_only=live or self.realtime)
        self._thread = threading.Thread(target=self._capture_loop, args=(cap,), name=f"capture:{description}",
                                        daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Frames captured but never handed to the consumer (replaced or late)."""
        return self._queue.dropped + self.late

    def read(self) -> Frame | None:
        """The next unseen frame (blocks); None at the end or after close(); raises SourceError."""
        return self._queue.get(self._stop)

    def __iter__(self) -> Any:
        while (frame := self.read()) is not None:
            yield frame

    def _capture_loop(self, cap: Capture) -> None:
        error: BaseException | None = None
        try:
            self._supervise(cap)
        except SourceError as exc:
            error = exc
        except Exception as exc:  # a capture backend failing in an unexpected way
            error = SourceError(f"{self.description}: capture failed: {exc}", exit_code=RUNTIME_FAILURE)
        finally:
            self.cpu_s += time.thread_time()  # this thread's own CPU (the watchdog's when reads run in a reader)
            self._queue.finish(error)

    def _supervise(self, cap: Capture | None) -> None:
        """Read captures until the end or stop, reopening a live one that fails or stalls."""
        failures = 0  # reopen attempts since the last frame
        while cap is not None:
            captured = self.captured
            reader = WatchedReader(cap, live=self.live)
            failure = reader.watch(self._read_frames, timeout_s=self.read_timeout_s, stop=self._stop,
                                   name=f"capture-read:{self.description}")
            if failure is None or not self.live or self._stop.is_set():
                return
            cap, failures = self._reopen(failure, 0 if self.captured > captured else failures)

    def _read_frames(self, reader: WatchedReader) -> None:
        """The per-frame path: read, stamp, pace (realtime files), queue; returns at the end, a failure or stop."""
        cpu0 = time.thread_time()
        try:
            self._read_loop(reader)
        finally:
            if threading.current_thread() is not self._thread:  # a reader thread (read time-out): count it too
                self.cpu_s += time.thread_time() - cpu0

    def _read_loop(self, reader: WatchedReader) -> None:
        t0: float | None = None
        while not self._stop.is_set() and (self.limit is None or self.captured < self.limit):
            image = reader.read()
            t = time.perf_counter()  # the capture stamp: right after the read returns
            if image is None:
                if not self.live and not self._stop.is_set():
                    self._warn_if_short()
                return
            frame_id, self.captured, self._last_frame_t = self.captured, self.captured + 1, t
            pos_s = frame_id / self.fps if not self.live else float("nan")
            if self.realtime:
                t0 = t if t0 is None else t0
                t = self._pace(t0 + pos_s)
                if t < 0:
                    continue
            self._queue.put(Frame.captured(frame_id, image, t, pos_s), self._stop)

    def _warn_if_short(self) -> None:
        """A file that ends before the frame count its container announced is probably truncated."""
        if self.frame_count is not None and self.captured < self.frame_count:
            log.warning("%s: the video ended after %d of the %d frames its container announced; "
                        "the file may be truncated or damaged", self.description, self.captured, self.frame_count)

    def _pace(self, due: float) -> float:
        """Wait until ``due`` (perf_counter s); -1 when already a frame period late (dropped)."""
        now = time.perf_counter()
        if now > due + 1.0 / self.fps:
            self.late += 1
            return -1.0
        if due > now:
            self._stop.wait(due - now)
        return time.perf_counter()

    def _open(self) -> Capture | None:
        """Open a capture within open_timeout_s (None once stopped); SourceError (exit 2) when it does not open."""
        if self.open_timeout_s is None:
            cap: Capture | None = self._opener()
        else:
            cap = open_within(self._opener, self.open_timeout_s, self._stop, f"capture-open:{self.description}")
            if cap is None and not self._stop.is_set():
                raise SourceError(f"{self.description}: did not open within {self.open_timeout_s:g} s "
                                  "(open time-out); check the address, or allow a longer open time-out")
        if cap is None:
            return None
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.description}: the capture did not open")
        if self.live:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's own queue adds latency
        return cap

    def _reopen(self, failure: str, failures: int) -> tuple[Capture | None, int]:
        """Reopen a failed live capture after backoff: (capture or None once stopped, attempts since the last
        frame). SourceError (exit 1) naming the wait when the attempts run out."""
        why = failure
        while failures < self.backoff.attempts:
            delay = self.backoff.delay_s(failures)
            failures += 1
            log.warning("%s: %s; reopening in %.2f s (attempt %d/%d)",
                        self.description, why, delay, failures, self.backoff.attempts)
            if self._stop.wait(delay):
                return None, failures
            self.reopen_attempts += 1
            try:
                return self._open(), failures
            except Exception as exc:
                why = f"reopen failed ({exc})"
        waited = time.perf_counter() - self._last_frame_t
        raise SourceError(f"{self.description}: no frame for {waited:.1f} s ({failure}) and {self.backoff.attempts} "
                          "reopen attempts failed; check the camera or stream", exit_code=RUNTIME_FAILURE)

    def close(self) -> None:
        """Stop the capture thread and wait for it (at most _JOIN_TIMEOUT_S); idempotent.

        Returns within about STOP_GRACE_S + POLL_S even while a live read or open is stuck in the
        backend: that call is left to its daemon thread, which releases its capture when it returns.
        Each capture is released by the thread that read it, never under a running read.
        """
        self._stop.set()
        self._queue.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(_JOIN_TIMEOUT_S)
        if self._thread.is_alive() and not self._stuck_warned:
            self._stuck_warned = True
            log.warning("%s: capture thread did not stop within %.0f s", self.description, _JOIN_TIMEOUT_S)

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(spec: str, *, realtime: bool = False, backoff: Backoff | None = None, queue_size: int = 4,
                open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S, read_timeout_s: float = DEFAULT_READ_TIMEOUT_S) -> Source:
    """Open a source from a string; SourceError (exit 2) when it cannot be opened.

    ``spec``: a video file path; a camera index (``"0"``); an ``rtsp://``, ``http(s)://``
    URL; a GStreamer pipeline (contains ``!``); or ``synthetic:WxH@FPS[:N]`` (a fake
    live camera, N frames or endless). ``realtime`` paces files at their native FPS.
    Cameras, streams and pipelines open within ``open_timeout_s`` and fail a read that takes
    longer than ``read_timeout_s`` (also passed to FFmpeg for streams); see ``give_up_after_s``.
    """
    spec = spec.strip()
    for name, value in (("open_timeout_s", open_timeout_s), ("read_timeout_s", read_timeout_s)):
        if not value > 0:
            raise SourceError(f"{name} must be > 0 s, got {value}")
    kwargs: dict[str, Any] = {"backoff": backoff, "queue_size": queue_size}
    timed = {**kwargs, "live": True, "open_timeout_s": open_timeout_s, "read_timeout_s": read_timeout_s}
    kind = source_kind(spec)
    if kind == "synthetic":
        m = _SYNTHETIC.match(spec)
        if m is None:
            raise SourceError(f"{spec!r}: write synthetic sources as synthetic:WxH@FPS[:N], "
                              "e.g. synthetic:640x480@30:300")
        w, h, fps = int(m.group(1)), int(m.group(2)), float(m.group(3))
        if not (8 <= w <= MAX_SIDE and 8 <= h <= MAX_SIDE) or not 0 < fps <= 10_000:
            raise SourceError(f"{spec}: synthetic sources need W, H in 8..{MAX_SIDE} and FPS in (0, 10000]")
        limit = int(m.group(4)) if m.group(4) else None
        return Source(lambda: SyntheticCapture(w, h, fps), description=spec, live=True, limit=limit, **kwargs)
    if kind == "camera":
        return Source(_opener(int(spec), None, f"camera {spec}"), description=f"camera {spec}", **timed)
    if kind == "gstreamer":
        opener = _opener(spec, cv2.CAP_GSTREAMER, "GStreamer pipeline",
                         hint=" (is OpenCV built with GStreamer? see cv2.getBuildInformation())")
        return Source(opener, description=f"gstreamer: {spec}", **timed)
    if kind == "stream":
        if spec.lower().startswith("rtsp") and "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ:
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"  # UDP loses packets -> smeared frames
        params = _ffmpeg_timeouts(open_timeout_s, read_timeout_s)
        return Source(_opener(spec, cv2.CAP_FFMPEG, "stream", params=params), description=spec, **timed)
    return _open_file(spec, realtime, kwargs)


def source_kind(spec: str) -> str:
    """What ``open_source`` opens ``spec`` as: synthetic, camera, gstreamer, stream or file."""
    spec = spec.strip()
    if spec.startswith("synthetic"):
        return "synthetic"
    if spec.isdigit():
        return "camera"
    if "!" in spec:
        return "gstreamer"
    if _URL.match(spec):
        return "stream"
    return "file"


def every_frame(spec: str, realtime: bool = False) -> bool:
    """Whether ``open_source(spec, realtime=realtime)`` is a file read as fast as it decodes, every
    frame processed (so throughput, not per-frame latency, is what the loop is for)."""
    return not realtime and source_kind(spec) == "file"


def _open_file(spec: str, realtime: bool, kwargs: dict[str, Any]) -> Source:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise SourceError(f"{spec}: no such video file (give a video path, a camera index, "
                          "a URL, a GStreamer pipeline or synthetic:WxH@FPS)")
    return Source(_opener(str(path), None, "video file", hint=" (is it a video OpenCV/FFmpeg can decode?)"),
                  description=str(path), live=False, realtime=realtime, **kwargs)


def _ffmpeg_timeouts(open_timeout_s: float, read_timeout_s: float) -> list[int]:
    """FFmpeg's own open and read time-outs as OpenCV open parameters (ms), where this OpenCV has them."""
    params: list[int] = []
    for name, seconds in (("CAP_PROP_OPEN_TIMEOUT_MSEC", open_timeout_s), ("CAP_PROP_READ_TIMEOUT_MSEC", read_timeout_s)):
        prop = getattr(cv2, name, None)  # OpenCV >= 4.6; older ones rely on our watchdog alone
        if prop is not None:
            params += [int(prop), round(seconds * 1000)]
    return params


def _opener(target: int | str, api: int | None, what: str, hint: str = "",
            params: Sequence[int] = ()) -> Callable[[], Capture]:
    """A function that opens ``target`` and raises SourceError (exit 2) when it is not opened."""

    def open_capture() -> Capture:
        if api is None:
            cap = cv2.VideoCapture(target)
        else:
            cap = cv2.VideoCapture(target, api, list(params)) if params else cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{target}: cannot open {what}{hint}")
        return cap  # type: ignore[no-any-return]

    return open_capture
