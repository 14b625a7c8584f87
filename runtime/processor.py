"""Frame -> Output: preprocess, infer, decode, stamping the frame's timeline.

This is the per-frame path the loop and ``drive`` call. An engine that keeps
the frame on its device (torch on CUDA) can supply its own processor through
``Engine.make_processor``; the default here runs pre/post-processing on the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.engines.base import Engine
from edgepilot.runtime.frame import HANDOFF, INFER, POSTPROCESS, PREPROCESS, Frame, Output
from edgepilot.runtime.postprocess import make_decoder
from edgepilot.runtime.preprocess import Preprocessor, Transform

# Preprocessed inputs that may be alive at once in the loop: one being written,
# one waiting in the one-slot queue, one being inferred.
PIPELINE_BUFFERS = 3


@dataclass(frozen=True, slots=True)
class Prepared:
    """A frame with its preprocessed input, between the preprocess and infer stages."""

    frame: Frame
    tensor: np.ndarray
    transform: Transform


class HostProcessor:
    """Host pre/post-processing around ``engine.infer``; buffers allocated once.

    ``prepare`` and ``complete`` split the work so the loop can run them in two
    threads (preprocessing overlaps inference); calling the processor does both.
    """

    def __init__(self, bundle: Bundle, engine: Engine, hw: tuple[int, int] | None = None) -> None:
        self.engine = engine
        self.spec = bundle.inputs[0]
        self.pre = Preprocessor(self.spec, bundle.preprocess, hw or engine.hw, buffers=PIPELINE_BUFFERS)
        self.decode = make_decoder(bundle)

    def prepare(self, frame: Frame) -> Prepared:
        tensor, transform = self.pre(frame.image)
        frame.timeline.stamp(PREPROCESS)
        return Prepared(frame, tensor, transform)

    def complete(self, prepared: Prepared) -> Output:
        frame = prepared.frame
        frame.timeline.stamp(HANDOFF)
        outputs = self.engine.infer({self.spec.name: prepared.tensor})
        frame.timeline.stamp(INFER)
        result = self.decode(outputs, prepared.transform, frame.image.shape[:2])
        frame.timeline.stamp(POSTPROCESS)
        return result

    def __call__(self, frame: Frame) -> Output:
        return self.complete(self.prepare(frame))


def make_processor(bundle: Bundle, engine: Engine, hw: tuple[int, int] | None = None) -> HostProcessor:
    """The engine's own processor when it has one (device-resident path), else HostProcessor."""
    custom = getattr(engine, "make_processor", None)
    if custom is not None:
        proc = custom(bundle, hw)
        if proc is not None:
            return proc  # type: ignore[no-any-return]
    return HostProcessor(bundle, engine, hw)
