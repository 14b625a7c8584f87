"""Sources: files in full or paced, live drop-to-newest, reopen with backoff, clean close."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgepilot.runtime.errors import SourceError
from edgepilot.runtime.sources import Backoff, Source, open_source


class FakeCamera:
    """A cv2.VideoCapture stand-in: frame k is filled with k % 256; read fails after ``fail_after`` frames."""

    def __init__(self, fail_after: int | None = None, opened: bool = True, start: int = 0) -> None:
        self.k, self.fail_after, self.opened = start, fail_after, opened
        self.released = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.fail_after is not None and self.k >= self.fail_after:
            return False, None
        image = np.full((8, 8, 3), self.k % 256, np.uint8)
        self.k += 1
        return True, image

    def isOpened(self) -> bool:  # noqa: N802
        return self.opened

    def release(self) -> None:
        self.released = True

    def get(self, prop: int) -> float:
        return 1000.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop: int, value: float) -> bool:
        return True


def capture_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("capture")]  # capture:, capture-read:, capture-open:


def test_file_is_read_in_full_in_order(clip: Path) -> None:
    with open_source(str(clip)) as src:
        frames = list(src)
        assert src.frame_count == 30 and src.fps == pytest.approx(30.0)
    assert [f.id for f in frames] == list(range(30))
    assert [f.source_pos_s for f in frames] == pytest.approx([i / 30 for i in range(30)])
    assert src.dropped == 0
    assert frames[5].image.shape == (120, 160, 3)
    # the clip's bright square moves 4 px per frame: the frames are the file's, in order
    assert [int(np.argmax(f.image[28, :, 0] > 200)) for f in frames[:3]] == [0, 4, 8]
    assert capture_threads() == []


def test_realtime_file_is_paced_at_native_fps(clip: Path) -> None:
    t0 = time.perf_counter()
    with open_source(str(clip), realtime=True) as src:
        frames = list(src)
    elapsed = time.perf_counter() - t0
    assert 29 / 30 - 0.05 < elapsed < 1.6
    assert len(frames) + src.dropped == 30
    gaps_ms = np.diff([f.timeline.get("capture") for f in frames]) * 1e3
    assert np.median(gaps_ms) >= 1000 / 30 - 5  # paced: frames never come early (late ones are dropped)


def test_live_source_keeps_only_the_newest_frame() -> None:
    src = Source(lambda: FakeCamera(), description="fake", live=True, limit=400)
    seen = []
    with src:
        for frame in src:
            seen.append(frame)
            time.sleep(0.002)  # a consumer slower than the camera
    ids = [f.id for f in seen]
    assert src.dropped > 0
    assert all(b > a for a, b in zip(ids, ids[1:], strict=False))  # never a repeated or older frame
    assert all(int(f.image[0, 0, 0]) == f.id % 256 for f in seen)  # each frame is its own image
    assert len(seen) + src.dropped == src.captured == 400


def test_dead_camera_is_reopened_with_backoff_then_fails(caplog: pytest.LogCaptureFixture) -> None:
    opens: list[float] = []

    def opener() -> FakeCamera:
        opens.append(time.perf_counter())
        return FakeCamera(fail_after=5) if len(opens) == 1 else FakeCamera(opened=False)

    before = set(threading.enumerate())
    caplog.set_level(logging.WARNING, "edgepilot.sources")
    src = Source(opener, description="cam", live=True, backoff=Backoff(attempts=3, base_s=0.02, max_s=0.05))
    ids: list[int] = []
    with src, pytest.raises(SourceError) as info:
        ids.extend(f.id for f in src)
    assert info.value.exit_code == 1
    assert "3 reopen attempts failed" in str(info.value)
    assert len(opens) == 4 and src.reopen_attempts == 3
    waits = np.diff(opens)[1:]  # backoff 0.02, 0.04, capped at 0.05: waits are at least that, maybe longer under load
    assert waits[0] >= 0.035 and waits[1] >= 0.045 and waits[1] < 1.0
    assert sum("reopening in" in r.message for r in caplog.records) == 3
    assert set(threading.enumerate()) == before
    assert ids[-1] == 4  # the newest frame before the failure was delivered


def test_camera_that_comes_back_keeps_streaming() -> None:
    cams = [FakeCamera(fail_after=3), FakeCamera(opened=False), FakeCamera(start=100)]
    src = Source(lambda: cams.pop(0), description="cam", live=True, limit=10,
                 backoff=Backoff(attempts=3, base_s=0.01))
    with src:
        frames = []
        for f in src:
            frames.append(f)
            time.sleep(0.001)
    assert src.reopen_attempts == 2
    ids = [f.id for f in frames]
    assert ids == sorted(set(ids)) and ids[-1] == 9
    assert int(frames[-1].image[0, 0, 0]) >= 100  # frames after the reopen come from the new capture


@pytest.mark.parametrize("kind", ["text_mp4", "missing"])
def test_unreadable_video_is_bad_input(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "clip.mp4"
    if kind == "text_mp4":
        path.write_text("not a video\n")
    with pytest.raises(SourceError) as info:
        open_source(str(path))
    assert info.value.exit_code == 2
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert capture_threads() == []


def test_synthetic_source_is_live_and_sized() -> None:
    with open_source("synthetic:64x48@200:12") as src:
        frames = list(src)
        assert src.live and src.frame_count == 12
        dropped = src.dropped
    # live: a frame the consumer was too busy to take is replaced by the next and counted, so on a
    # loaded machine some ids are missing, but never repeated or out of order
    ids = [f.id for f in frames]
    assert ids == sorted(set(ids)) and len(ids) + dropped == 12 and ids[-1] == 11
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert not np.array_equal(frames[0].image, frames[1].image)  # the pattern moves
    with pytest.raises(SourceError) as info:
        open_source("synthetic:64x48")
    assert info.value.exit_code == 2


def test_close_joins_the_capture_thread_of_an_endless_source() -> None:
    before = set(threading.enumerate())
    src = open_source("synthetic:32x32@100")
    assert src.read() is not None and len(capture_threads()) == 1
    src.close()
    src.close()  # idempotent
    assert set(threading.enumerate()) == before
    assert src.read() is None


def test_rtsp_prefers_tcp_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a: FakeCamera(opened=False))
    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    with pytest.raises(SourceError):
        open_source("rtsp://127.0.0.1:1/none")
    import os

    assert os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] == "rtsp_transport;tcp"
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;udp")
    with pytest.raises(SourceError):
        open_source("rtsp://127.0.0.1:1/none")
    assert os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] == "rtsp_transport;udp"


def test_every_frame_is_a_file_read_as_fast_as_it_decodes() -> None:
    from edgepilot.runtime.sources import every_frame, source_kind

    assert [source_kind(s) for s in ("synthetic:64x48@30", "synthetic-bad", "0", "a ! appsink", "RTSP://cam/s",
                                     "clip.mp4")] == ["synthetic", "synthetic", "camera", "gstreamer", "stream", "file"]

    assert every_frame("clip.mp4") and every_frame(" videos/a b.avi ")
    assert not every_frame("clip.mp4", realtime=True)
    for live in ("0", "rtsp://cam/stream", "http://x/y.mjpg", "v4l2src ! appsink", "synthetic:64x48@30:5"):
        assert not every_frame(live), live
