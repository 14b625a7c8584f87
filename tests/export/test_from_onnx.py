"""``edgepilot export --from-onnx``: a YOLO ONNX with Ultralytics metadata -> a bundle the runtime loads."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from edgepilot.cli import main
from edgepilot.runtime.bundle import file_sha256, load_bundle
from edgepilot.runtime.bundle_check import check_consistency, check_schema
from tests.runtime.yolo_onnx import HW, NAMES, PROPS, yolo_onnx


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return yolo_onnx(tmp_path_factory.mktemp("yolo") / "yolov8n.onnx")


def _frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)


def _detect(model: Path | str, backend: str, precision: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from edgepilot.runtime.engines import load_engine
    from edgepilot.runtime.frame import Detections, Frame

    with load_engine(model, backend, precision, threads=1) as engine:
        d = engine.make_processor()(Frame.captured(0, _frame()))
        assert isinstance(d, Detections)
        return d.boxes, d.scores, d.class_ids


def test_export_writes_a_valid_bundle_with_fp16(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b"
    assert main(["export", "--from-onnx", str(model), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"meta.json", "model.onnx", "model.fp16.onnx", "model.fp16.json"}
    meta = json.loads((out / "meta.json").read_text())
    check_schema(meta, out / "meta.json")
    check_consistency(meta, out / "meta.json")
    assert meta["classes"] == NAMES and meta["decoder"]["type"] == "yolo" and meta["preprocess"]["resize"] == "letterbox"
    assert "files" not in meta and meta["source"]["onnx"] == "yolov8n.onnx"
    assert meta["source"]["onnx_sha256"] == file_sha256(model) == file_sha256(out / "model.onnx")
    assert json.loads((out / "model.fp16.json").read_text())["source_sha256"] == file_sha256(model)
    b = load_bundle(out)
    assert b.inputs[0].shape == (1, 3, *HW) and b.file("fp16").is_file()


@pytest.mark.parametrize(("backend", "precision"), [
    ("ort", "fp32"), ("ort", "fp16"),
    pytest.param("openvino", "fp32", marks=pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                                             reason="the [openvino] extra is not installed")),
])
def test_bundle_detects_what_the_bare_onnx_detects(model: Path, tmp_path: Path, backend: str, precision: str) -> None:
    out = tmp_path / "b"
    assert main(["export", "--from-onnx", str(model), "--out", str(out)]) == 0
    ref_boxes, ref_scores, ref_cls = _detect(model, "ort", "fp32")
    boxes, scores, cls = _detect(out, backend, precision)
    assert len(ref_scores) > 0
    tol = 1e-4 if precision == "fp32" else 2e-2  # fp16 weights move scores a little, and NMS with them
    if precision == "fp32":
        np.testing.assert_array_equal(cls, ref_cls)
        np.testing.assert_allclose(scores, ref_scores, atol=tol)
        np.testing.assert_allclose(boxes, ref_boxes, atol=1e-2)
    else:
        assert abs(len(scores) - len(ref_scores)) <= max(2, len(ref_scores) // 10)
        assert abs(float(scores.max()) - float(ref_scores.max())) < tol


def test_names_and_imgsz_supply_missing_metadata(tmp_path: Path) -> None:
    plain = yolo_onnx(tmp_path / "plain.onnx", None, dynamic=True)
    assert main(["export", "--from-onnx", str(plain), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()  # refused before the folder is made
    names_txt = tmp_path / "names.txt"
    names_txt.write_text("car\ntruck\npole\n")
    data_yaml = tmp_path / "data.yaml"
    data_yaml.write_text("path: coco\nnames:\n  0: car\n  1: truck\n  2: pole\n")
    for i, names in enumerate(("car,truck,pole", str(names_txt), str(data_yaml))):
        out = tmp_path / f"b{i}"
        assert main(["export", "--from-onnx", str(plain), "--names", names, "--imgsz", "64x128", "--no-fp16",
                     "--out", str(out)]) == 0
        b = load_bundle(out)
        assert b.classes == NAMES and b.inputs[0].shape == (1, 3, 64, 128) and not b.path_of("fp16").exists()
        assert b.meta["source"]["given"] == ["names", "imgsz"]


@pytest.mark.parametrize(("argv", "expect"), [
    (["export", "--out", "OUT"], "give a checkpoint to export (CKPT) or a detection ONNX"),
    (["export", "best.pt", "--from-onnx", "MODEL", "--out", "OUT"], "not both"),
    (["export", "best.pt", "--out", "OUT"], "--task seg|det|policy is needed"),
    (["export", "best.pt", "--task", "det", "--names", "a,b", "--out", "OUT"], "--names apply to --from-onnx"),
    (["export", "--from-onnx", "MODEL", "--int8", "--out", "OUT"], "--int8 apply to checkpoints"),
    (["export", "--from-onnx", "MODEL", "--task", "seg", "--out", "OUT"], "--task apply to checkpoints"),
    (["export", "--from-onnx", "nope.onnx", "--out", "OUT"], "no such .onnx file"),
    (["export", "--from-onnx", "MODEL", "--names", "car,car,pole", "--out", "OUT"], "repeats 'car'"),
    (["export", "--from-onnx", "MODEL", "--imgsz", "0x3", "--out", "OUT"], "bad shape"),
])
def test_bad_source_arguments_are_one_error_line(model: Path, tmp_path: Path, argv: list[str], expect: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(model) if a == "MODEL" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and expect in err, err
    assert not (tmp_path / "out").exists()


def test_a_non_empty_out_needs_force(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    assert main(["export", "--from-onnx", str(model), "--out", str(out)]) == 0
    assert main(["export", "--from-onnx", str(model), "--out", str(out)]) == 2
    other = yolo_onnx(tmp_path / "other.onnx", {**PROPS, "names": "['a', 'b', 'c']"})
    assert main(["export", "--from-onnx", str(other), "--out", str(out), "--force", "--no-fp16"]) == 0
    assert load_bundle(out).classes == ["a", "b", "c"] and not (out / "model.fp16.onnx").exists()


def test_from_onnx_needs_no_torch(model: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; from edgepilot.cli import main; "
            f"sys.exit(main(['export', '--from-onnx', {str(model)!r}, '--out', {str(tmp_path / 'b')!r}]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parents[2])
    assert p.returncode == 0, p.stderr
    assert load_bundle(tmp_path / "b").classes == NAMES
