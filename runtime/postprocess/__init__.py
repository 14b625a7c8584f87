"""Raw engine outputs -> decoded results (SegMap, Detections, PolicyAction).

``make_decoder(bundle)`` picks the decoder named by ``meta.json``'s
``decoder.type``; each decoder is a callable ``(outputs, transform, src_hw) -> Output``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.errors import BundleError, EngineError
from edgepilot.runtime.frame import Output
from edgepilot.runtime.preprocess import Transform

Decoder = Callable[[Mapping[str, np.ndarray], Transform, tuple[int, int]], Output]


def make_decoder(bundle: Bundle) -> Decoder:
    """The decoder for a bundle's task and ``decoder.type``."""
    from edgepilot.runtime.postprocess import detection, policy, segmentation

    kind = bundle.decoder["type"]
    table: dict[str, Callable[[Bundle], Decoder]] = {
        "logits": segmentation.SegmentationDecoder,
        "class_ids": segmentation.SegmentationDecoder,
        "centernet": detection.CenterNetDecoder,
        "yolo": detection.YoloDecoder,
        "action": policy.ActionDecoder,
    }
    return table[kind](bundle)


def check_finite(name: str, value: np.ndarray) -> None:
    """Raise EngineError when a float output holds NaN or inf (a broken engine or model)."""
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise EngineError(
            f"engine output {name!r} contains NaN/inf values; the model or engine is broken "
            "(try --precision fp32 or re-export the bundle)"
        )


def output(outputs: Mapping[str, np.ndarray], name: str | None) -> np.ndarray:
    """The named output, or the only one when ``name`` is None."""
    if name is None:
        if len(outputs) != 1:
            raise BundleError(f"decoder needs an output name; engine returned {sorted(outputs)}")
        return next(iter(outputs.values()))
    if name not in outputs:
        raise BundleError(f"the model returned no output {name!r} (it returned {sorted(outputs)})")
    return outputs[name]
