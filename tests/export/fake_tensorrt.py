"""A stand-in for the ``tensorrt`` module: the build calls of TensorRT 10/11's Python API, recorded.

It parses nothing: the "network" gets the ONNX graph's input names (read with
``onnx``), the "engine" is a few bytes naming the graph it came from, and the
timing cache grows by one entry per build. Enough to check what a build asks
of TensorRT (flags, workspace, shapes, timing cache), not what TensorRT does.
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any

import onnx

MISMATCHED = b"timing cache of another GPU"


class FakeTensorRT:
    """Module-like: ``trt.Builder``, ``trt.OnnxParser``, ``trt.Logger``, the enums, ``__version__``."""

    def __init__(self, version: str = "10.3.0") -> None:
        self.__version__ = version
        self.calls: list[tuple[str, Any]] = []
        self.Logger = FakeLogger
        self.NetworkDefinitionCreationFlag = SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
        self.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
        self.BuilderFlag = SimpleNamespace(FP16="FP16", INT8="INT8", TF32="TF32")  # 10.x has them: unused

    def Builder(self, logger: Any) -> FakeBuilder:  # noqa: N802 (TensorRT's names)
        return FakeBuilder(self)

    def OnnxParser(self, network: FakeNetwork, logger: Any) -> FakeParser:  # noqa: N802
        return FakeParser(self, network)

    def called(self, name: str) -> list[Any]:
        return [args for n, args in self.calls if n == name]


class FakeLogger:
    WARNING = 2

    def __init__(self, severity: int) -> None:
        self.severity = severity


class FakeNetwork:
    def __init__(self) -> None:
        self.inputs: list[SimpleNamespace] = []
        self.source = ""

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, i: int) -> SimpleNamespace:
        return self.inputs[i]


class FakeParser:
    num_errors = 0

    def __init__(self, trt: FakeTensorRT, network: FakeNetwork) -> None:
        self.trt, self.network = trt, network

    def parse(self, data: bytes) -> bool:
        model = onnx.load_from_string(data)
        init = {i.name for i in model.graph.initializer}
        self.network.inputs = [SimpleNamespace(name=v.name) for v in model.graph.input if v.name not in init]
        self.network.source = hashlib.sha256(data).hexdigest()
        self.trt.calls.append(("parse", self.network.source))
        return True


class FakeCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return self.data


class FakeConfig:
    def __init__(self, trt: FakeTensorRT) -> None:
        self.trt = trt
        self.cache: FakeCache | None = None

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        self.trt.calls.append(("set_memory_pool_limit", (pool, size)))

    def set_flag(self, flag: str) -> None:
        self.trt.calls.append(("set_flag", flag))

    def create_timing_cache(self, data: bytes) -> FakeCache:
        self.trt.calls.append(("create_timing_cache", bytes(data)))
        return FakeCache(bytes(data))

    def set_timing_cache(self, cache: FakeCache, ignore_mismatch: bool) -> bool:
        self.trt.calls.append(("set_timing_cache", (cache.data, ignore_mismatch)))
        if cache.data == MISMATCHED and not ignore_mismatch:
            return False
        self.cache = cache
        return True

    def add_optimization_profile(self, profile: FakeProfile) -> None:
        self.trt.calls.append(("profile", profile.shapes))


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[Any, Any, Any]] = {}

    def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class FakeBuilder:
    def __init__(self, trt: FakeTensorRT) -> None:
        self.trt = trt

    def create_network(self, flags: int) -> FakeNetwork:
        self.trt.calls.append(("create_network", flags))
        return FakeNetwork()

    def create_builder_config(self) -> FakeConfig:
        return FakeConfig(self.trt)

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile()

    def build_serialized_network(self, network: FakeNetwork, config: FakeConfig) -> bytes:
        self.trt.calls.append(("build", network.source))
        if config.cache is not None:
            config.cache.data += b"[timing]"
        return f"engine of {network.source}".encode()
