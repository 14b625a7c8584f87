"""TensorRT engine builds, callable without constructing an engine.

An exporter (``edgepilot export --engine``), ``edgepilot build`` or a Jetson
build script calls :func:`ensure_engine`: it picks the graph for the precision
(:func:`build_plan`), fingerprints what the engine depends on and returns the
cached engine that matches, building it only when none does
(``runtime.build.cache``). The ``trt`` backend calls the same function.

Every network is strongly typed and the precision comes from the graph chosen:
``model.onnx`` (fp32), ``model.fp16.onnx`` (fp16) or the Q/DQ
``model.int8.onnx`` (int8). No precision flag and no calibrator is set, so the
same build runs on TensorRT 10 (where weak typing is deprecated since 10.12)
and TensorRT 11 (which removed it and ignores the STRONGLY_TYPED flag, every
network being strongly typed). An optional timing cache file speeds up
rebuilds; it is not part of the fingerprint (it changes build time, not what
the engine computes).

None of the TensorRT calls can run on a machine without a GPU and TensorRT;
the plan and cache logic around them is unit-tested with a fake module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepilot.runtime.build.cache import Fingerprint, ResolvedEngine, resolve_engine
from edgepilot.runtime.build.fp16 import fp16_model
from edgepilot.runtime.bundle import Bundle, file_sha256
from edgepilot.runtime.errors import BundleError, DeviceError, EngineError, require


@dataclass(frozen=True, slots=True)
class BuildPlan:
    """How to build for a precision: the ONNX graph whose types the strongly typed network takes."""

    precision: str
    onnx: Path


def build_plan(bundle: Bundle, precision: str) -> BuildPlan:
    """The graph for ``precision``: fp32 ``model.onnx``, fp16 ``model.fp16.onnx`` (converted when
    missing or stale), int8 the Q/DQ ``model.int8.onnx`` (BundleError when the bundle has none)."""
    if precision == "fp32":
        return BuildPlan(precision, bundle.file("fp32"))
    if precision == "fp16":
        return BuildPlan(precision, fp16_model(bundle))
    if precision == "int8":
        return BuildPlan(precision, bundle.file("int8"))
    raise BundleError(f"unknown precision {precision!r}: use fp32, fp16 or int8")


def network_flags(trt: Any) -> int:
    """Creation flags: STRONGLY_TYPED only (explicit batch is implicit from TensorRT 10 on)."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:
        raise EngineError(f"TensorRT {trt.__version__} has no strongly typed networks: "
                          "install TensorRT 10 or later (pip install 'edgepilot[trt]'; JetPack 6.1+)", exit_code=2)
    return 1 << int(flag)


def cuda_gpu(index: int = 0) -> tuple[str, str]:
    """(name, compute capability "8.7") of CUDA device ``index``, as the ``trt`` backend names it.

    Uses torch (the ``trt`` backend's CUDA allocator) so an engine built here
    carries the same fingerprint the backend computes. DeviceError without one.
    """
    torch: Any = require("torch", "torch", "naming the GPU a TensorRT engine is built for")
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        raise DeviceError(f"cuda:{index} is not an available CUDA device: TensorRT engines are built on the GPU "
                          "they run on")
    return torch.cuda.get_device_name(index), "{}.{}".format(*torch.cuda.get_device_capability(index))


def _timing_cache(config: Any, path: Path | None) -> Any:
    """Attach the timing cache stored at ``path`` (or a new one) to ``config``; None without a path.

    A cache from another GPU or TensorRT version is refused by TensorRT
    (``ignore_mismatch=False``) and replaced by an empty one.
    """
    if path is None:
        return None
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is None or not config.set_timing_cache(cache, False):
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    return cache


def calibration_sha256(bundle: Bundle, precision: str) -> str | None:
    """Hash of the INT8 calibration data recorded by the exporter (None for other precisions)."""
    if precision != "int8":
        return None
    calib = bundle.meta.get("calibration", {})
    return str(calib["sha256"]) if isinstance(calib, dict) and calib.get("sha256") else None


def _save(path: Path, data: bytes) -> None:
    # through a rename: a build killed mid-write must not leave a truncated cache behind
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_engine(trt: Any, plan: BuildPlan, shapes: Mapping[str, tuple[int, ...]], workspace_mb: int,
                 timing_cache: Path | None = None) -> bytes:
    """Parse ``plan.onnx`` into a strongly typed network and build a serialised engine for fixed ``shapes``.

    ``workspace_mb`` caps the builder workspace (MB); ``timing_cache`` is read
    before and written after the build when given.
    """
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(plan.onnx.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BundleError(f"TensorRT cannot parse {plan.onnx}: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    cache = _timing_cache(config, timing_cache)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = shapes[tensor.name]
        profile.set_shape(tensor.name, shape, shape, shape)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build an engine from {plan.onnx} (see its log above)")
    if cache is not None and timing_cache is not None:
        _save(timing_cache, bytes(cache.serialize()))
    return bytes(serialized)


def ensure_engine(trt: Any, bundle: Bundle, precision: str, shapes: Mapping[str, tuple[int, ...]], *,
                  gpu_name: str, compute_capability: str, workspace_mb: int = 1024, rebuild: bool = True,
                  engine_path: Path | None = None, timing_cache: Path | None = None) -> ResolvedEngine:
    """The serialised engine for ``bundle`` at ``precision`` and fixed ``shapes`` on this GPU.

    ``gpu_name`` and ``compute_capability`` ("8.7") identify the GPU it is for
    (:func:`cuda_gpu`); with ``rebuild=False`` a missing or stale engine is
    refused, and an explicit ``engine_path`` must carry a matching fingerprint
    sidecar. ``timing_cache``: a file the builder reads and updates.
    """
    plan = build_plan(bundle, precision)
    fingerprint = Fingerprint.make(file_sha256(plan.onnx), trt.__version__, gpu_name, compute_capability,
                                   precision, shapes, calibration_sha256(bundle, precision))
    return resolve_engine(bundle, fingerprint,
                          lambda: build_engine(trt, plan, shapes, workspace_mb, timing_cache),
                          rebuild=rebuild, engine_path=engine_path)
