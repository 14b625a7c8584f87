"""Device-resident segmentation on CUDA for the torch backend: a :class:`Processor`.

``prepare`` (preprocess thread, its own CUDA stream): one host copy of the
uint8 BGR image into a pinned buffer, one asynchronous upload, resize
(bilinear ``interpolate``) and normalisation on the device; it records an
event and returns without waiting. ``complete`` (inference thread): waits for
that event on its own stream, runs the model and argmax on the device and
downloads the uint8 class map (h x w bytes instead of C x h x w floats). So in
the threaded loop the next frame's upload and preprocessing overlap this
frame's inference, as on the host path.

Buffers rotate over ``PIPELINE_BUFFERS`` slots: the loop never holds more
prepared frames than that, and each ``complete`` synchronises before it
returns, so a slot is free again when it comes round.

Only stretch-resized NCHW float-input segmentation bundles qualify
(:func:`supports`); others use the host processor. This path needs a CUDA
GPU and is covered by a ``cuda``-marked test only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.frame import HANDOFF, INFER, POSTPROCESS, PREPROCESS, Frame, SegMap
from edgepilot.runtime.preprocess import Preprocessor
from edgepilot.runtime.processor import PIPELINE_BUFFERS, Prepared


class DeviceModel(Protocol):
    """What the processor needs of the torch engine (declared here so neither imports the other)."""

    dev: Any  # torch.device
    dtype: Any  # torch.dtype of the model's float inputs

    @property
    def hw(self) -> tuple[int, int] | None: ...

    def run_device(self, tensors: list[Any]) -> list[Any]: ...


def supports(bundle: Bundle) -> bool:
    """Whether the device path can serve this bundle (else the host processor does)."""
    pre = bundle.preprocess
    return (bundle.task == "segmentation" and bundle.decoder["type"] in ("logits", "class_ids")
            and len(bundle.inputs) == 1 and bundle.inputs[0].dtype == "float32"
            and str(pre["layout"]).upper() == "NCHW" and pre.get("resize", "stretch") == "stretch")


@dataclass(slots=True)
class _Slot:
    """One frame's upload buffers; reallocated when the source size changes."""

    host: Any  # pinned uint8 [H, W, 3]
    dev: Any  # device uint8 [H, W, 3]
    ready: Any  # torch.cuda.Event recorded after preprocessing


class DeviceSegProcessor:
    """Frame -> SegMap with the frame on the GPU from upload to argmax."""

    def __init__(self, torch: Any, model: DeviceModel, bundle: Bundle, hw: tuple[int, int] | None = None) -> None:
        self.torch, self.model = torch, model
        # Reuse the host preprocessor's validation of sizes and its scale/mean/std maths.
        host = Preprocessor(bundle.inputs[0], bundle.preprocess, hw or model.hw)
        self.h, self.w = host.input_hw
        dev = model.dev
        self.order = list(host.order)
        self.a = torch.tensor(host.a, device=dev).view(1, 3, 1, 1)
        self.b = torch.tensor(host.b, device=dev).view(1, 3, 1, 1)
        self.logits = bundle.decoder["type"] == "logits"
        names = [o.name for o in bundle.outputs]
        self.out_index = names.index(bundle.decoder.get("output", names[0]))
        self.num_classes = len(bundle.classes)
        self.prep_stream = torch.cuda.Stream(device=dev)
        self.host_ids = torch.empty((self.h, self.w), dtype=torch.uint8, pin_memory=True)
        self.done = torch.cuda.Event()
        self._slots: list[_Slot | None] = [None] * PIPELINE_BUFFERS
        self._next = 0

    def _slot(self, shape: tuple[int, ...]) -> _Slot:
        k, self._next = self._next, (self._next + 1) % PIPELINE_BUFFERS
        slot = self._slots[k]
        if slot is None or tuple(slot.host.shape) != shape:
            torch = self.torch
            slot = _Slot(torch.empty(shape, dtype=torch.uint8, pin_memory=True),
                         torch.empty(shape, dtype=torch.uint8, device=self.model.dev), torch.cuda.Event())
            self._slots[k] = slot
        return slot

    def prepare(self, frame: Frame) -> Prepared:
        torch = self.torch
        slot = self._slot(frame.image.shape)
        slot.host.numpy()[...] = frame.image  # pinned memory makes the upload a true async DMA
        with torch.cuda.stream(self.prep_stream), torch.inference_mode():
            slot.dev.copy_(slot.host, non_blocking=True)
            x = slot.dev.permute(2, 0, 1)[self.order].unsqueeze(0).float()  # [1, 3, H, W]
            if x.shape[-2:] != (self.h, self.w):
                x = torch.nn.functional.interpolate(x, size=(self.h, self.w), mode="bilinear",
                                                    align_corners=False)
            x = (x * self.a + self.b).to(self.model.dtype)  # [1, 3, h, w]
            slot.ready.record(self.prep_stream)
        # The device runs asynchronously: this stamp marks enqueueing; the infer
        # stamp includes whatever device-side preprocessing had not finished.
        frame.timeline.stamp(PREPROCESS)
        return Prepared(frame, (x, slot.ready))

    def complete(self, prepared: Prepared) -> SegMap:
        torch = self.torch
        frame = prepared.frame
        x, ready = prepared.tensor
        frame.timeline.stamp(HANDOFF)
        stream = torch.cuda.current_stream(self.model.dev)
        stream.wait_event(ready)
        x.record_stream(stream)  # allocated on the prepare stream, used on this one
        with torch.inference_mode():
            out = self.model.run_device([x])[self.out_index]
            ids = out.argmax(dim=1) if self.logits else out.reshape(1, self.h, self.w)  # [1, h, w]
            self.host_ids.copy_(ids[0].to(torch.uint8), non_blocking=True)
        self.done.record(stream)
        self.done.synchronize()
        frame.timeline.stamp(INFER)
        result = SegMap(self.host_ids.numpy().copy(), self.num_classes)
        frame.timeline.stamp(POSTPROCESS)
        return result

    def __call__(self, frame: Frame) -> SegMap:
        return self.complete(self.prepare(frame))
