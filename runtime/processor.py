"""Frame -> Output: the per-frame call, declared once.

A :class:`Processor` does one frame in two halves so a threaded loop can run
them in two threads (preprocessing of the next frame overlaps inference of
this one): ``prepare`` (host or device preprocessing, stamps ``preprocess``)
and ``complete`` (stamps ``handoff``, runs the engine, decodes, stamps
``infer`` and ``postprocess``). Calling the processor does both, which is what
a synchronous caller (one frame per simulator tick) uses. ``run``'s threads and
``drive``'s tick use the same call and therefore the same stamps.

Engines hand out their processor through ``Engine.make_processor``; the
default is :class:`HostProcessor` here (host pre/post-processing around
``infer``), and a device-resident engine returns its own implementation of
the same protocol.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edgepilot.runtime.bundle import Bundle, TensorSpec
from edgepilot.runtime.errors import EngineError
from edgepilot.runtime.frame import HANDOFF, INFER, POSTPROCESS, PREPROCESS, Frame, Output
from edgepilot.runtime.postprocess import make_decoder
from edgepilot.runtime.preprocess import Preprocessor, Transform

# Prepared inputs that may be alive at once in the loop: one being written,
# one waiting in the one-slot queue, one being inferred. A processor must not
# reuse a prepared input's buffers before this many later ``prepare`` calls.
PIPELINE_BUFFERS = 3


@dataclass(frozen=True, slots=True)
class Prepared:
    """A frame with its prepared input, between ``prepare`` and ``complete``.

    ``tensor`` is whatever the processor's ``complete`` consumes: a host array
    for :class:`HostProcessor`, a device tensor for a device-resident one.
    """

    frame: Frame
    tensor: Any
    transform: Transform | None = None


@runtime_checkable
class Processor(Protocol):
    """The per-frame call: ``complete(prepare(frame))`` is ``processor(frame)``."""

    def prepare(self, frame: Frame) -> Prepared:
        """Preprocess ``frame`` (stamps ``preprocess``); may run in another thread than ``complete``."""
        ...

    def complete(self, prepared: Prepared) -> Output:
        """Infer and decode (stamps ``handoff``, ``infer``, ``postprocess``)."""
        ...

    def __call__(self, frame: Frame) -> Output:
        """Both halves in this thread."""
        ...


class Inference(Protocol):
    """What :class:`HostProcessor` needs of an engine: its input size and ``infer``."""

    @property
    def hw(self) -> tuple[int, int] | None: ...

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class HostProcessor:
    """Host pre/post-processing around ``engine.infer``; buffers allocated once."""

    def __init__(self, bundle: Bundle, engine: Inference, hw: tuple[int, int] | None = None, *,
                 input_dtype: str | None = None) -> None:
        """``input_dtype="uint8"``: hand ``engine`` the frame's pixels resized and in the model's channel
        order and layout but not normalised (an engine that normalises in its graph)."""
        self.engine = engine
        spec = bundle.inputs[0]
        self.spec = spec if input_dtype is None else TensorSpec(spec.name, spec.shape, input_dtype)
        self.pre = Preprocessor(self.spec, bundle.preprocess, hw or engine.hw, buffers=PIPELINE_BUFFERS)
        self.decode = make_decoder(bundle)

    def prepare(self, frame: Frame) -> Prepared:
        tensor, transform = self.pre(frame.image)
        frame.timeline.stamp(PREPROCESS)
        return Prepared(frame, tensor, transform)

    def infer(self, prepared: Prepared) -> dict[str, np.ndarray]:
        """The engine's outputs for a prepared frame (a processor that starts the run in ``prepare``
        overrides this to wait for it)."""
        return self.engine.infer({self.spec.name: prepared.tensor})

    def complete(self, prepared: Prepared) -> Output:
        frame = prepared.frame
        frame.timeline.stamp(HANDOFF)
        outputs = self.infer(prepared)
        frame.timeline.stamp(INFER)
        assert prepared.transform is not None  # prepare always sets it
        result = self.decode(outputs, prepared.transform, frame.image.shape[:2])
        frame.timeline.stamp(POSTPROCESS)
        return result

    def __call__(self, frame: Frame) -> Output:
        return self.complete(self.prepare(frame))


def dry_run(processor: Processor, image_hw: tuple[int, int] = (480, 640)) -> None:
    """Push one black frame through ``processor`` before frames flow.

    A decoder that does not fit what the engine really returns (a missing
    output, a wrong rank or class count) fails here, at load, as bad input
    (BundleError, exit 2) instead of on the first camera frame. Run-time
    failures (EngineError: NaN outputs, a device error) are left to the run,
    which reports them with its latency report.
    """
    with contextlib.suppress(EngineError):
        processor(Frame.captured(-1, np.zeros((*image_hw, 3), np.uint8)))
