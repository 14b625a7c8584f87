"""Decoders on hand-made engine outputs with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.errors import BundleError, EngineError
from edgepilot.runtime.frame import Detections, PolicyAction, SegMap
from edgepilot.runtime.postprocess import make_decoder
from edgepilot.runtime.preprocess import Transform

IDENTITY = Transform(1.0, 1.0, 0.0, 0.0)


def test_segmentation_logits_argmax(bundles: dict[str, Path]) -> None:
    dec = make_decoder(load_bundle(bundles["seg_logits"]))
    logits = np.zeros((1, 8, 4, 6), np.float32)
    logits[0, 3, :2] = 5.0  # top half class 3
    logits[0, 1, 2:] = 2.0  # bottom half class 1
    seg = dec({"logits": logits}, IDENTITY, (4, 6))
    assert isinstance(seg, SegMap) and seg.class_ids.dtype == np.uint8
    assert (seg.class_ids[:2] == 3).all() and (seg.class_ids[2:] == 1).all()
    assert seg.histogram()[[1, 3]].tolist() == [12, 12] and seg.histogram().sum() == 24


def test_segmentation_nan_logits_raise_runtime_error(bundles: dict[str, Path]) -> None:
    dec = make_decoder(load_bundle(bundles["seg_logits"]))
    logits = np.zeros((1, 8, 4, 6), np.float32)
    logits[0, 0, 1, 1] = np.nan
    with pytest.raises(EngineError, match="NaN") as info:
        dec({"logits": logits}, IDENTITY, (4, 6))
    assert info.value.exit_code == 1


def test_segmentation_class_ids_pass_through(bundles: dict[str, Path]) -> None:
    dec = make_decoder(load_bundle(bundles["seg"]))
    ids = np.arange(12, dtype=np.int64).reshape(1, 3, 4) % 8
    seg = dec({"class_ids": ids}, IDENTITY, (3, 4))
    assert seg.class_ids.shape == (3, 4) and seg.class_ids.dtype == np.uint8
    assert seg.class_ids.ravel().tolist() == (np.arange(12) % 8).tolist()


def test_centernet_peak_and_box(bundles: dict[str, Path]) -> None:
    dec = make_decoder(load_bundle(bundles["centernet"]))  # stride 4, sizes in cells, threshold 0.5
    heat = np.zeros((1, 3, 32, 64), np.float32)
    heat[0, 1, 10, 20] = 0.9
    heat[0, 1, 10, 21] = 0.6  # neighbour of a stronger peak: suppressed by the 3x3 max
    heat[0, 2, 5, 5] = 0.4  # below threshold
    heat[0, 0, 30, 60] = 0.7  # a second, separate peak
    size = np.zeros((1, 2, 32, 64), np.float32)
    size[0, :, 10, 20] = (5.0, 3.0)
    size[0, :, 30, 60] = (1.0, 1.0)
    offset = np.zeros((1, 2, 32, 64), np.float32)
    offset[0, :, 10, 20] = (0.5, 0.25)
    det = dec({"heatmap": heat, "size": size, "offset": offset}, IDENTITY, (128, 256))
    assert isinstance(det, Detections) and len(det) == 2
    assert det.class_ids.tolist() == [1, 0]
    np.testing.assert_allclose(det.scores, [0.9, 0.7], rtol=1e-6)
    # centre (20.5, 10.25) * 4 = (82, 41); size (5, 3) cells * 4 = (20, 12)
    np.testing.assert_allclose(det.boxes[0], [72, 35, 92, 47], atol=1e-4)
    np.testing.assert_allclose(det.boxes[1], [238, 118, 242, 122], atol=1e-4)


def test_centernet_no_peaks_is_empty(bundles: dict[str, Path]) -> None:
    dec = make_decoder(load_bundle(bundles["centernet"]))
    z = np.zeros((1, 3, 32, 64), np.float32)
    det = dec({"heatmap": z, "size": np.zeros((1, 2, 32, 64), np.float32), "offset": np.zeros((1, 2, 32, 64), np.float32)}, IDENTITY, (128, 256))
    assert len(det) == 0 and det.boxes.shape == (0, 4)


def _yolo_column(cx: float, cy: float, w: float, h: float, cls: int, score: float) -> list[float]:
    col = [cx, cy, w, h, 0.0, 0.0, 0.0]
    col[4 + cls] = score
    return col


def test_yolo_nms_is_class_aware_and_maps_through_letterbox(bundles: dict[str, Path]) -> None:
    dec = make_decoder(load_bundle(bundles["yolo"]))  # 3 classes, score threshold 0.7, IoU 0.45
    cols = [
        _yolo_column(50, 50, 20, 20, 0, 0.95),
        _yolo_column(51, 50, 20, 20, 0, 0.90),  # same class, IoU ~0.9: suppressed
        _yolo_column(51, 50, 20, 20, 1, 0.85),  # other class, same place: kept
        _yolo_column(150, 60, 10, 10, 2, 0.50),  # below threshold
        _yolo_column(200, 100, 40, 20, 2, 0.80),
    ]
    raw = np.array(cols, np.float32).T[None]  # (1, 7, 5)
    tf = Transform(0.5, 0.5, 0.0, 10.0)  # letterbox: source = (model - pad) / 0.5
    det = dec({"output0": raw}, tf, (300, 600))
    assert len(det) == 3
    order = np.argsort(-det.scores)
    assert det.class_ids[order].tolist() == [0, 1, 2]
    np.testing.assert_allclose(det.boxes[order[0]], [80, 60, 120, 100], atol=1e-4)
    np.testing.assert_allclose(det.boxes[order[2]], [360, 160, 440, 200], atol=1e-4)


def test_yolo_class_is_the_first_best_even_on_ties(bundles: dict[str, Path]) -> None:
    """The best class is found only for anchors over the threshold: it must equal a full argmax."""
    dec = make_decoder(load_bundle(bundles["yolo"]))  # 3 classes, threshold 0.7
    rng = np.random.default_rng(3)
    n = 400
    raw = np.zeros((1, 7, n), np.float32)
    raw[0, 0], raw[0, 1] = rng.uniform(0, 600, n), rng.uniform(0, 300, n)  # spread out: NMS keeps most
    raw[0, 2:4] = 4.0
    raw[0, 4:] = rng.choice([0.1, 0.75, 0.8, 0.9], size=(3, n))  # many exact ties between classes
    det = dec({"output0": raw}, IDENTITY, (300, 600))
    best = raw[0, 4:].max(0)
    assert 0 < len(det) <= int((best > 0.7).sum())
    for box, score, cls in zip(det.boxes, det.scores, det.class_ids, strict=True):
        j = int(np.argmin(np.abs(raw[0, 0] - (box[0] + box[2]) / 2) + np.abs(raw[0, 1] - (box[1] + box[3]) / 2)))
        assert score == best[j] and cls == int(np.argmax(raw[0, 4:, j]))


def test_yolo_wrong_layout_is_a_clear_error(bundles: dict[str, Path]) -> None:
    dec = make_decoder(load_bundle(bundles["yolo"]))
    with pytest.raises(BundleError, match=r"\[1, 4 \+ 3, N\]") as info:  # the bundle's fault: exit 2
        dec({"output0": np.zeros((1, 9, 5), np.float32)}, IDENTITY, (10, 10))
    assert info.value.exit_code == 2


def test_policy_action_is_clipped(bundles: dict[str, Path]) -> None:
    dec = make_decoder(load_bundle(bundles["policy"]))
    act = dec({"action": np.array([[1.7, -0.25]], np.float32)}, IDENTITY, (1, 1))
    assert isinstance(act, PolicyAction) and act.names == ("steer", "throttle")
    np.testing.assert_allclose(act.values, [1.0, -0.25])
