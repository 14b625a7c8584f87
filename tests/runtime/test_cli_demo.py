"""``edgepilot demo`` smoke tests: the default drive with the shipped bundles, and ``--loop``'s artefacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_demo_drives_with_the_shipped_bundles(tmp_path: Path) -> None:
    """The default demo is the drive: video, report with scores per scenario, and the score table."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("highway_env")
    if not (ROOT / "models" / "policy" / "meta.json").is_file():
        pytest.skip("models/policy is not in this checkout")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "edgepilot.cli", "demo", "--max-steps", "15", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "drive.json").read_text())
    assert report["mode"] == "perception" and set(report["scores"]["per_scenario"]) == {"highway", "roundabout"}
    assert [e["ticks"] for e in report["episodes"]] == [15, 15]
    assert {b["name"] for b in report["bundles"]["perception"]} >= {"fast-scnn"}
    assert "overall" in proc.stdout and "tick (perception + observation + policy + brake)" in proc.stdout
    assert (tmp_path / "drive.mp4").stat().st_size > 0


def test_demo_loop_writes_artefacts_with_the_trained_bundle(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "edgepilot.cli", "demo", "--loop", "--frames", "12",
                           "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "untrained" not in proc.stdout and "models/seg (trained segmentation bundle, held-out mIoU" in proc.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["frames"] == 12 and report["stopped"] == "end"
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 12
    assert (tmp_path / "annotated.mp4").stat().st_size > 0


def test_demo_rejects_zero_frames(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "edgepilot.cli", "demo", "--frames", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: edgepilot demo: argument --frames: 0 is out of range")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_reference_bundle_is_found_only_in_a_source_checkout(tmp_path: Path) -> None:
    from edgepilot.commands.demo import reference_bundle

    assert reference_bundle(tmp_path) is None  # a wheel has no models/ beside the package
    assert reference_bundle(ROOT) == ROOT / "models" / "seg"
