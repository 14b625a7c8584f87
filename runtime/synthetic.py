"""A generated camera: a moving gradient and square, for tests, demos and benchmarks.

``synthetic:WxH@FPS[:N]`` sources read from :class:`SyntheticCapture`;
:func:`write_pattern_clip` writes the same pattern as an MJPG file.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from edgepilot.runtime.errors import SourceError


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
