"""onnxruntime backend: CPU, CUDA and TensorRT execution providers.

``provider`` option: ``auto`` (default) prefers TensorRT, then CUDA, then CPU
among the providers this onnxruntime build offers (CPU only when the device is
cpu); ``cpu``, ``cuda`` or ``tensorrt`` ask for one explicitly. ``describe()``
reports the provider that was actually chosen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from runtime.bundle import Bundle
from runtime.engines.base import Engine
from runtime.errors import BundleError, DeviceError, EngineError, require

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def choose_providers(available: list[str], device_kind: str, wanted: str = "auto") -> list[str]:
    """Ordered provider list for a session; raises DeviceError if the request cannot be met."""
    if wanted != "auto":
        if wanted not in PROVIDERS:
            raise EngineError(f"unknown ort provider {wanted!r}: use auto, {', '.join(PROVIDERS)}", exit_code=2)
        name = PROVIDERS[wanted]
        if name not in available:
            raise DeviceError(
                f"onnxruntime here has no {name} (it has {', '.join(available)}); "
                "install 'edgepilot[gpu]' on a CUDA machine or use --device cpu")
        return [name] if name == PROVIDERS["cpu"] else [name, PROVIDERS["cpu"]]
    if device_kind == "cpu":
        return [PROVIDERS["cpu"]]
    gpu = [PROVIDERS[k] for k in ("tensorrt", "cuda") if PROVIDERS[k] in available]
    if not gpu:
        raise DeviceError(
            f"onnxruntime here has no GPU provider (it has {', '.join(available)}); "
            "install 'edgepilot[gpu]' or use --device cpu")
    return [*gpu, PROVIDERS["cpu"]]


class OrtEngine(Engine):
    backend = "ort"
    devices = ("cpu", "cuda")
    precisions = ("fp32", "fp16", "int8")

    def __init__(self, bundle: Bundle, precision: str = "fp32", device: str = "cpu",
                 hw: tuple[int, int] | None = None, **options: Any) -> None:
        super().__init__(bundle, precision, device, hw, **options)
        ort = require("onnxruntime", "onnx", "the ort backend")
        self._ort: Any = ort
        providers = choose_providers(ort.get_available_providers(), self.device.kind,
                                     str(options.get("provider", "auto")))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = options.get("threads") or int(os.environ.get("EDGEPILOT_ORT_THREADS", "0"))
        if threads:
            opts.intra_op_num_threads = int(threads)
        path = self._model_path()
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts,
                                                providers=self._provider_options(providers))
        except Exception as exc:  # ort raises its own exception types per failure
            msg = str(exc).splitlines()[0][:200]
            if "Protobuf parsing failed" in msg or "INVALID_PROTOBUF" in msg or "Load model" in msg:
                raise BundleError(f"{path} is not a valid ONNX model ({msg}); re-export the bundle") from exc
            raise EngineError(f"onnxruntime could not load {path}: {msg}") from exc
        self._out_names = [o.name for o in self.session.get_outputs()]
        self._check_io()

    def _model_path(self) -> Any:
        return self.bundle.file("int8" if self.precision == "int8" else "fp32")

    def _provider_options(self, providers: list[str]) -> list[Any]:
        out: list[Any] = []
        for name in providers:
            if name == PROVIDERS["cuda"]:
                out.append((name, {"device_id": self.device.index}))
            elif name == PROVIDERS["tensorrt"]:
                cache = self.bundle.path / "engines" / "ort-trt"
                out.append((name, {"device_id": self.device.index, "trt_fp16_enable": self.precision == "fp16",
                                   "trt_int8_enable": self.precision == "int8",
                                   "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}))
            else:
                out.append(name)
        return out

    def _check_io(self) -> None:
        graph = {i.name: i.shape for i in self.session.get_inputs()}
        for name, shape in self.input_shapes().items():
            if name not in graph:
                raise BundleError(f"bundle input {name!r} is not an input of the model (it has {sorted(graph)})")
            fixed = graph[name]
            if len(fixed) != len(shape) or any(isinstance(a, int) and a != b for a, b in zip(fixed, shape, strict=True)):
                raise BundleError(f"input {name!r}: the model expects {fixed}, the bundle/shape gives {list(shape)}")

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outs = self.session.run(self._out_names, dict(feeds))
        except Exception as exc:
            raise EngineError(f"onnxruntime failed: {str(exc).splitlines()[0][:200]}",
                              exit_code=2 if "dimension" in str(exc).lower() else 1) from exc
        return dict(zip(self._out_names, outs, strict=True))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "provider": self.session.get_providers()[0],
                "providers": self.session.get_providers(), "onnxruntime": self._ort.__version__}

    def close(self) -> None:
        self.__dict__.pop("session", None)
