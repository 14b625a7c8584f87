"""Image -> input tensor, shared by every backend.

Resize (stretch or letterbox), colour order, ``(x * scale - mean) / std`` and
layout (NCHW / NHWC), written into buffers allocated once per source size.
The ``Transform`` it returns maps model pixels back to source pixels.

A float input is made without a full-size intermediate: for NCHW the image
region is split into three reused uint8 planes (``cv2.split``) and each plane
is scaled, ``x * a + b``, straight into its output plane, all contiguous passes
(NHWC: ``x * a + b`` over the interleaved pixels, then a reordering copy). A
letterbox's padding is the same for every frame, so it is written into each
output buffer once, when a source size is first seen, and frames write only
the image region (uint8 inputs too); a frame already at the model's size is
not copied first. The tensors are bit-identical to the plain algorithm's
(``tests/runtime/test_preprocess.py``). On a 360x640 frame into the
YOLOv8n-class 384x640 input this step went from 0.66 to 0.26 ms on one core
here, against per-channel strided passes over a full padded canvas
(``benchmarks/profile_cpu.py``, ``host_steps_ms.yolov8n.preprocess`` in
``benchmarks/results/cpu_profile.json``, before and after).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgepilot.runtime.bundle import TensorSpec
from edgepilot.runtime.errors import BundleError


@dataclass(frozen=True, slots=True)
class Transform:
    """source_xy = (model_xy - pad) / scale, per axis."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def boxes_to_source(self, boxes: np.ndarray, src_w: int, src_h: int) -> np.ndarray:
        """(N, 4) x1,y1,x2,y2 model pixels -> source pixels, clipped to the image. In place."""
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.pad_x) / self.scale_x
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.pad_y) / self.scale_y
        np.clip(boxes[:, [0, 2]], 0, src_w, out=boxes[:, [0, 2]])
        np.clip(boxes[:, [1, 3]], 0, src_h, out=boxes[:, [1, 3]])
        return boxes


class Preprocessor:
    """Callable: BGR uint8 HxWx3 image -> (tensor shaped like ``spec``, Transform).

    The returned tensor is one of ``buffers`` output buffers used in turn: it stays
    valid for the next ``buffers - 1`` calls, so a pipeline can preprocess frame
    N + 1 while frame N is still being inferred (3 buffers suffice with a
    one-slot queue between the two stages). Copy it if you keep it longer.
    """

    def __init__(self, spec: TensorSpec, cfg: dict[str, Any], hw: tuple[int, int] | None = None,
                 buffers: int = 1) -> None:
        self.layout = str(cfg["layout"]).upper()
        if self.layout not in ("NCHW", "NHWC"):
            raise BundleError(f"preprocess.layout {self.layout!r} must be NCHW or NHWC")
        if len(spec.shape) != 4:
            raise BundleError(f"image input {spec.name!r} must be 4-D, got shape {list(spec.shape)}")
        if self.layout == "NCHW":
            h, w = spec.shape[2], spec.shape[3]
        else:
            h, w = spec.shape[1], spec.shape[2]
        if hw is not None:
            if (h is not None and h != hw[0]) or (w is not None and w != hw[1]):
                raise BundleError(
                    f"input {spec.name!r} is fixed at {h}x{w}; it cannot run at {hw[0]}x{hw[1]} "
                    "(re-export with dynamic height/width)"
                )
            h, w = hw
        if h is None or w is None:
            raise BundleError(f"input {spec.name!r} has dynamic height/width: pass a shape (--shapes HxW)")
        self.h, self.w = int(h), int(w)
        self.letterbox = cfg.get("resize", "stretch") == "letterbox"
        self.pad_value = int(cfg.get("pad_value", 114))
        self.dtype = np.dtype(spec.dtype)
        rgb = str(cfg.get("color", "RGB")).upper() == "RGB"
        # model channel k reads source (BGR) channel order[k]
        self.order = (2, 1, 0) if rgb else (0, 1, 2)
        std = np.asarray(cfg["std"], np.float32)
        self.a = float(cfg["scale"]) / std
        self.b = -np.asarray(cfg["mean"], np.float32) / std
        self._uniform = bool(np.all(self.a == self.a[0]) and np.all(self.b == self.b[0]))
        shape = (1, 3, self.h, self.w) if self.layout == "NCHW" else (1, self.h, self.w, 3)
        self._outs = [np.empty(shape, self.dtype) for _ in range(max(1, buffers))]
        self._next = 0
        self.out = self._outs[0]
        self.canvas = np.empty((self.h, self.w, 3), np.uint8)
        self._src_hw: tuple[int, int] | None = None
        self._transform = Transform(1.0, 1.0, 0.0, 0.0)
        self._inner = (self.h, self.w, 0, 0)  # image region of the model input: nh, nw, top, left
        self._float: np.ndarray | None = None
        self._split: list[np.ndarray] = []

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.h, self.w

    def _plan(self, src_h: int, src_w: int) -> None:
        if not self.letterbox:
            self._transform = Transform(self.w / src_w, self.h / src_h, 0.0, 0.0)
        else:
            r = min(self.h / src_h, self.w / src_w)
            nw, nh = round(src_w * r), round(src_h * r)
            px, py = (self.w - nw) // 2, (self.h - nh) // 2
            self._transform = Transform(r, r, float(px), float(py))
            self._inner = (nh, nw, py, px)
            self._scratch = np.empty((nh, nw, 3), np.uint8)
            for out in self._outs:  # the padding, once per output buffer: frames write the rest
                self._fill_padding(out)
        self._src_hw = (src_h, src_w)

    def _resize_inner(self, image: np.ndarray) -> np.ndarray:
        """The image region of the model input, uint8 BGR (the frame itself when no resize is needed)."""
        src_h, src_w = image.shape[:2]
        if self._src_hw != (src_h, src_w):
            self._plan(src_h, src_w)
        nh, nw = self._inner[:2]
        if (src_h, src_w) == (nh, nw):
            return image
        dst = self._scratch if self.letterbox else self.canvas
        return cv2.resize(image, (nw, nh), dst=dst, interpolation=cv2.INTER_LINEAR)

    def _region(self, out: np.ndarray) -> np.ndarray:
        """The image region of output tensor ``out`` ([3, nh, nw] for NCHW, [nh, nw, 3] for NHWC): a view."""
        nh, nw, py, px = self._inner
        return out[0, :, py:py + nh, px:px + nw] if self.layout == "NCHW" else out[0, py:py + nh, px:px + nw]

    def _model_order(self, image: np.ndarray) -> np.ndarray:
        """``image``'s channels in the model's order and layout: a view, no copy."""
        chans = image[:, :, ::-1] if self.order == (2, 1, 0) else image
        return chans.transpose(2, 0, 1) if self.layout == "NCHW" else chans

    def _planes(self, hw: tuple[int, int]) -> list[np.ndarray]:
        """Three reused uint8 planes of size ``hw`` for cv2.split to write into."""
        if not self._split or self._split[0].shape != hw:
            self._split = [np.empty(hw, np.uint8) for _ in range(3)]
        return self._split

    def _scratch_float(self, hw: tuple[int, int]) -> np.ndarray:
        if self._float is None or self._float.shape[:2] != hw:
            self._float = np.empty((*hw, 3), np.float32)
        return self._float

    def _fill_padding(self, out: np.ndarray) -> None:
        """Every pixel of ``out`` at the pad colour, normalised for a float input (frames then write only
        the image region)."""
        for k in range(3):
            value = self.pad_value if self.dtype == np.uint8 else np.float32(self.pad_value) * self.a[k] + self.b[k]
            (out[0, k] if self.layout == "NCHW" else out[0, :, :, k]).fill(value)

    def _normalise_into(self, region: np.ndarray, image: np.ndarray) -> None:
        """``image`` (uint8 BGR, the region's size) into the output ``region`` as float.

        NCHW: split into uint8 planes, then ``x * a + b`` from each plane straight into its output
        plane (contiguous passes). NHWC: with one a and b for every channel, ``x * a + b`` over the
        interleaved pixels then a reordering copy; else a cast-and-reorder copy, then per channel."""
        if self.layout == "NCHW":
            planes = cv2.split(np.ascontiguousarray(image), self._planes(image.shape[:2]))
            for k, src in enumerate(self.order):
                np.multiply(planes[src], self.a[k], out=region[k], casting="unsafe")
                if self.b[k] != 0:
                    region[k] += self.b[k]
            return
        if self._uniform:
            values = self._scratch_float(image.shape[:2])
            np.multiply(image, self.a[0], out=values, casting="unsafe")
            if self.b[0] != 0:
                np.add(values, self.b[0], out=values)
            np.copyto(region, self._model_order(values))
            return
        np.copyto(region, self._model_order(image), casting="unsafe")
        for k in range(3):
            plane = region[:, :, k]
            np.multiply(plane, self.a[k], out=plane)
            plane += self.b[k]

    def _copy_into(self, region: np.ndarray, image: np.ndarray) -> None:
        """``image`` (uint8 BGR) into the uint8 output ``region`` in the model's channel order and layout.

        NCHW with contiguous planes (the region spans whole rows): one ``cv2.split`` writes each
        channel straight into its plane instead of a strided copy (``preprocess=graph`` on the ort
        backend hands this tensor over; ``benchmarks/profile_cpu.py``'s ``preprocess_uint8``)."""
        if self.layout == "NCHW" and all(region[k].flags.c_contiguous for k in range(3)):
            planes = [region[self.order.index(c)] for c in range(3)]  # source channel c -> its model plane
            written = cv2.split(np.ascontiguousarray(image), planes)
            if all(w is p for w, p in zip(written, planes, strict=True)):
                return
        np.copyto(region, self._model_order(image))

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise BundleError(f"expected an HxWx3 uint8 BGR image, got {image.dtype} {image.shape}")
        self.out = self._outs[self._next]
        self._next = (self._next + 1) % len(self._outs)
        inner, region = self._resize_inner(image), self._region(self.out)
        if self.dtype == np.uint8:
            self._copy_into(region, inner)  # pixels pass through
        else:
            self._normalise_into(region, inner)
        return self.out, self._transform
