"""Every bad input of the run command: one ``error:`` line naming what and where, exit 2 or 1, no traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.runtime.test_cli_run import edgepilot


def _bundle_without_meta(bundles: dict[str, Path], tmp: Path) -> Path:
    b = Path(shutil.copytree(bundles["seg"], tmp / "nometa"))
    (b / "meta.json").unlink()
    return b


def _truncated(bundles: dict[str, Path], tmp: Path) -> Path:
    b = Path(shutil.copytree(bundles["seg"], tmp / "trunc"))
    data = (b / "model.onnx").read_bytes()
    (b / "model.onnx").write_bytes(data[: len(data) // 2])
    return b


def _not_onnx(bundles: dict[str, Path], tmp: Path) -> Path:
    b = Path(shutil.copytree(bundles["seg"], tmp / "notonnx"))
    (b / "model.onnx").write_text("<html>404 not found</html>")
    return b


def _wrong_input_name(bundles: dict[str, Path], tmp: Path) -> Path:
    b = Path(shutil.copytree(bundles["seg"], tmp / "badname"))
    meta = json.loads((b / "meta.json").read_text())
    meta["inputs"][0]["name"] = "pixels"
    (b / "meta.json").write_text(json.dumps(meta))
    return b


def _four_channel_seg(bundles: dict[str, Path], tmp: Path) -> Path:
    b = Path(shutil.copytree(bundles["seg"], tmp / "fourch"))
    meta = json.loads((b / "meta.json").read_text())
    meta["inputs"][0]["shape"][1] = 4
    (b / "meta.json").write_text(json.dumps(meta))
    return b


def _yolo_wrong_class_count(bundles: dict[str, Path], tmp: Path) -> Path:
    """Passes load (dynamic output dims hide the mismatch); only the model's real output shows it."""
    b = Path(shutil.copytree(bundles["yolo"], tmp / "yolo1"))
    meta = json.loads((b / "meta.json").read_text())
    meta["outputs"][0]["shape"] = [1, None, None]
    meta["classes"], meta["palette"] = ["car"], []
    (b / "meta.json").write_text(json.dumps(meta))
    return b


@pytest.mark.parametrize(
    ("make", "extra", "expect", "code"),
    [
        (_bundle_without_meta, [], "has no meta.json", 2),
        (_truncated, [], "not a valid ONNX model", 2),
        (_not_onnx, [], "not a valid ONNX model", 2),
        (_wrong_input_name, [], "'pixels' is not in the graph", 2),
        (None, ["--shape", "64x64"], "the model expects [1, 3, 128, 256]", 2),
        (None, ["--shape", "wide"], "write it as HxW", 2),
        (None, ["--device", "tpu"], "unknown device 'tpu'", 2),
        (None, ["--device", "cuda:7"], "no GPU provider", 2),
        ("seg_logits", ["--backend", "null", "--engine-opt", "nan=true"], "NaN", 1),
        # regressions: a policy bundle ran on camera frames and failed on the first frame
        ("policy", [], "is a policy bundle", 2),
        ("policy", ["--backend", "null"], "edgepilot drive", 2),
        (_four_channel_seg, [], "has 4 channels", 2),
        (_yolo_wrong_class_count, [], "must be [1, 4 + 1, N], got [1, 7,", 2),
    ],
)
def test_bad_input_is_one_line(bundles: dict[str, Path], clip: Path, tmp_path: Path,
                               make: object, extra: list[str], expect: str, code: int) -> None:
    model = make(bundles, tmp_path) if callable(make) else bundles[str(make or "seg")]
    p = edgepilot("run", str(clip), "--model", str(model), *extra)
    assert p.returncode == code, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and expect in errors[0], p.stderr
    assert "Traceback" not in p.stderr
