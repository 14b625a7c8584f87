"""Frame sources: video files, cameras, RTSP/HTTP streams, GStreamer pipelines, synthetic.

``open_source(spec)`` turns a string into a ``Source``. Every source reads in its
own capture thread, so decoding overlaps inference:

- **live** sources (cameras, streams, ``synthetic:``) keep only the newest frame:
  a new frame replaces an unconsumed one and the drop is counted; a capture that
  fails is reopened with exponential backoff, and when that runs out the consumer
  gets ``SourceError(exit_code=1)``.
- **files** are read in full through a small blocking queue (no drops), or, with
  ``realtime=True``, released at their own timestamps and behave like live ones.

The consumer calls ``read()``: it blocks until a frame it has not seen yet is
there, returns None at the end of the stream, and raises the capture's error.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edgepilot.runtime.errors import RUNTIME_FAILURE, SourceError
from edgepilot.runtime.frame import Frame

log = logging.getLogger("edgepilot.sources")

_SYNTHETIC = re.compile(r"^synthetic:(\d+)x(\d+)@(\d+(?:\.\d+)?)(?::(\d+))?$")
_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https)://", re.IGNORECASE)
_JOIN_TIMEOUT_S = 5.0


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
    """

    def __init__(self, opener: Callable[[], Capture], *, description: str, live: bool,
                 realtime: bool = False, limit: int | None = None, backoff: Backoff | None = None,
                 queue_size: int = 4) -> None:
        self.description = description
        self.live = live
        self.realtime = realtime and not live
        self.limit = limit
        self.backoff = backoff or Backoff()
        self._opener = opener
        self._cap: Capture | None = opener()
        if live:
            self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's own queue adds latency
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else 30.0
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count: int | None = limit if limit is not None else (count if not live and count > 0 else None)
        self.captured = 0
        self.late = 0  # realtime files: frames dropped because decoding fell behind their timestamp
        self.reopen_attempts = 0
        self._queue = _FrameQueue(queue_size, latest_only=live or self.realtime)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._capture_loop, name=f"capture:{description}", daemon=True)
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

    def _capture_loop(self) -> None:
        error: BaseException | None = None
        try:
            self._capture_frames()
        except SourceError as exc:
            error = exc
        except Exception as exc:  # a capture backend failing in an unexpected way
            error = SourceError(f"{self.description}: capture failed: {exc}", exit_code=RUNTIME_FAILURE)
        finally:
            self._queue.finish(error)

    def _capture_frames(self) -> None:
        t0: float | None = None
        while not self._stop.is_set() and (self.limit is None or self.captured < self.limit):
            image = self._read_image()
            t = time.perf_counter()  # the capture stamp: right after the read returns
            if image is None:
                if not self.live:
                    return  # end of file
                self._reopen()
                continue
            frame_id, self.captured = self.captured, self.captured + 1
            pos_s = frame_id / self.fps if not self.live else float("nan")
            if self.realtime:
                t0 = t if t0 is None else t0
                t = self._pace(t0 + pos_s)
                if t < 0:
                    continue
            self._queue.put(Frame.captured(frame_id, image, t, pos_s), self._stop)

    def _read_image(self) -> np.ndarray | None:
        assert self._cap is not None
        try:
            ok, image = self._cap.read()
        except Exception as exc:
            if not self.live:
                raise
            log.warning("%s: read raised %s", self.description, exc)
            return None
        return image if ok and image is not None else None

    def _pace(self, due: float) -> float:
        """Wait until ``due`` (perf_counter s); -1 when already a frame period late (dropped)."""
        now = time.perf_counter()
        if now > due + 1.0 / self.fps:
            self.late += 1
            return -1.0
        if due > now:
            self._stop.wait(due - now)
        return time.perf_counter()

    def _reopen(self) -> None:
        """Release and reopen a failed live capture with backoff; SourceError(exit 1) when out of tries."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        for attempt in range(self.backoff.attempts):
            delay = self.backoff.delay_s(attempt)
            log.warning("%s: capture failed; reopening in %.2f s (attempt %d/%d)",
                        self.description, delay, attempt + 1, self.backoff.attempts)
            if self._stop.wait(delay):
                return
            self.reopen_attempts += 1
            try:
                cap = self._opener()
            except Exception as exc:
                log.warning("%s: reopen attempt %d failed: %s", self.description, attempt + 1, exc)
                continue
            if cap.isOpened():
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
                self._cap = cap
                log.info("%s: reopened", self.description)
                return
            cap.release()
        raise SourceError(f"{self.description}: capture failed and {self.backoff.attempts} reopen "
                          "attempts failed; check the camera or stream", exit_code=RUNTIME_FAILURE)

    def close(self) -> None:
        """Stop the capture thread, join it and release the capture. Idempotent."""
        self._stop.set()
        self._queue.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(_JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("%s: capture thread did not stop within %.0f s", self.description, _JOIN_TIMEOUT_S)
            return  # releasing under a running read() would crash some backends
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyntheticCapture:
    """A fake camera: a moving gradient and square at ``fps``, ``read()`` waits for the next tick."""

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.width, self.height, self.fps = width, height, fps
        x = np.linspace(0, 255, 2 * width, dtype=np.float32)
        y = np.linspace(0, 96, height, dtype=np.float32)[:, None]
        gradient = (x[None, :] * 0.5 + y).clip(0, 255).astype(np.uint8)
        self._base = np.dstack([gradient, gradient[:, ::-1], np.full_like(gradient, 80)])
        self._i = 0
        self._next_t = time.perf_counter()
        self._open = True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self._open:
            return False, None
        delay = self._next_t - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self._next_t = max(self._next_t + 1.0 / self.fps, time.perf_counter() - 1.0 / self.fps)
        image = self.frame(self._i)
        self._i += 1
        return True, image

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` of the pattern (HxWx3 uint8 BGR), without pacing."""
        off = (4 * i) % self.width
        image = np.ascontiguousarray(self._base[:, off : off + self.width])
        side = max(4, self.height // 8)
        sx = (8 * i) % max(1, self.width - side)
        image[side : 2 * side, sx : sx + side] = 255
        return image

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's name
        return self._open

    def release(self) -> None:
        self._open = False

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: self.fps, cv2.CAP_PROP_FRAME_WIDTH: self.width,
                cv2.CAP_PROP_FRAME_HEIGHT: self.height}.get(prop, 0.0)

    def set(self, prop: int, value: float) -> bool:
        return False


def open_source(spec: str, *, realtime: bool = False, backoff: Backoff | None = None,
                queue_size: int = 4) -> Source:
    """Open a source from a string; SourceError (exit 2) when it cannot be opened.

    ``spec``: a video file path; a camera index (``"0"``); an ``rtsp://``, ``http(s)://``
    URL; a GStreamer pipeline (contains ``!``); or ``synthetic:WxH@FPS[:N]`` (a fake
    live camera, N frames or endless). ``realtime`` paces files at their native FPS.
    """
    spec = spec.strip()
    kwargs: dict[str, Any] = {"backoff": backoff, "queue_size": queue_size}
    if m := _SYNTHETIC.match(spec):
        w, h, fps = int(m.group(1)), int(m.group(2)), float(m.group(3))
        if w < 8 or h < 8 or fps <= 0:
            raise SourceError(f"{spec}: synthetic sources need W, H >= 8 and FPS > 0")
        limit = int(m.group(4)) if m.group(4) else None
        return Source(lambda: SyntheticCapture(w, h, fps), description=spec, live=True, limit=limit, **kwargs)
    if spec.startswith("synthetic"):
        raise SourceError(f"{spec!r}: write synthetic sources as synthetic:WxH@FPS[:N], e.g. synthetic:640x480@30:300")
    if spec.isdigit():
        return Source(_opener(int(spec), None, f"camera {spec}"), description=f"camera {spec}", live=True, **kwargs)
    if "!" in spec:
        opener = _opener(spec, cv2.CAP_GSTREAMER, "GStreamer pipeline",
                         hint=" (is OpenCV built with GStreamer? see cv2.getBuildInformation())")
        return Source(opener, description=f"gstreamer: {spec}", live=True, **kwargs)
    if _URL.match(spec):
        if spec.lower().startswith("rtsp") and "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ:
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"  # UDP loses packets -> smeared frames
        return Source(_opener(spec, cv2.CAP_FFMPEG, "stream"), description=spec, live=True, **kwargs)
    return _open_file(spec, realtime, kwargs)


def _open_file(spec: str, realtime: bool, kwargs: dict[str, Any]) -> Source:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise SourceError(f"{spec}: no such video file (give a video path, a camera index, "
                          "a URL, a GStreamer pipeline or synthetic:WxH@FPS)")
    return Source(_opener(str(path), None, "video file", hint=" (is it a video OpenCV/FFmpeg can decode?)"),
                  description=str(path), live=False, realtime=realtime, **kwargs)


def _opener(target: int | str, api: int | None, what: str, hint: str = "") -> Callable[[], Capture]:
    """A function that opens ``target`` and raises SourceError (exit 2) when it is not opened."""

    def open_capture() -> Capture:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # our one-line error replaces FFmpeg's log
        cap = cv2.VideoCapture(target) if api is None else cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{target}: cannot open {what}{hint}")
        return cap  # type: ignore[no-any-return]

    return open_capture


def write_pattern_clip(path: str | Path, frames: int, hw: tuple[int, int] = (256, 512), fps: float = 30.0) -> Path:
    """Write the synthetic camera's pattern as an MJPG video file (for demos and benchmarks)."""
    h, w = hw
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise SourceError(f"{path}: cannot write an MJPG video here (check the folder and OpenCV's codecs)")
    pattern = SyntheticCapture(w, h, fps)
    try:
        for i in range(frames):
            writer.write(pattern.frame(i))
    finally:
        writer.release()
    return Path(path)
