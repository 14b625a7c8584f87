"""``edgepilot info``: subprocess smoke tests of the text and JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from edgepilot.commands import info

ROOT = Path(__file__).resolve().parents[2]


def run_info(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edgepilot.cli", "info", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_info_json_reports_versions_and_backends() -> None:
    proc = run_info("--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    import numpy as np

    assert report["versions"]["numpy"] == np.__version__
    assert report["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    ort = report["backends"]["onnxruntime"]
    assert ort["installed"] is True and "CPUExecutionProvider" in ort["providers"]
    assert set(report["backends"]) == {"null", "torch", "onnxruntime", "openvino", "tensorrt", "tritonclient"}
    assert set(report["auto"]) == {"fp32", "fp16", "int8"}
    assert all(v.startswith("measured at the first load of a bundle among ") for v in report["auto"].values())
    assert "bundle" not in report


def test_info_on_a_bundle_shows_what_auto_measured_there(bundles: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    from edgepilot.runtime.engines import load_engine

    folder = Path(shutil.copytree(bundles["seg"], tmp_path / "seg", ignore=shutil.ignore_patterns("engines")))
    chosen = load_engine(folder, "auto", "fp32", threads=1).backend
    proc = run_info("--json", "--model", str(folder))
    assert proc.returncode == 0, proc.stderr
    auto = json.loads(proc.stdout)["auto"]
    assert auto["fp32"].startswith(f"{chosen} measured fastest here ") and "ort " in auto["fp32"]
    assert auto["int8"].startswith("measured at the first load")


def test_info_model_summarises_the_bundle(bundles: dict[str, Path]) -> None:
    proc = run_info("--model", str(bundles["seg"]), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    b = report["bundle"]
    assert (b["task"], b["opset"], b["decoder"]["type"]) == ("segmentation", 17, "class_ids")
    assert b["inputs"] == [{"name": "image", "shape": [1, 3, 128, 256], "dtype": "float32"}]
    assert b["outputs"] == [{"name": "class_ids", "shape": [1, 128, 256], "dtype": "uint8"}]
    assert b["classes"][:2] == ["unlabeled", "road"] and b["precisions"] == ["fp32", "fp16"]
    assert b["files"]["fp32"] == {"file": "model.onnx", "present": True}
    assert b["files"]["int8"]["present"] is False and b["torch_program"] is False
    # the text form renders the same report (in-process: one subprocess per test is enough)
    text = info._text(report)
    assert "input:  image [1, 3, 128, 256] float32" in text and "precisions: fp32, fp16" in text


def test_info_bad_bundle_exits_2(tmp_path: Path) -> None:
    proc = run_info("--model", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: model bundle") and proc.stderr.count("\n") == 1
