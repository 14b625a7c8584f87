"""torch backend: runs the bundle's ``torch.export`` program (``model.pt2``).

``torch.export.load`` unpickles parts of the program: load ``model.pt2`` only
from bundles you trust (the ONNX-based backends execute no code from a bundle).

Devices: ``cpu``, ``cuda[:N]``. Precisions: ``fp32`` everywhere, ``fp16`` on
CUDA only — on CPU it is refused rather than run, because half-precision
convolutions on CPU are slow or unimplemented and would not measure anything
a deployment uses. Options (``TorchEngine.OPTIONS``):

- ``cuda_graph`` (CUDA only): capture the forward pass once into a
  ``torch.cuda.CUDAGraph`` with static input/output tensors and replay it per
  call; input shapes must then be concrete (pass ``hw`` for dynamic bundles).
- ``threads``: CPU intra-op threads (``torch.set_num_threads``), 1 to 4 x the
  machine's cores (at most 256). torch keeps this setting per process, so it
  applies to every torch engine in it.

``make_processor`` supplies a device-resident segmentation path on CUDA (see
``torch_processor``); other tasks fall back to the host processor.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.engines.base import Engine, check_feeds
from edgepilot.runtime.engines.options import Option, threads_option
from edgepilot.runtime.errors import BundleError, DeviceError, EngineError, require
from edgepilot.runtime.processor import Processor

_FLOAT = ("float32", "float16")


def program_path(bundle: Bundle) -> Path:
    """The bundle's ``model.pt2`` (``files.torch`` in meta.json); BundleError saying how to make one."""
    path = bundle.path_of("torch")
    name = path.name
    if not path.is_file():
        raise BundleError(
            f"bundle {bundle.path} has no torch program {name}: the torch backend needs one; "
            "export the bundle with export.torch_export.export_bundle or use --backend ort")
    return path


def _load_module(torch: Any, path: Path) -> Any:
    try:
        return torch.export.load(str(path)).module()
    except Exception as exc:  # zip/pickle/version errors come in many classes
        raise BundleError(f"{path} is not a loadable torch.export program "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); re-export it") from exc


def _check_cuda(torch: Any, index: int) -> None:
    if not torch.cuda.is_available():
        raise DeviceError("torch here has no CUDA (CPU-only build or no GPU); use --device cpu")
    if index >= torch.cuda.device_count():
        raise DeviceError(f"cuda:{index} does not exist (this machine has {torch.cuda.device_count()} GPU(s))")


class TorchEngine(Engine):
    backend = "torch"
    devices = ("cpu", "cuda")
    precisions = ("fp32", "fp16")
    OPTIONS = (
        threads_option("CPU intra-op threads, for every torch engine in the process", "torch's"),
        Option("cuda_graph", "bool", "capture the forward pass once into a CUDA graph and replay it; "
               "cuda devices only", default=False),
    )

    def __init__(self, bundle: Bundle, precision: str = "fp32", device: str = "cpu",
                 hw: tuple[int, int] | None = None, **options: Any) -> None:
        super().__init__(bundle, precision, device, hw, **options)
        if self.options["cuda_graph"] and self.device.kind != "cuda":
            raise DeviceError("cuda_graph needs --device cuda")
        torch: Any = require("torch", "torch", "the torch backend")
        self._torch = torch
        if self.options["threads"] is not None:
            torch.set_num_threads(self.options["threads"])
        if self.device.kind == "cuda":
            _check_cuda(torch, self.device.index)
        elif precision == "fp16":
            raise EngineError("the torch backend runs fp16 on CUDA only; use --precision fp32 on cpu "
                              "(or the ort backend, which converts the graph)", exit_code=2)
        self.dev = torch.device(str(self.device))
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        module = _load_module(torch, program_path(bundle)).to(self.dev)
        self.module = module.half() if precision == "fp16" else module
        self._expected = self._expected_inputs()
        self._graph: Any = None
        if self.options["cuda_graph"]:
            self._capture()

    def _expected_inputs(self) -> dict[str, tuple[tuple[int | None, ...], str]]:
        try:
            shapes: Mapping[str, tuple[int | None, ...]] = self.input_shapes()
        except EngineError:  # dynamic dims and no hw: any size the program accepts
            shapes = {s.name: s.shape for s in self.inputs}
        return {s.name: (tuple(shapes[s.name]), s.dtype) for s in self.inputs}

    def _to_device(self, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        out = []
        for spec in self.inputs:
            t = self._torch.from_numpy(np.ascontiguousarray(feeds[spec.name])).to(self.dev)
            out.append(t.to(self.dtype) if spec.dtype in _FLOAT else t)
        return out

    def run_device(self, tensors: list[Any]) -> list[Any]:
        """Device tensors in (bundle input order) -> device tensors out (bundle output order).

        With a captured CUDA graph the returned tensors are its static outputs,
        overwritten by the next call.
        """
        if self._graph is not None:
            for static, t in zip(self._static_in, tensors, strict=True):
                static.copy_(t)
            self._graph.replay()
            return list(self._static_out)
        with self._torch.inference_mode():
            outs = self.module(*tensors)
        return list(outs) if isinstance(outs, (tuple, list)) else [outs]

    def _capture(self) -> None:
        # Capture needs allocations settled: warm up on a side stream first, as
        # the CUDA-graph docs prescribe, then record one forward into the graph.
        torch = self._torch
        self._static_in = self._to_device(self.sample_inputs())
        side = torch.cuda.Stream(device=self.dev)
        side.wait_stream(torch.cuda.current_stream(self.dev))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):
                self.module(*self._static_in)
        torch.cuda.current_stream(self.dev).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.inference_mode():
            outs = self.module(*self._static_in)
        self._static_out = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        self._graph = graph

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(self._expected, feeds)
        outs = self.run_device(self._to_device(feeds))
        if len(outs) != len(self.outputs):
            raise EngineError(f"the torch program returned {len(outs)} outputs, meta.json declares "
                              f"{len(self.outputs)}; re-export the bundle")
        result = {}
        for spec, t in zip(self.outputs, outs, strict=True):
            # fp16 runs hand back the dtype meta.json promises (float32), like ORT's keep_io_types
            result[spec.name] = t.to(getattr(self._torch, spec.dtype)).cpu().numpy()
        return result

    def synchronize(self) -> None:
        if self.device.kind == "cuda":
            self._torch.cuda.synchronize(self.dev)

    def make_processor(self) -> Processor:
        """A device-resident segmentation processor on CUDA; the host processor otherwise."""
        if self.device.kind == "cuda":
            from edgepilot.runtime.engines.torch_processor import DeviceSegProcessor, supports

            if supports(self.bundle):
                return DeviceSegProcessor(self._torch, self, self.bundle, self.hw)
        return super().make_processor()

    def describe(self) -> dict[str, Any]:
        info = {**super().describe(), "torch": self._torch.__version__, "cuda_graph": self._graph is not None}
        if self.device.kind == "cuda":
            info["gpu"] = self._torch.cuda.get_device_name(self.dev)
        return info

    def close(self) -> None:
        for name in ("_graph", "_static_in", "_static_out", "module"):
            self.__dict__.pop(name, None)
