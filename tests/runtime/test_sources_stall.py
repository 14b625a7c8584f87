"""Sources that stall: bounded open and read time-outs, the stated give-up time, prompt close, quiet logs."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgepilot.runtime.errors import SourceError
from edgepilot.runtime.source_timeouts import GRACE_S, STOP_GRACE_S
from edgepilot.runtime.sources import Backoff, Source, give_up_after_s, open_source

ROOT = Path(__file__).resolve().parents[2]
QUICK = Backoff(attempts=2, base_s=0.01, max_s=0.02)


class StallCamera:
    """A cv2.VideoCapture stand-in: frame k is filled with ``start`` + k; after ``frames`` frames read()
    blocks until ``unblock`` is set, as a backend that ignores its time-out does (None: never stalls)."""

    def __init__(self, unblock: threading.Event, frames: int | None = None, start: int = 0,
                 opened: bool = True) -> None:
        self.unblock, self.frames, self.start, self.opened, self.k = unblock, frames, start, opened, 0
        self.stalled = threading.Event()
        self.released = threading.Event()

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.frames is not None and self.k >= self.frames:
            self.stalled.set()
            self.unblock.wait()
            return False, None
        self.k += 1
        return True, np.full((8, 8, 3), (self.start + self.k - 1) % 256, np.uint8)

    def isOpened(self) -> bool:  # noqa: N802
        return self.opened

    def release(self) -> None:
        self.released.set()

    def get(self, prop: int) -> float:
        return 1000.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop: int, value: float) -> bool:
        return True


@pytest.fixture
def unblock() -> Iterator[threading.Event]:
    """Set at teardown, so reads and opens the tests left stuck return and their threads end."""
    event = threading.Event()
    yield event
    event.set()


def wait_for(predicate: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    deadline = time.perf_counter() + timeout_s
    while not predicate() and time.perf_counter() < deadline:
        time.sleep(0.005)
    return predicate()


def source_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("capture")]


def test_give_up_after_s_adds_up_the_stated_waits() -> None:
    # read 5.2, backoff 0.1 + 0.2 + 0.4 + 0.8 + 1.6, then five times an open (5.2) and a read (5.2)
    assert give_up_after_s() == pytest.approx(60.3)
    assert give_up_after_s(Backoff(attempts=2, base_s=0.5, max_s=0.5), 1.0, 2.0) == pytest.approx(
        (2 + GRACE_S) + 1.0 + 2 * ((1 + GRACE_S) + (2 + GRACE_S)))
    assert give_up_after_s(Backoff(attempts=0), 1.0, 2.0) == pytest.approx(2 + GRACE_S)


def test_streams_get_ffmpeg_timeouts_and_cameras_none(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []

    def fake_capture(*args: object) -> StallCamera:
        calls.append(args)
        return StallCamera(threading.Event(), opened=False)

    monkeypatch.setattr(cv2, "VideoCapture", fake_capture)
    with pytest.raises(SourceError) as info:
        open_source("http://127.0.0.1:1/x", open_timeout_s=1.5, read_timeout_s=0.25)
    assert info.value.exit_code == 2 and "http://127.0.0.1:1/x" in str(info.value)
    assert calls[-1] == ("http://127.0.0.1:1/x", cv2.CAP_FFMPEG,
                         [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 1500, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 250])
    with pytest.raises(SourceError):
        open_source("3")
    assert calls[-1] == (3,)  # V4L2 refuses parameters it does not know; the watchdog covers cameras
    with pytest.raises(SourceError) as info:
        open_source("http://127.0.0.1:1/x", read_timeout_s=0)
    assert "read_timeout_s must be > 0" in str(info.value)


def test_stalled_read_is_abandoned_and_the_camera_reopened(unblock: threading.Event) -> None:
    stuck = StallCamera(unblock, frames=3)
    cams = [stuck, StallCamera(unblock, start=100)]
    src = Source(lambda: cams.pop(0), description="cam", live=True, limit=10, backoff=QUICK,
                 open_timeout_s=1.0, read_timeout_s=0.2)
    with src:
        frames = list(src)
    ids = [f.id for f in frames]
    assert ids == sorted(set(ids)) and ids[-1] == 9 and src.captured == 10
    assert src.reopen_attempts == 1
    old = [f for f in frames if int(f.image[0, 0, 0]) < 100]
    new = [f for f in frames if int(f.image[0, 0, 0]) >= 100]
    assert old and new and int(new[0].image[0, 0, 0]) - 100 == new[0].id - 3
    gap_s = new[0].timeline.get("capture") - old[-1].timeline.get("capture")
    assert 0.2 + GRACE_S <= gap_s < 0.2 + GRACE_S + 0.3  # the stall, found by our watchdog, then a quick reopen
    assert not stuck.released.is_set()  # never released under its running read...
    unblock.set()
    assert wait_for(stuck.released.is_set) and wait_for(lambda: source_threads() == [])  # ...but once it returns


@pytest.mark.parametrize("reopen", ["stalls_again", "hangs_in_open"])
def test_stall_that_persists_fails_within_give_up_after_s(unblock: threading.Event, reopen: str) -> None:
    cams: list[StallCamera] = []

    def opener() -> StallCamera:
        if cams and reopen == "hangs_in_open":
            unblock.wait()
        cams.append(StallCamera(unblock, frames=2 if not cams else 0))
        return cams[-1]

    src = Source(opener, description="rtsp://cam/x", live=True, backoff=QUICK, open_timeout_s=0.2,
                 read_timeout_s=0.2)
    got: list[float] = []
    with src, pytest.raises(SourceError) as info:
        for _ in src:
            got.append(time.perf_counter())
    waited = time.perf_counter() - got[-1]
    # three time-outs: the stall, then two reopens whose read stalls again or whose open hangs
    assert 0.01 + 0.02 + 3 * (0.2 + GRACE_S) <= waited <= give_up_after_s(QUICK, 0.2, 0.2) + 0.2
    message = str(info.value)
    assert info.value.exit_code == 1 and message.startswith("rtsp://cam/x: no frame for ")
    stated = re.search(r"no frame for ([\d.]+) s", message)
    assert stated and float(stated.group(1)) == pytest.approx(waited, abs=0.1)
    assert "read did not return within 0.2 s" in message and "2 reopen attempts failed" in message
    assert src.reopen_attempts == 2 and src.captured == 2 and got
    unblock.set()
    assert wait_for(lambda: source_threads() == [] and all(c.released.is_set() for c in cams))


def test_open_that_hangs_fails_at_the_open_timeout(unblock: threading.Event) -> None:
    late = StallCamera(unblock)

    def opener() -> StallCamera:
        unblock.wait()
        return late

    t0 = time.perf_counter()
    with pytest.raises(SourceError) as info:
        Source(opener, description="camera 0", live=True, open_timeout_s=0.2, read_timeout_s=0.2)
    assert 0.2 <= time.perf_counter() - t0 < 0.2 + GRACE_S + 0.2
    assert info.value.exit_code == 2
    assert str(info.value).startswith("camera 0: did not open within 0.2 s")
    unblock.set()
    assert wait_for(late.released.is_set)  # opened after we gave up on it: released, not leaked
    assert wait_for(lambda: source_threads() == [])


def test_close_during_a_stall_returns_at_once_and_unblocks_read(unblock: threading.Event) -> None:
    before = set(threading.enumerate())
    cam = StallCamera(unblock, frames=2)
    src = Source(lambda: cam, description="cam", live=True, open_timeout_s=5.0, read_timeout_s=5.0)
    ended: list[float] = []

    def consume() -> None:
        while src.read() is not None:
            pass
        ended.append(time.perf_counter())

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert cam.stalled.wait(2.0)
    time.sleep(0.1)  # the consumer is blocked in read(), the capture in its stuck read
    t0 = time.perf_counter()
    src.close()
    closed_s = time.perf_counter() - t0
    consumer.join(1.0)
    assert ended and ended[0] - t0 < 0.2  # read() wakes at close(), not when the capture thread ends
    assert closed_s < STOP_GRACE_S + 0.3  # close() waits STOP_GRACE_S for the read, then leaves it
    assert [t.name for t in set(threading.enumerate()) - before] == ["capture-read:cam"]  # the stuck read only
    assert not cam.released.is_set() and src.read() is None
    unblock.set()
    assert wait_for(cam.released.is_set) and wait_for(lambda: set(threading.enumerate()) == before)


def test_reopen_attempts_reset_only_after_a_frame() -> None:
    # four captures that give one frame each, then captures that open but never give one
    cams = [StallCamera(threading.Event(), frames=1) for _ in range(4)]
    for cam in cams:  # fail at once instead of stalling
        cam.unblock.set()

    def opener() -> StallCamera:
        if cams:
            return cams.pop(0)
        dead = StallCamera(threading.Event(), frames=0)
        dead.unblock.set()
        return dead

    src = Source(opener, description="cam", live=True, backoff=QUICK, read_timeout_s=1.0)
    with src, pytest.raises(SourceError) as info:
        for _ in src:
            pass
    assert src.captured == 4 and src.reopen_attempts == 3 + 2  # the budget of 2 is spent after the last frame
    assert "(read failed)" in str(info.value)


def test_truncated_video_warns_with_frames_read_of_announced(clip: Path, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "edgepilot.sources")
    with open_source(str(clip)) as src:
        assert len(list(src)) == 30
    assert caplog.records == []
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip.read_bytes()[: int(clip.stat().st_size * 0.6)])
    with open_source(str(cut)) as src:
        frames = list(src)
    assert 0 < len(frames) < 30 and src.frame_count == 30
    assert [r.getMessage() for r in caplog.records] == [
        f"{cut}: the video ended after {len(frames)} of the 30 frames its container announced; "
        "the file may be truncated or damaged"]


class StallingMjpegServer:
    """A loopback HTTP server: the first client gets ``frames`` MJPEG frames, then nothing; later ones nothing."""

    def __init__(self, frames: int = 4) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/stream"
        self.frames, self.sent = frames, threading.Event()
        self.clients: list[socket.socket] = []
        ok, jpg = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))
        self.jpg = jpg.tobytes()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.clients.append(conn)
            if len(self.clients) == 1:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=f\r\n\r\n")
                part = b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(self.jpg)
                conn.sendall((part + self.jpg + b"\r\n") * self.frames)
                self.sent.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.clients:
            conn.close()


@pytest.fixture
def stalling_stream() -> Iterator[StallingMjpegServer]:
    server = StallingMjpegServer()
    yield server
    server.close()


def test_stalled_http_stream_fails_within_give_up_after_s(stalling_stream: StallingMjpegServer,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    got: list[float] = []
    with pytest.raises(SourceError) as info:
        with open_source(stalling_stream.url, backoff=QUICK, open_timeout_s=0.3, read_timeout_s=0.3) as src:
            for _ in src:
                got.append(time.perf_counter())
    waited = time.perf_counter() - got[-1]
    assert len(got) >= 1 and info.value.exit_code == 1
    assert 0.3 <= waited <= give_up_after_s(QUICK, 0.3, 0.3) + 0.3
    assert str(info.value).startswith(f"{stalling_stream.url}: no frame for ")
    assert len(stalling_stream.clients) == 3  # the stream, then two reopens that time out
    assert "@" not in capfd.readouterr().err  # no "[tcp @ 0x...]" or "[ WARN:0@...]" from FFmpeg or OpenCV


def edgepilot(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENCV_LOG_LEVEL", None)
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    return subprocess.Popen([sys.executable, "-m", "edgepilot.cli", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


@pytest.mark.parametrize("spec", ["rtsp://127.0.0.1:9/x", "http://127.0.0.1:9/x", "text.avi"])
def test_failed_open_prints_only_our_error(bundles: dict[str, Path], tmp_path: Path, spec: str) -> None:
    if spec == "text.avi":
        spec = str(tmp_path / spec)
        Path(spec).write_text("not a video\n")
    proc = edgepilot(spec, "--model", str(bundles["seg"]), "--backend", "null")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.splitlines() == [err.strip()] and err.startswith(f"error: {spec}: cannot open")


def test_truncated_video_prints_only_our_warning(bundles: dict[str, Path], clip: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip.read_bytes()[: int(clip.stat().st_size * 0.6)])
    proc = edgepilot(str(cut), "--model", str(bundles["seg"]), "--backend", "null")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = re.split(r"[\r\n]+", err)  # tqdm's bar ends its updates with \r
    assert not [line for line in lines if line.startswith("[")]  # "[mjpeg @ 0x...]", "[ WARN:0@...]"
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert len(warnings) == 1 and warnings[0].startswith(f"WARNING edgepilot.sources: {cut}: the video ended after ")


@pytest.mark.parametrize("frames", [0, 4], ids=["in_open", "in_read"])
def test_ctrl_c_during_a_stalled_stream_ends_the_run_within_a_second(bundles: dict[str, Path], frames: int) -> None:
    stalling_stream = StallingMjpegServer(frames)
    proc = edgepilot(stalling_stream.url, "--model", str(bundles["seg"]), "--backend", "null")
    try:
        assert stalling_stream.sent.wait(30), "the run did not connect"
        time.sleep(0.5)  # stuck in the open (no frame comes) or in the read after the frames (time-outs are 5 s)
        assert proc.poll() is None
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert time.perf_counter() - t0 < 1.0
    finally:
        proc.kill()
        stalling_stream.close()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and ("FPS" in out) == (frames > 0)  # the report once the loop ran


def test_run_help_states_the_give_up_time_from_the_same_numbers() -> None:
    import io
    from contextlib import redirect_stdout

    from edgepilot import cli

    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(out.getvalue().split())
    assert f"gives up at most {give_up_after_s():.0f} s after its last frame" in text
