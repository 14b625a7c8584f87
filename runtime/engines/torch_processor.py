"""Device-resident segmentation on CUDA for the torch backend.

Per frame: one host copy of the uint8 BGR image into a pinned buffer, one
asynchronous upload, resize (bilinear ``interpolate``) and normalisation on
the device, the model, argmax on the device, and one download of the uint8
class map (h x w bytes instead of C x h x w floats). Only stretch-resized
NCHW float-input segmentation bundles qualify; others use HostProcessor.

This path needs a CUDA GPU and is covered by a ``cuda``-marked test only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.frame import INFER, POSTPROCESS, PREPROCESS, Frame, SegMap
from edgepilot.runtime.preprocess import Preprocessor

if TYPE_CHECKING:
    from edgepilot.runtime.engines.ops_torch import TorchEngine


def supports(bundle: Bundle) -> bool:
    """Whether the device path can serve this bundle (else the host processor does)."""
    pre = bundle.preprocess
    return (bundle.task == "segmentation" and bundle.decoder["type"] in ("logits", "class_ids")
            and len(bundle.inputs) == 1 and bundle.inputs[0].dtype == "float32"
            and str(pre["layout"]).upper() == "NCHW" and pre.get("resize", "stretch") == "stretch")


class DeviceSegProcessor:
    """Frame -> SegMap with the frame on the GPU from upload to argmax."""

    def __init__(self, engine: TorchEngine, bundle: Bundle, hw: tuple[int, int] | None = None) -> None:
        torch: Any = engine._torch
        self.torch, self.engine = torch, engine
        # Reuse the host preprocessor's validation of sizes and its scale/mean/std maths.
        host = Preprocessor(bundle.inputs[0], bundle.preprocess, hw or engine.hw)
        self.h, self.w = host.input_hw
        dev = engine.dev
        self.order = list(host.order)
        self.a = torch.tensor(host.a, device=dev).view(1, 3, 1, 1)
        self.b = torch.tensor(host.b, device=dev).view(1, 3, 1, 1)
        self.logits = bundle.decoder["type"] == "logits"
        names = [o.name for o in bundle.outputs]
        self.out_index = names.index(bundle.decoder.get("output", names[0]))
        self.num_classes = len(bundle.classes)
        self.host_ids = torch.empty((self.h, self.w), dtype=torch.uint8, pin_memory=True)
        self.done = torch.cuda.Event()
        self._src_shape: tuple[int, ...] | None = None

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.h, self.w

    def _buffers(self, shape: tuple[int, ...]) -> None:
        torch = self.torch
        self.host_img = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        self.dev_img = torch.empty(shape, dtype=torch.uint8, device=self.engine.dev)
        self._src_shape = shape

    def __call__(self, frame: Frame) -> SegMap:
        torch = self.torch
        if frame.image.shape != self._src_shape:
            self._buffers(frame.image.shape)
        self.host_img.numpy()[...] = frame.image  # pinned memory makes the upload a true async DMA
        self.dev_img.copy_(self.host_img, non_blocking=True)
        with torch.inference_mode():
            x = self.dev_img.permute(2, 0, 1)[self.order].unsqueeze(0).float()  # [1, 3, H, W]
            if x.shape[-2:] != (self.h, self.w):
                x = torch.nn.functional.interpolate(x, size=(self.h, self.w), mode="bilinear",
                                                    align_corners=False)
            x = (x * self.a + self.b).to(self.engine.dtype)  # [1, 3, h, w]
            # The device runs asynchronously: this stamp marks enqueueing, and the
            # infer stamp below includes the device-side preprocessing.
            frame.timeline.stamp(PREPROCESS)
            out = self.engine.run_device([x])[self.out_index]
            ids = out.argmax(dim=1) if self.logits else out.reshape(1, self.h, self.w)  # [1, h, w]
            self.host_ids.copy_(ids[0].to(torch.uint8), non_blocking=True)
        self.done.record()
        self.done.synchronize()
        frame.timeline.stamp(INFER)
        result = SegMap(self.host_ids.numpy().copy(), self.num_classes)
        frame.timeline.stamp(POSTPROCESS)
        return result
