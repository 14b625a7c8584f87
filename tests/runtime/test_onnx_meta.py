"""A bare Ultralytics-style detection ONNX runs as a bundle from its own metadata (runtime.onnx_meta)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgepilot import cli
from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.errors import BundleError
from tests.runtime.test_cli_run import edgepilot
from tests.runtime.yolo_onnx import HW, NAMES, PROPS, yolo_onnx

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return yolo_onnx(tmp_path_factory.mktemp("yolo") / "yolov8n.onnx")


def _error(path: Path) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(path)
    return str(info.value)


def test_metadata_becomes_a_letterbox_yolo_bundle(model: Path) -> None:
    b = load_bundle(model)
    assert b.task == "detection" and b.classes == NAMES and b.name == "yolov8n" and b.path == model.parent
    assert b.inputs[0].shape == (1, 3, *HW) and b.outputs[0].shape == (1, 4 + len(NAMES), (HW[0] // 4) * (HW[1] // 4))
    assert b.decoder["type"] == "yolo" and b.decoder["output"] == "output0"
    pre = b.preprocess
    assert (pre["resize"], pre["color"], pre["pad_value"]) == ("letterbox", "RGB", 114)
    assert pre["scale"] == pytest.approx(1 / 255) and pre["mean"] == [0, 0, 0] and pre["std"] == [1, 1, 1]
    assert b.file("fp32") == model and b.path_of("fp16").name == "yolov8n.fp16.onnx"
    assert b.meta["source"]["author"] == "Ultralytics" and b.meta["source"]["task"] == "detect"


def test_engine_runs_it_and_writes_nothing_beside_it(model: Path) -> None:
    from edgepilot.runtime.engines import load_engine
    from edgepilot.runtime.processor import dry_run

    before = sorted(p.name for p in model.parent.iterdir())
    with load_engine(model, "ort", "fp32", threads=1) as engine:
        raw = engine.infer(engine.sample_inputs())["output0"]
        assert raw.shape == (1, 4 + len(NAMES), (HW[0] // 4) * (HW[1] // 4)) and np.isfinite(raw).all()
        processor = engine.make_processor()
        dry_run(processor)
    assert sorted(p.name for p in model.parent.iterdir()) == before


def test_run_a_clip_with_a_bare_onnx(model: Path, clip: Path, tmp_path: Path) -> None:
    jsonl, rep = tmp_path / "r.jsonl", tmp_path / "rep.json"
    p = edgepilot("run", str(clip), "--model", str(model), "--jsonl", str(jsonl), "--report", str(rep),
                  "--engine-opt", "threads=1", "--no-progress")
    assert p.returncode == 0, p.stderr
    report = json.loads(rep.read_text())
    # --backend auto (the default) times the installed CPU backends on this model and keeps the
    # faster, which depends on the machine: either runs the bare ONNX as a bundle
    assert report["frames"] == 30 and report["engine"]["backend"] in ("ort", "openvino")
    assert report["engine"]["chosen_by"].startswith("auto")
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    dets = [d for r in records for d in r["detections"]]
    assert len(records) == 30 and dets, "the random head scores many cells above 0.25"
    assert {d["class"] for d in dets} <= set(NAMES) and all(d["score"] > 0.25 for d in dets)
    assert all(d["box"][0] <= d["box"][2] and d["box"][1] <= d["box"][3] for d in dets)  # x1 y1 x2 y2


def test_dynamic_input_takes_imgsz_from_the_metadata(tmp_path: Path) -> None:
    b = load_bundle(yolo_onnx(tmp_path / "dyn.onnx", dynamic=True))
    assert b.inputs[0].shape == (1, 3, *HW) and b.outputs[0].shape == (1, 4 + len(NAMES), None)
    no_size = {k: v for k, v in PROPS.items() if k != "imgsz"}
    assert "lacks imgsz" in _error(yolo_onnx(tmp_path / "dyn2.onnx", no_size, dynamic=True))


def test_no_metadata_names_the_missing_fields_and_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixed = yolo_onnx(tmp_path / "plain.onnx", None)
    msg = _error(fixed)
    assert "lacks names" in msg and "imgsz" not in msg.split("lacks")[1].split("(")[0]  # the graph's input is fixed
    assert f"edgepilot export --from-onnx {fixed} --names" in msg
    assert "lacks names and imgsz" in _error(yolo_onnx(tmp_path / "dyn.onnx", None, dynamic=True))
    assert cli.main(["run", "synthetic:160x120@30:3", "--model", str(fixed), "--backend", "null"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "lacks names" in err


@pytest.mark.parametrize(("names", "expect"), [
    ("{0: 'car', 1: 'truck'", "not a Python literal"),
    ("__import__('os').system('touch pwned')", "not a Python literal"),
    ("{1: 'car', 2: 'truck', 3: 'pole'}", "class indices 0..2"),
    ("{0: 'car', 1: 'car', 2: 'pole'}", "repeats 'car'"),
    ("{0: 'car', 1: '', 2: 'pole'}", "empty or non-text"),
    ("[]", "non-empty dict or list"),
    ("'car'", "non-empty dict or list"),
    ("{0: 'car', 1: 'truck'}", "[1, 4 + 2, N] = [1, 6, N]"),
])
def test_bad_names_are_refused_and_never_evaluated(tmp_path: Path, names: str, expect: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    msg = _error(yolo_onnx(tmp_path / "m.onnx", {**PROPS, "names": names}))
    assert expect in msg and str(tmp_path / "m.onnx") in msg
    assert not (tmp_path / "pwned").exists()


def test_names_as_a_list_and_square_imgsz_are_accepted(tmp_path: Path) -> None:
    b = load_bundle(yolo_onnx(tmp_path / "m.onnx", {**PROPS, "names": str(NAMES)}))
    assert b.classes == NAMES
    assert "differs from the graph's fixed input 64x128" in _error(
        yolo_onnx(tmp_path / "sq.onnx", {**PROPS, "imgsz": "640"}))
    assert "must be an int or [H, W]" in _error(yolo_onnx(tmp_path / "bad.onnx", {**PROPS, "imgsz": "[0, 64]"}))


@pytest.mark.parametrize("task", ["segment", "pose", "obb", "classify"])
def test_other_tasks_name_the_task(tmp_path: Path, task: str) -> None:
    msg = _error(yolo_onnx(tmp_path / "m.onnx", {**PROPS, "task": task}))
    assert f"task {task!r} is not supported" in msg and "only 'detect'" in msg


def test_a_text_file_named_onnx_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_text("not a model")
    assert "is not a valid ONNX model" in _error(tmp_path / "m.onnx")


def test_an_nms_export_is_named_as_such(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], keepdims=1),  # [1, 1, 1, 1]
             helper.make_node("Reshape", ["m", "s3"], ["m3"]),
             helper.make_node("Expand", ["m3", "out_shape"], ["output0"])]  # [1, 300, 6]: x1 y1 x2 y2 score class
    inits = [numpy_helper.from_array(np.array([1, 1, 1], np.int64), "s3"),
             numpy_helper.from_array(np.array([1, 300, 6], np.int64), "out_shape")]
    graph = helper.make_graph(nodes, "nms", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *HW])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 300, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in PROPS.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(tmp_path / "nms.onnx"))
    msg = _error(tmp_path / "nms.onnx")
    assert "[1, 7, N]" in msg and "output0 [1, 300, 6]" in msg and "nms=True export" in msg
