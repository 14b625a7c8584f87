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
        ({"task": "depth"}, "unknown task 'depth'"),
        ({"decoder": {"type": "yolo"}}, "decoder.type must be one of"),
        ({"opset": 7}, "opset 7 is not supported"),
        ({"opset": 18}, "differs from meta.json opset 18"),
        ({"inputs": [{"name": "img", "shape": [1, 3, 128, 256]}]}, "'img' is not in the graph"),
        ({"inputs": [{"name": "image", "shape": [1, 3, 64, 64]}]}, "has shape [1, 3, 128, 256] in the graph"),
        ({"inputs": [{"name": "image", "shape": [1, 3, 128, 256], "dtype": "float128"}]}, "unknown dtype"),
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
