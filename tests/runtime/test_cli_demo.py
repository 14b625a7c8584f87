"""``edgepilot demo`` smoke test: a tiny run writes every artefact and says the model is untrained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_demo_writes_artefacts_and_says_untrained(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "edgepilot.cli", "demo", "--frames", "12", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "untrained" in proc.stdout
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
