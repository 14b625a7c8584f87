"""Segmentation: logits [1, C, h, w] -> argmax, or class ids [1, h, w] / [1, 1, h, w]."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.errors import BundleError
from edgepilot.runtime.frame import SegMap
from edgepilot.runtime.postprocess import check_finite, output
from edgepilot.runtime.preprocess import Transform


class SegmentationDecoder:
    """Decodes to a SegMap at model resolution (resizing to the source is the sink's job)."""

    def __init__(self, bundle: Bundle) -> None:
        cfg = bundle.decoder
        self.kind = cfg["type"]
        self.name = cfg.get("output", bundle.outputs[0].name)
        self.num_classes = len(bundle.classes)

    def __call__(
        self, outputs: Mapping[str, np.ndarray], transform: Transform, src_hw: tuple[int, int]
    ) -> SegMap:
        raw = output(outputs, self.name)
        if self.kind == "logits":
            check_finite(self.name, raw)
            if raw.ndim != 4:
                raise BundleError(f"logits {self.name!r} must be [1, C, h, w], got {list(raw.shape)}")
            ids = np.argmax(raw[0], axis=0).astype(np.uint8)  # (C, h, w) -> (h, w)
        else:
            # Always a copy: engines may reuse their output buffer for the next frame
            # while the output thread still reads this SegMap (h x w bytes, cheap).
            ids = np.array(raw.reshape(raw.shape[-2:]), dtype=np.uint8, copy=True)
        return SegMap(ids, self.num_classes)
