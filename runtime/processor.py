"""Frame -> Output: preprocess, infer, decode, stamping the frame's timeline.

This is the per-frame path the loop and ``drive`` call. An engine that keeps
the frame on its device (torch on CUDA) can supply its own processor through
``Engine.make_processor``; the default here runs pre/post-processing on the host.
"""

from __future__ import annotations

from runtime.bundle import Bundle
from runtime.engines.base import Engine
from runtime.frame import INFER, POSTPROCESS, PREPROCESS, Frame, Output
from runtime.postprocess import make_decoder
from runtime.preprocess import Preprocessor


class HostProcessor:
    """Host pre/post-processing around ``engine.infer``; buffers allocated once."""

    def __init__(self, bundle: Bundle, engine: Engine, hw: tuple[int, int] | None = None) -> None:
        self.engine = engine
        self.spec = bundle.inputs[0]
        self.pre = Preprocessor(self.spec, bundle.preprocess, hw or engine.hw)
        self.decode = make_decoder(bundle)

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.pre.input_hw

    def __call__(self, frame: Frame) -> Output:
        tensor, transform = self.pre(frame.image)
        frame.timeline.stamp(PREPROCESS)
        outputs = self.engine.infer({self.spec.name: tensor})
        frame.timeline.stamp(INFER)
        result = self.decode(outputs, transform, frame.image.shape[:2])
        frame.timeline.stamp(POSTPROCESS)
        return result


def make_processor(bundle: Bundle, engine: Engine, hw: tuple[int, int] | None = None) -> HostProcessor:
    """The engine's own processor when it has one (device-resident path), else HostProcessor."""
    custom = getattr(engine, "make_processor", None)
    if custom is not None:
        proc = custom(bundle, hw)
        if proc is not None:
            return proc  # type: ignore[no-any-return]
    return HostProcessor(bundle, engine, hw)
