"""``edgepilot eval seg|det BUNDLE``: the runtime engine scored as export scored it, plus engine latency."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from edgepilot.cli import main


@pytest.fixture(scope="module")
def det_bundle(det_ckpt: Path, frames_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgepilot.export.bundle import export_checkpoint

    return export_checkpoint(det_ckpt, "det", tmp_path_factory.mktemp("bundles") / "det", val_data=[frames_dir],
                             show_progress=False)


def _eval(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["eval", *argv]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_seg_bundle_scores_equal_the_export_record(seg_bundle: Path, frames_dir: Path, precision: str,
                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e.json"
    r = _eval(capsys, "seg", str(seg_bundle), "--data", str(frames_dir), "--split", "all", "--precision", precision,
              "--engine-opt", "threads=1", "--out", str(out))
    assert json.loads(out.read_text()) == r
    meta = json.loads((seg_bundle / "meta.json").read_text())
    # ort on CPU runs int8 as the U8S8 model.int8.cpu.onnx, whose accuracy export records beside int8's
    recorded = meta["calibration"]["cpu_variant"]["accuracy"] if precision == "int8" else meta["accuracy"][precision]
    assert r["miou"] == pytest.approx(recorded["miou"], abs=1e-9)
    assert r["per_class_iou"] == pytest.approx(recorded["per_class_iou"], abs=1e-9)
    assert (r["backend"], r["precision"], r["device"], r["bundle"]) == ("ort", precision, "cpu", str(seg_bundle))
    assert r["frames"] == r["images"] == recorded["images"] == 6
    assert r["engine_p50_ms"] > 0 and r["engine_p90_ms"] >= r["engine_p50_ms"]


def test_det_bundle_scores_equal_the_export_record(det_bundle: Path, frames_dir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    r = _eval(capsys, "det", str(det_bundle), "--data", str(frames_dir), "--split", "all", "--engine-opt", "threads=1")
    recorded = json.loads((det_bundle / "meta.json").read_text())["accuracy"]["fp32"]
    for key in ("map50", "map50_95", "per_class_ap", "gt_boxes", "detections"):
        assert r[key] == pytest.approx(recorded[key], abs=1e-9), key
    assert r["frames"] == 6 and r["engine_p50_ms"] > 0 and r["min_size"] == pytest.approx(1 / 32)


def test_split_and_limit_pick_the_frames(seg_bundle: Path, frames_dir: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    r = _eval(capsys, "seg", str(seg_bundle), "--data", str(frames_dir), "--engine-opt", "threads=1")  # default: val
    assert r["split"] == "val" and 0 < r["frames"] < 6
    assert _eval(capsys, "seg", str(seg_bundle), "--data", str(frames_dir), "--split", "all", "--limit", "2")["frames"] == 2


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="the [openvino] extra is not installed")
def test_another_backend_scores_the_same_graph(seg_bundle: Path, frames_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    r = _eval(capsys, "seg", str(seg_bundle), "--data", str(frames_dir), "--split", "all", "--backend", "openvino")
    recorded = json.loads((seg_bundle / "meta.json").read_text())["accuracy"]["fp32"]
    assert r["backend"] == "openvino" and r["miou"] == pytest.approx(recorded["miou"], abs=0.02)


def test_wrong_bundle_or_flags_are_one_error_line(seg_bundle: Path, frames_dir: Path, bundles: dict[str, Path],
                                                  seg_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data", str(frames_dir)]
    assert main(["eval", "det", str(seg_bundle), *data]) == 2  # a segmentation bundle
    assert main(["eval", "seg", str(bundles["seg"]), *data]) == 2  # the tiny net's 8 classes, not the class map
    assert main(["eval", "seg", str(seg_ckpt), *data, "--backend", "openvino"]) == 2  # a checkpoint runs on torch
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 3
    assert "is a segmentation bundle, not detection" in errors[0]
    assert "are not the datagen class map" in errors[1]
    assert "--backend apply to bundles" in errors[2]
