"""Sensor queues: data from CARLA's callback threads, matched to the frame we ticked.

A sensor's ``listen`` callback runs on a client thread, and camera data for a
tick can arrive after ``world.tick()`` returns, or data from an earlier tick can
still be queued. ``SensorQueue.get(frame)`` therefore waits for the item whose
``frame`` equals the tick's frame, drops older ones and fails with a clear
message after a timeout instead of hanging or returning a stale image.
"""

from __future__ import annotations

import queue
import time
from typing import Any

from edgepilot.runtime.errors import SimulatorError


class SensorQueue:
    """Thread-safe inbox for one sensor; ``put`` is the ``listen`` callback."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dropped = 0  # stale items discarded since creation
        self._queue: queue.Queue[Any] = queue.Queue()
        self._ahead: list[Any] = []  # items newer than the frame asked for, kept for later

    def put(self, item: Any) -> None:
        self._queue.put(item)

    def get(self, frame: int, timeout_s: float) -> Any:
        """Return the item with ``item.frame == frame``; older items are dropped.

        Raises SimulatorError naming the sensor when it does not arrive within
        ``timeout_s`` seconds.
        """
        found = self._take_ahead(frame)
        if found is not None:
            return found
        deadline = time.monotonic() + timeout_s
        last_seen: int | None = None
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                raise SimulatorError(self._timeout_message(frame, timeout_s, last_seen)) from None
            last_seen = item.frame
            if item.frame == frame:
                return item
            if item.frame < frame:
                self.dropped += 1
            else:
                self._ahead.append(item)

    def drain(self) -> list[Any]:
        """Everything queued now (events of the last tick), oldest first."""
        items, self._ahead = list(self._ahead), []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _take_ahead(self, frame: int) -> Any:
        match = None
        kept = []
        for item in self._ahead:
            if item.frame == frame:
                match = item
            elif item.frame > frame:
                kept.append(item)
            else:
                self.dropped += 1
        self._ahead = kept
        return match

    def _timeout_message(self, frame: int, timeout_s: float, last_seen: int | None) -> str:
        seen = f"last frame it sent: {last_seen}" if last_seen is not None else "it sent nothing"
        return (
            f"CARLA sensor {self.name!r} gave no data for frame {frame} within "
            f"{timeout_s:.1f} s ({seen}); the server may be overloaded or the sensor "
            f"detached: check the server log or raise sensor_timeout_s"
        )
