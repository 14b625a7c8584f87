"""``edgepilot run`` end to end: subprocess smoke tests, exit codes, Ctrl-C, no leaks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest

from edgepilot import cli

ROOT = Path(__file__).resolve().parents[2]


def edgepilot(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edgepilot.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def count_frames(path: Path) -> int:
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_run_a_file_with_every_output(bundles: dict[str, Path], clip: Path, tmp_path: Path) -> None:
    out, jsonl, rep = tmp_path / "o.mp4", tmp_path / "r.jsonl", tmp_path / "rep.json"
    p = edgepilot("run", str(clip), "--model", str(bundles["seg"]), "--out", str(out), "--jsonl", str(jsonl),
                  "--report", str(rep), "--engine-opt", "threads=1")
    assert p.returncode == 0, p.stderr
    assert "capture->result" in p.stdout and "30 frames" in p.stdout
    report = json.loads(rep.read_text())
    assert report["frames"] == 30 and report["stopped"] == "end" and report["engine"]["backend"] in ("ort", "openvino")
    assert report["engine"]["chosen_by"].startswith(f"auto: {report['engine']['backend']}")  # run's default is auto
    assert report["capture_to_result_ms"]["p50"] > 0
    assert count_frames(out) == 30
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame_id"] for r in records] == list(range(30))
    assert all(r["latency_ms"] >= 0 and sum(r["class_share"].values()) == pytest.approx(1, abs=1e-4)
               for r in records)


@pytest.mark.parametrize("kind", ["text_mp4", "missing"])
def test_bad_video_is_one_line_exit_2(bundles: dict[str, Path], tmp_path: Path, kind: str) -> None:
    video = tmp_path / "bad.mp4"
    if kind == "text_mp4":
        video.write_text("hello\n")
    p = edgepilot("run", str(video), "--model", str(bundles["seg"]), "--backend", "null")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [p.stderr.strip()]  # exactly one line
    assert p.stderr.startswith("error: ") and str(video) in p.stderr and "Traceback" not in p.stderr


def test_debug_shows_the_traceback(bundles: dict[str, Path], tmp_path: Path) -> None:
    # after the command: cli.py's top-level --debug is overridden by the subparser default (reported)
    p = edgepilot("run", str(tmp_path / "none.mp4"), "--model", str(bundles["seg"]), "--backend", "null", "--debug")
    assert p.returncode != 0 and "Traceback" in p.stderr and "SourceError" in p.stderr


def test_nan_outputs_exit_1_and_still_write_the_report(bundles: dict[str, Path], tmp_path: Path) -> None:
    rep = tmp_path / "rep.json"
    p = edgepilot("run", "synthetic:64x48@100:50", "--model", str(bundles["seg_logits"]), "--backend", "null",
                  "--engine-opt", "nan=true", "--report", str(rep))
    assert p.returncode == 1
    assert p.stderr.strip().startswith("error: engine output 'logits' contains NaN")
    assert len(p.stderr.strip().splitlines()) == 1
    assert json.loads(rep.read_text())["stopped"] == "error"


def test_ctrl_c_stops_cleanly_with_a_report(bundles: dict[str, Path], tmp_path: Path) -> None:
    rep, jsonl = tmp_path / "rep.json", tmp_path / "r.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "edgepilot.cli", "run", "synthetic:160x120@30",
                             "--model", str(bundles["seg"]), "--backend", "null", "--report", str(rep),
                             "--jsonl", str(jsonl)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while not (jsonl.exists() and jsonl.read_text().count("\n") >= 3):  # the loop is running
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    report = json.loads(rep.read_text())
    assert report["stopped"] == "interrupted" and report["frames"] > 0
    assert "FPS" in out


def test_show_without_display_is_bad_input(bundles: dict[str, Path]) -> None:
    p = edgepilot("run", "synthetic:64x48@30:5", "--model", str(bundles["seg"]), "--backend", "null", "--show")
    assert p.returncode == 2 and "needs a display" in p.stderr


def test_help_explains_sources_and_options() -> None:
    p = edgepilot("run", "--help")
    assert p.returncode == 0
    for text in ("synthetic:640x480@30", "rtsp://", "--realtime", "--engine-opt", "examples:", "--max-frames"):
        assert text in p.stdout


def test_in_process_run_leaves_no_thread_or_file(bundles: dict[str, Path], clip: Path, tmp_path: Path) -> None:
    args = ["run", str(clip), "--model", str(bundles["seg"]), "--backend", "null", "--out", str(tmp_path / "o.avi"),
            "--jsonl", str(tmp_path / "r.jsonl"), "--report", str(tmp_path / "rep.json"), "--max-frames", "12"]
    cli.main(args)  # first run loads codecs and libraries that stay loaded
    threads, fds = set(threading.enumerate()), len(os.listdir("/proc/self/fd"))
    assert cli.main(args) == 0
    assert cli.main(["run", "synthetic:64x48@100", "--model", str(bundles["seg_logits"]), "--backend", "null",
                     "--engine-opt", "nan=1", "--jsonl", str(tmp_path / "n.jsonl")]) == 1
    assert set(threading.enumerate()) == threads
    assert len(os.listdir("/proc/self/fd")) == fds
    assert json.loads((tmp_path / "rep.json").read_text())["frames"] == 12
