"""TensorRT backend (TensorRT 10 and 11 Python API); CUDA only.

The engine is built from the bundle's ONNX by TensorRT's ONNX parser,
serialised into the bundle's engine cache and deserialised from it; the cache
key is the :mod:`fingerprint` (graph hash, TensorRT version, GPU, precision,
shapes, calibration), so a stale engine is rebuilt or refused, never run.
I/O is bound by tensor name to torch CUDA tensors (torch is the CUDA memory
allocator) and run with ``execute_async_v3`` on a torch CUDA stream.

Precisions: every network is strongly typed and its types come from the
graph itself, with no precision flags and no calibrator (the same build on
TensorRT 10 and 11, which dropped weak typing): ``fp32`` parses
``model.onnx``, ``fp16`` ``model.fp16.onnx`` (onnxruntime's FP16 conversion),
``int8`` the Q/DQ ``model.int8.onnx`` (the parts outside its quantised regions
run in FP32). The build itself is ``runtime.build.tensorrt``, shared with
``edgepilot build`` and ``export --engine``.

Options (``TrtEngine.OPTIONS``): ``rebuild`` (default True; False refuses a
missing/stale engine), ``engine`` (an explicit engine file, which needs its
fingerprint sidecar), ``workspace_mb`` (builder workspace limit, 16 MB to 1 TB,
default 1024).

None of the TensorRT calls can run on a machine without a GPU and TensorRT;
the selection logic around them is unit-tested with a fake module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgepilot.runtime.build.tensorrt import ensure_engine
from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.engines.base import Engine, check_feeds
from edgepilot.runtime.engines.options import Option
from edgepilot.runtime.errors import DeviceError, EngineError, require

_TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32",
                 "INT64": "int64", "BOOL": "bool", "UINT8": "uint8"}


class TrtEngine(Engine):
    backend = "trt"
    devices = ("cuda",)
    precisions = ("fp32", "fp16", "int8")
    OPTIONS = (
        Option("rebuild", "bool", "build the engine when the cache has none for this fingerprint; "
               "false refuses instead", default=True),
        Option("engine", "path", "an engine file to run instead of the bundle's cache; it needs its "
               "fingerprint sidecar .json", default_text="the cache"),
        Option("workspace_mb", "int", "TensorRT builder workspace limit in MB", default=1024,
               min=16, max=1 << 20),
    )

    def __init__(self, bundle: Bundle, precision: str = "fp32", device: str = "cuda",
                 hw: tuple[int, int] | None = None, **options: Any) -> None:
        super().__init__(bundle, precision, device, hw, **options)
        trt: Any = require("tensorrt", "trt", "the trt backend")
        torch: Any = require("torch", "torch", "the trt backend (CUDA buffers)")
        if not torch.cuda.is_available() or self.device.index >= torch.cuda.device_count():
            raise DeviceError(f"{self.device} is not an available CUDA device for TensorRT")
        self._trt, self._torch = trt, torch
        self.dev = torch.device(str(self.device))
        torch.cuda.set_device(self.dev)
        shapes = self.input_shapes()
        self.resolved = ensure_engine(
            trt, bundle, precision, shapes, gpu_name=torch.cuda.get_device_name(self.dev),
            compute_capability="{}.{}".format(*torch.cuda.get_device_capability(self.dev)),
            workspace_mb=self.options["workspace_mb"], rebuild=self.options["rebuild"],
            engine_path=self.options["engine"])
        self.fingerprint = self.resolved.fingerprint
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(self.resolved.path.read_bytes())
        if self.engine is None:
            raise EngineError(f"TensorRT could not deserialise {self.resolved.path}; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream(device=self.dev)
        self._bind(shapes)

    def _bind(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Allocate one device tensor per I/O tensor and bind it by name."""
        trt, torch = self._trt, self._torch
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        for name in names:
            if is_input[name]:
                self.context.set_input_shape(name, shapes[name])
        self.buffers: dict[str, Any] = {}
        for name in names:
            dtype = _TORCH_DTYPES[self.engine.get_tensor_dtype(name).name]
            shape = tuple(self.context.get_tensor_shape(name))
            self.buffers[name] = torch.empty(shape, dtype=getattr(torch, dtype), device=self.dev)
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())
        self._inputs = [n for n in names if is_input[n]]
        self._outputs = [n for n in names if not is_input[n]]
        self._expected = {n: (tuple(self.buffers[n].shape), _TORCH_DTYPES[self.engine.get_tensor_dtype(n).name])
                          for n in self._inputs}
        self._host_out = {n: torch.empty(self.buffers[n].shape, dtype=self.buffers[n].dtype, pin_memory=True)
                          for n in self._outputs}

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(self._expected, feeds)
        torch = self._torch
        with torch.cuda.stream(self.stream):
            for name in self._inputs:
                self.buffers[name].copy_(torch.from_numpy(np.ascontiguousarray(feeds[name])), non_blocking=True)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise EngineError("TensorRT execute_async_v3 failed (see its log above)")
            for name in self._outputs:
                self._host_out[name].copy_(self.buffers[name], non_blocking=True)
        self.stream.synchronize()
        return {name: self._host_out[name].numpy() for name in self._outputs}

    def synchronize(self) -> None:
        self.stream.synchronize()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tensorrt": self._trt.__version__, "engine": str(self.resolved.path),
                "built": self.resolved.built, "gpu": self.fingerprint.gpu_name}

    def close(self) -> None:
        for name in ("context", "engine", "_runtime", "buffers", "_host_out"):
            self.__dict__.pop(name, None)
