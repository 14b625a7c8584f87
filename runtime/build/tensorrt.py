"""TensorRT engine builds, callable without constructing an engine.

An exporter (``edgepilot export --engine``), ``edgepilot build`` or a Jetson
build script calls :func:`ensure_engine`: it picks the graph and flags for the
precision (:func:`build_plan`), fingerprints what the engine depends on and
returns the cached engine that matches, building it only when none does
(``runtime.build.cache``). The ``trt`` backend calls the same function.

None of the TensorRT calls can run on a machine without a GPU and TensorRT;
the plan and cache logic around them is unit-tested with a fake module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepilot.runtime.build.cache import Fingerprint, ResolvedEngine, resolve_engine
from edgepilot.runtime.build.fp16 import fp16_model
from edgepilot.runtime.bundle import Bundle, file_sha256
from edgepilot.runtime.errors import BundleError, EngineError


@dataclass(frozen=True, slots=True)
class BuildPlan:
    """How to build for a precision: which ONNX, builder flags, strongly typed or not."""

    onnx: Path
    flags: tuple[str, ...]
    strongly_typed: bool


def build_plan(trt: Any, bundle: Bundle, precision: str) -> BuildPlan:
    """Pick the graph and flags for ``precision`` given what this TensorRT offers."""
    flag_names = set(dir(trt.BuilderFlag))
    if precision == "fp32":
        return BuildPlan(bundle.file("fp32"), (), False)
    if precision == "fp16":
        if "FP16" in flag_names:
            return BuildPlan(bundle.file("fp32"), ("FP16",), False)
        return BuildPlan(fp16_model(bundle), (), True)
    onnx = bundle.file("int8")
    if "INT8" in flag_names:
        # FP16 lets layers outside the Q/DQ regions leave FP32 too.
        return BuildPlan(onnx, ("INT8", "FP16") if "FP16" in flag_names else ("INT8",), False)
    return BuildPlan(onnx, (), True)


def network_flags(trt: Any, strongly_typed: bool) -> int:
    """Creation flags: explicit batch is implicit from TensorRT 10 on, so only STRONGLY_TYPED is set."""
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0


def calibration_sha256(bundle: Bundle, precision: str) -> str | None:
    """Hash of the INT8 calibration data recorded by the exporter (None for other precisions)."""
    if precision != "int8":
        return None
    calib = bundle.meta.get("calibration", {})
    return str(calib["sha256"]) if isinstance(calib, dict) and calib.get("sha256") else None


def build_engine(trt: Any, plan: BuildPlan, shapes: Mapping[str, tuple[int, ...]], workspace_mb: int) -> bytes:
    """Parse ``plan.onnx`` and build a serialised engine for fixed ``shapes``."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, plan.strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(plan.onnx.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BundleError(f"TensorRT cannot parse {plan.onnx}: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = shapes[tensor.name]
        profile.set_shape(tensor.name, shape, shape, shape)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build an engine from {plan.onnx} (see its log above)")
    return bytes(serialized)


def ensure_engine(trt: Any, bundle: Bundle, precision: str, shapes: Mapping[str, tuple[int, ...]], *,
                  gpu_name: str, compute_capability: str, workspace_mb: int = 1024, rebuild: bool = True,
                  engine_path: Path | None = None) -> ResolvedEngine:
    """The serialised engine for ``bundle`` at ``precision`` and fixed ``shapes`` on this GPU.

    ``gpu_name`` and ``compute_capability`` ("8.7") identify the GPU it is for;
    with ``rebuild=False`` a missing or stale engine is refused, and an explicit
    ``engine_path`` must carry a matching fingerprint sidecar.
    """
    plan = build_plan(trt, bundle, precision)
    fingerprint = Fingerprint.make(file_sha256(plan.onnx), trt.__version__, gpu_name, compute_capability,
                                   precision, shapes, calibration_sha256(bundle, precision))
    return resolve_engine(bundle, fingerprint, lambda: build_engine(trt, plan, shapes, workspace_mb),
                          rebuild=rebuild, engine_path=engine_path)
