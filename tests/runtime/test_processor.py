"""The per-frame path: preprocess -> engine -> decode with timeline stamps, and annotation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.draw import Annotator
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.errors import DeviceError, EngineError
from edgepilot.runtime.frame import (
    CAPTURE,
    HANDOFF,
    INFER,
    POSTPROCESS,
    PREPROCESS,
    Detections,
    Frame,
    SegMap,
)


def test_processor_stamps_every_stage_in_order(bundles: dict[str, Path]) -> None:
    b = load_bundle(bundles["seg"])
    proc = load_engine(b, "null").make_processor()
    frame = Frame.captured(7, np.zeros((240, 320, 3), np.uint8))
    out = proc(frame)
    assert isinstance(out, SegMap) and out.class_ids.shape == (128, 256)
    names = [s for s, _ in frame.timeline.stamps]
    assert names == [CAPTURE, PREPROCESS, HANDOFF, INFER, POSTPROCESS]
    times = [t for _, t in frame.timeline.stamps]
    assert times == sorted(times) and frame.timeline.latency_ms() >= 0


def test_ort_and_null_agree_on_shapes(bundles: dict[str, Path]) -> None:
    pytest.importorskip("onnxruntime")
    b = load_bundle(bundles["centernet"])
    img = np.random.default_rng(1).integers(0, 255, (100, 200, 3), dtype=np.uint8)
    for backend in ("null", "ort"):
        out = load_engine(b, backend).make_processor()(Frame.captured(0, img))
        assert isinstance(out, Detections)
        assert ((out.boxes[:, 2] <= 200) & (out.boxes[:, 3] <= 100)).all()


def test_nan_engine_output_is_a_runtime_error(bundles: dict[str, Path]) -> None:
    b = load_bundle(bundles["seg_logits"])
    proc = load_engine(b, "null", nan=True).make_processor()
    with pytest.raises(EngineError, match="NaN") as info:
        proc(Frame.captured(0, np.zeros((64, 64, 3), np.uint8)))
    assert info.value.exit_code == 1


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu0"])
def test_unknown_device_is_bad_input(bundles: dict[str, Path], device: str) -> None:
    with pytest.raises(DeviceError) as info:
        load_engine(bundles["seg"], "null", device=device)
    assert info.value.exit_code == 2


def test_unknown_backend_and_precision(bundles: dict[str, Path]) -> None:
    with pytest.raises(EngineError, match="unknown backend") as info:
        load_engine(bundles["seg"], "tflite")
    assert info.value.exit_code == 2
    with pytest.raises(EngineError, match="unknown precision"):
        load_engine(bundles["seg"], "null", precision="fp8")


def test_annotator_overlays_palette_and_draws_boxes(bundles: dict[str, Path]) -> None:
    b = load_bundle(bundles["seg"])
    ann = Annotator(b.classes, b.palette, alpha=1.0)
    img = np.zeros((20, 40, 3), np.uint8)
    seg = SegMap(np.full((10, 20), 1, np.uint8), len(b.classes))
    out = ann(img, seg)
    assert out.shape == img.shape and tuple(out[5, 5]) == (128, 64, 128)[::-1]  # road colour, BGR
    assert img.sum() == 0  # the source frame is not drawn on
    beyond = ann(img, SegMap(np.full((10, 20), 200, np.uint8), len(b.classes)))  # an id past the palette
    assert tuple(beyond[5, 5]) == tuple(b.palette[-1][::-1])
    det = Detections(np.array([[2, 2, 30, 15]], np.float32), np.array([0.9], np.float32), np.array([0], np.int32))
    assert ann(img, det).sum() > 0


def test_dry_run_finds_a_decoder_mismatch_at_load(bundles: dict[str, Path], tmp_path: Path) -> None:
    import json
    import shutil

    from edgepilot.runtime.errors import BundleError
    from edgepilot.runtime.processor import dry_run

    b = Path(shutil.copytree(bundles["yolo"], tmp_path / "y"))
    meta = json.loads((b / "meta.json").read_text())
    meta["outputs"][0]["shape"], meta["classes"] = [1, None, None], ["car"]
    (b / "meta.json").write_text(json.dumps(meta))
    proc = load_engine(load_bundle(b), "ort").make_processor()
    with pytest.raises(BundleError, match=r"must be \[1, 4 \+ 1, N\]") as err:
        dry_run(proc)
    assert err.value.exit_code == 2
    dry_run(load_engine(load_bundle(bundles["yolo"]), "ort").make_processor())  # a fitting bundle passes
