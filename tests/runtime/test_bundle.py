"""Bundle loading: a valid bundle loads; every malformed one gets a BundleError (exit 2) naming the problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.errors import BundleError


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_meta(folder: Path, **changes: object) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    meta.update(changes)
    (folder / "meta.json").write_text(json.dumps(meta))


def _error(path: Path) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(path)
    assert info.value.exit_code == 2
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_valid_bundles_load(bundles: dict[str, Path]) -> None:
    seg = load_bundle(bundles["seg"])
    assert seg.task == "segmentation" and seg.decoder["type"] == "class_ids"
    assert seg.inputs[0].shape == (1, 3, 128, 256)
    assert load_bundle(bundles["seg_dynamic"]).inputs[0].shape == (1, 3, None, None)
    assert load_bundle(bundles["yolo"]).decoder["type"] == "yolo"
    assert load_bundle(bundles["policy"] / "meta.json").task == "policy"


def test_missing_folder_and_file_instead_of_folder(tmp_path: Path, bundles: dict[str, Path]) -> None:
    assert "does not exist" in _error(tmp_path / "nope")
    assert "not a bundle folder" in _error(bundles["seg"] / "model.onnx")


def test_bundle_without_meta(tmp_path: Path, bundles: dict[str, Path]) -> None:
    b = _copy(bundles["seg"], tmp_path / "b")
    (b / "meta.json").unlink()
    assert "no meta.json" in _error(b)


def test_meta_not_json(tmp_path: Path, bundles: dict[str, Path]) -> None:
    b = _copy(bundles["seg"], tmp_path / "b")
    (b / "meta.json").write_text("{not json")
    assert "not valid JSON" in _error(b)


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"task": "depth"}, "task: 'depth' is not one of"),
        ({"decoder": {"type": "yolo"}}, "decoder.type must be one of"),
        ({"opset": 7}, "opset: 7 is less than the minimum of 11"),
        ({"opset": 18}, "differs from meta.json opset 18"),
        ({"inputs": [{"name": "img", "shape": [1, 3, 128, 256]}]}, "'img' is not in the graph"),
        ({"inputs": [{"name": "image", "shape": [1, 3, 64, 64]}]}, "has shape [1, 3, 128, 256] in the graph"),
        ({"inputs": [{"name": "image", "shape": [1, 3, 128, 256], "dtype": "float128"}]}, "inputs[0].dtype: 'float128' is not one of"),
        ({"palette": [[0, 0, 0]]}, "palette colours"),
        ({"classes": [], "palette": []}, "needs a 'classes' list"),
    ],
)
def test_meta_errors(tmp_path: Path, bundles: dict[str, Path], change: dict, expect: str) -> None:
    b = _copy(bundles["seg"], tmp_path / "b")
    _edit_meta(b, **change)
    assert expect in _error(b)


def test_missing_onnx_file(tmp_path: Path, bundles: dict[str, Path]) -> None:
    b = _copy(bundles["seg"], tmp_path / "b")
    (b / "model.onnx").unlink()
    assert "model.onnx is missing" in _error(b)


def test_truncated_and_non_onnx_files(tmp_path: Path, bundles: dict[str, Path]) -> None:
    b = _copy(bundles["seg"], tmp_path / "b")
    data = (b / "model.onnx").read_bytes()
    (b / "model.onnx").write_bytes(data[: len(data) // 3])
    assert "not a valid ONNX model" in _error(b)
    (b / "model.onnx").write_text("this is a text file, not a model")
    assert "not a valid ONNX model" in _error(b)


def test_missing_precision_file(bundles: dict[str, Path]) -> None:
    b = load_bundle(bundles["seg"])
    with pytest.raises(BundleError, match="has no int8 model"):
        b.file("int8")
    with pytest.raises(BundleError, match="no fp16 model"):
        b.file("fp16")  # until exported or converted (runtime.build.fp16)
    assert b.path_of("fp16").name == "model.fp16.onnx" and b.path_of("engines").name == "engines"


def test_docs_list_every_bundle_file_of_the_table() -> None:
    from edgepilot.runtime.bundle import FILE_ROLES, FILES

    doc = (Path(__file__).resolve().parents[2] / "docs" / "bundles.md").read_text()
    assert set(FILE_ROLES) == set(FILES)
    for role, name in FILES.items():
        shown = name + ("/" if role == "engines" else "")
        assert f"| `{role}` | `{shown}` | {FILE_ROLES[role]} |" in doc, f"docs/bundles.md lacks the {role} row"


def _pre(**changes: object) -> dict:  # type: ignore[type-arg]
    pre = {"layout": "NCHW", "color": "RGB", "resize": "stretch", "scale": 1 / 255,
           "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    pre.update(changes)
    return pre


@pytest.mark.parametrize(
    ("name", "change", "expect"),
    [  # each of these was accepted (or crashed later) before the schema
        ("seg", {"preprocess": _pre(std=[0, 0, 0])}, "0 is less than or equal to the minimum of 0"),
        ("seg", {"preprocess": _pre(mean=[0.5, 0.5])}, "preprocess.mean has 2 values for the 3 input channels"),
        ("seg", {"preprocess": _pre(layout="CHW")}, "preprocess.layout: 'CHW' is not one of"),
        ("seg", {"preprocess": _pre(resize="crop")}, "preprocess.resize: 'crop' is not one of"),
        ("seg", {"preprocess": _pre(scale="1/255")}, "preprocess.scale: '1/255' is not of type 'number'"),
        ("seg", {"preprocess": _pre(gamma=2.2)}, "Additional properties are not allowed ('gamma'"),
        ("seg", {"classes": "road"}, "classes: 'road' is not of type 'array'"),
        ("seg", {"palette": [[300, 0, 0]] * 8}, "300 is greater than the maximum of 255"),
        ("seg", {"palette": [[1, 2]] * 8}, "[1, 2] is too short"),
        ("seg", {"decoder": {"type": "class_ids", "output": "nope"}}, "names output 'nope'"),
        ("seg", {"decoder": {"type": "class_ids", "stride": 4}}, "Additional properties are not allowed ('stride'"),
        ("seg", {"files": {"fp32": "../model.onnx"}}, "files.fp32: '../model.onnx' does not match"),
        ("seg", {"files": {"weights": "w.bin"}}, "Additional properties are not allowed ('weights'"),
        ("seg", {"version": 2}, "upgrade edgepilot"),
        ("seg", {"opset": "17"}, "opset: '17' is not of type 'integer'"),
        ("seg_logits", {"classes": ["a", "b"], "palette": []}, "logits output must have 2 channels"),
        ("centernet", {"classes": ["car"]}, "centernet heatmap must have 1 channels"),
        ("yolo", {"classes": ["car"]}, "yolo output [1, 4 + nc, N] must have 5 channels"),
        ("policy", {"decoder": {"type": "action", "names": ["steer"]}}, "action output must have 1 channels"),
        ("policy", {"decoder": {"type": "action", "low": [-1]}}, "decoder.low has 1 values for 2 actions"),
    ],
)
def test_schema_and_consistency_errors(tmp_path: Path, bundles: dict[str, Path], name: str,
                                       change: dict, expect: str) -> None:  # type: ignore[type-arg]
    b = _copy(bundles[name], tmp_path / "b")
    _edit_meta(b, **change)
    assert expect in _error(b)


def test_nan_in_meta_is_not_json(tmp_path: Path, bundles: dict[str, Path]) -> None:
    b = _copy(bundles["seg"], tmp_path / "b")
    (b / "meta.json").write_text((b / "meta.json").read_text().replace('"opset": 17', '"opset": NaN'))
    assert "NaN is not a JSON number" in _error(b)


def test_files_must_stay_inside_the_bundle(tmp_path: Path, bundles: dict[str, Path]) -> None:
    outside = _copy(bundles["seg"], tmp_path / "elsewhere") / "model.onnx"
    b = _copy(bundles["seg"], tmp_path / "b")
    (b / "model.onnx").unlink()
    (b / "model.onnx").symlink_to(outside)
    assert "outside the bundle folder" in _error(b)
    (b / "model.onnx").unlink()
    shutil.copy(outside, b / "model.onnx")
    (b / "model.int8.onnx").symlink_to(outside)
    with pytest.raises(BundleError, match="outside the bundle folder"):
        load_bundle(b).file("int8")


def test_onnx_external_data_is_confined_to_the_bundle(tmp_path: Path, bundles: dict[str, Path]) -> None:
    onnx = pytest.importorskip("onnx")
    b = _copy(bundles["seg"], tmp_path / "b")
    model = onnx.load(str(b / "model.onnx"))
    onnx.external_data_helper.convert_model_to_external_data(
        model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    onnx.save(model, str(b / "model.onnx"))
    assert (b / "weights.bin").is_file()
    load_bundle(b)  # inside the folder: fine
    model = onnx.load(str(b / "model.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../../etc/passwd"
    onnx.save(model, str(b / "model.onnx"))
    assert "external data of model.onnx" in _error(b) and "outside the bundle folder" in _error(b)


def test_published_schema_is_a_valid_json_schema() -> None:
    from jsonschema import Draft202012Validator

    from edgepilot.runtime.bundle_check import schema

    Draft202012Validator.check_schema(schema())
