"""Pre-processing: resize modes, colour order, normalisation, layout, and the inverse transform."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepilot.runtime.bundle import DEFAULT_PREPROCESS, TensorSpec
from edgepilot.runtime.errors import BundleError
from edgepilot.runtime.preprocess import Preprocessor


def _cfg(**kw: object) -> dict:
    return {**DEFAULT_PREPROCESS, **kw}


def test_stretch_rgb_normalisation_nchw() -> None:
    img = np.zeros((4, 8, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 20, 30  # B, G, R
    pre = Preprocessor(TensorSpec("x", (1, 3, 4, 8)), _cfg(mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.5]))
    out, tf = pre(img)
    assert out.shape == (1, 3, 4, 8) and out.dtype == np.float32
    # channel 0 is R (30) in RGB order: (30/255 - 0.1) / 0.5
    np.testing.assert_allclose(out[0, :, 0, 0], [(30 / 255 - 0.1) / 0.5, (20 / 255 - 0.2) / 0.5, (10 / 255 - 0.3) / 0.5], rtol=1e-6)
    assert (tf.scale_x, tf.scale_y, tf.pad_x, tf.pad_y) == (1.0, 1.0, 0.0, 0.0)


def test_bgr_nhwc_and_resize() -> None:
    img = np.full((20, 40, 3), 255, np.uint8)
    pre = Preprocessor(TensorSpec("x", (1, 10, 10, 3)), _cfg(layout="NHWC", color="BGR"))
    out, tf = pre(img)
    assert out.shape == (1, 10, 10, 3)
    np.testing.assert_allclose(out, 1.0, rtol=1e-6)
    assert tf.scale_x == pytest.approx(10 / 40) and tf.scale_y == pytest.approx(10 / 20)


def test_letterbox_pads_and_maps_boxes_back() -> None:
    img = np.full((100, 200, 3), 7, np.uint8)
    pre = Preprocessor(TensorSpec("x", (1, 3, 64, 64)), _cfg(resize="letterbox", scale=1.0, pad_value=114))
    out, tf = pre(img)
    assert tf.scale_x == tf.scale_y == pytest.approx(0.32) and tf.pad_y == 16.0 and tf.pad_x == 0.0
    assert out[0, 0, 0, 0] == 114.0 and out[0, 0, 32, 32] == 7.0  # pad row vs image row
    boxes = np.array([[0.0, 16.0, 64.0, 48.0]], np.float32)  # the whole image area in model pixels
    np.testing.assert_allclose(tf.boxes_to_source(boxes, 200, 100), [[0, 0, 200, 100]], atol=1e-4)


def test_uint8_input_passes_pixels_through() -> None:
    img = np.random.default_rng(0).integers(0, 255, (6, 6, 3), dtype=np.uint8)
    pre = Preprocessor(TensorSpec("x", (1, 3, 6, 6), "uint8"), _cfg())
    out, _ = pre(img)
    np.testing.assert_array_equal(out[0, 0], img[:, :, 2])  # R first


def test_fixed_shape_cannot_take_another_size_and_dynamic_needs_one() -> None:
    with pytest.raises(BundleError, match="fixed at 4x8"):
        Preprocessor(TensorSpec("x", (1, 3, 4, 8)), _cfg(), hw=(8, 8))
    with pytest.raises(BundleError, match="dynamic height/width"):
        Preprocessor(TensorSpec("x", (1, 3, None, None)), _cfg())
    assert Preprocessor(TensorSpec("x", (1, 3, None, None)), _cfg(), hw=(16, 32)).input_hw == (16, 32)


def test_rejects_non_bgr_images() -> None:
    pre = Preprocessor(TensorSpec("x", (1, 3, 4, 4)), _cfg())
    with pytest.raises(BundleError, match="HxWx3 uint8"):
        pre(np.zeros((4, 4), np.uint8))


def _reference(image: np.ndarray, cfg: dict, h: int, w: int, dtype: str = "float32") -> np.ndarray:
    """The plain algorithm: resize (letterbox onto a padded canvas), then (x * scale - mean) / std per channel
    (a uint8 input: the pixels as they are)."""
    src_h, src_w = image.shape[:2]
    if cfg["resize"] == "letterbox":
        r = min(h / src_h, w / src_w)
        nw, nh = round(src_w * r), round(src_h * r)
        py, px = (h - nh) // 2, (w - nw) // 2
        canvas = np.full((h, w, 3), cfg["pad_value"], np.uint8)
        canvas[py:py + nh, px:px + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    else:
        canvas = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    order = (2, 1, 0) if cfg["color"] == "RGB" else (0, 1, 2)
    if dtype == "uint8":
        return np.stack([canvas[:, :, order[k]] for k in range(3)], 0 if cfg["layout"] == "NCHW" else -1)[None]
    std = np.asarray(cfg["std"], np.float32)
    a, b = np.float32(cfg["scale"]) / std, -np.asarray(cfg["mean"], np.float32) / std
    chans = [canvas[:, :, order[k]] * a[k] + b[k] for k in range(3)]
    out = np.stack(chans, 0 if cfg["layout"] == "NCHW" else -1)
    return out[None].astype(np.float32)


NORMS = {"imagenet": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),  # per channel: one plane at a time
         "scale-only": ([0, 0, 0], [1, 1, 1]),  # YOLO's 1/255: one pass over interleaved pixels
         "uniform-shift": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])}


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("color", ["RGB", "BGR"])
@pytest.mark.parametrize("resize", ["letterbox", "stretch"])
@pytest.mark.parametrize("norm", [*NORMS, "uint8"])
def test_input_is_bit_identical_to_the_plain_algorithm(layout: str, color: str, resize: str, norm: str) -> None:
    h, w = 96, 160
    dtype = "uint8" if norm == "uint8" else "float32"
    mean, std = NORMS.get(norm, NORMS["scale-only"])
    cfg = {"layout": layout, "color": color, "resize": resize, "scale": 1 / 255, "pad_value": 114,
           "mean": mean, "std": std}
    shape = (1, 3, h, w) if layout == "NCHW" else (1, h, w, 3)
    pre = Preprocessor(TensorSpec("x", shape, dtype), cfg, buffers=3)
    rng = np.random.default_rng(0)
    # frames at the model's width (letterbox: no resize, only padding), larger, then the first size
    # again: the padding written once per buffer must survive buffer rotation and a size change
    sizes = [(90, 160)] * 4 + [(240, 320)] * 4 + [(90, 160)] * 2 + [(96, 160)] * 2
    for src_h, src_w in sizes:
        image = rng.integers(0, 256, (src_h, src_w, 3), dtype=np.uint8)
        got, _ = pre(image)
        want = _reference(image, cfg, h, w, dtype)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
