"""A bundle's TensorRT engines, built through the runtime's build functions, or trtexec commands instead.

:func:`build_or_script` is what ``edgepilot build`` and ``edgepilot export
--engine`` call. Where ``tensorrt`` imports, each precision is built by
:func:`~edgepilot.runtime.build.tensorrt.ensure_engine` into the bundle's
fingerprinted engine cache, for the GPU it runs on, at the shapes the engine
interface runs (so ``edgepilot run --backend trt`` finds it). Where it does
not, the equivalent trtexec commands are written into the bundle instead, as
``engines/trtexec/trtexec.sh`` (:mod:`~edgepilot.export.trtexec`), to run on
the machine that has the GPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepilot.export.trtexec import TrtexecJob, build_script, shapes_spec
from edgepilot.runtime.build.cache import ResolvedEngine
from edgepilot.runtime.build.tensorrt import build_plan, cuda_gpu, ensure_engine
from edgepilot.runtime.bundle import PRECISIONS, Bundle
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.engines.base import parse_device
from edgepilot.runtime.errors import BundleError, DeviceError
from edgepilot.runtime.outputs import write_text_atomic

ALL = "all"
TRTEXEC_DIR = "trtexec"  # inside the bundle's engines/: trtexec.sh, <precision>.engine, timing.cache
SCRIPT = "trtexec.sh"
TIMING_CACHE = "timing.cache"  # default timing cache of edgepilot build, in the bundle's engines/
DEFAULT_WORKSPACE_MB = 1024


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """How to build: ``device`` cuda[:N], ``hw`` (H, W) for dynamic bundles, workspace limit in MB,
    and a timing cache file (None: the bundle's ``engines/timing.cache``)."""

    device: str = "cuda"
    hw: tuple[int, int] | None = None
    workspace_mb: int = DEFAULT_WORKSPACE_MB
    timing_cache: Path | None = None


@dataclass(frozen=True, slots=True)
class BuildResult:
    """Engines built or found (TensorRT here), or the trtexec script written instead (no TensorRT)."""

    precisions: tuple[str, ...]
    engines: tuple[ResolvedEngine, ...] = ()
    script: Path | None = None
    missing: str = ""  # why tensorrt did not import, when the script was written


def precisions_of(bundle: Bundle, precision: str = ALL) -> tuple[str, ...]:
    """The precisions to build: ``precision`` itself, or with ``all`` fp32, fp16 and int8 where the
    bundle has a Q/DQ graph (the FP16 graph is converted from FP32 when missing, as the runtime does)."""
    if precision != ALL:
        return (precision,)
    return tuple(p for p in PRECISIONS if p != "int8" or bundle.path_of("int8").is_file())


def engine_shapes(bundle: Bundle, hw: tuple[int, int] | None) -> dict[str, tuple[int, ...]]:
    """The concrete input shapes an engine of ``bundle`` runs at: the Engine interface's own rule
    (taken from the null engine, which builds nothing), so fingerprints agree with the ``trt`` backend."""
    return load_engine(bundle, "null", hw=hw).input_shapes()


def import_tensorrt() -> tuple[Any | None, str]:
    """The ``tensorrt`` module and "", or None and why it did not import (missing, or its libraries broken)."""
    try:
        import tensorrt
    except Exception as exc:  # a broken install (CUDA libraries) fails with OSError and friends
        first = (str(exc).splitlines() or [""])[0][:120]
        return None, f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return tensorrt, ""


def build_engines(trt: Any, bundle: Bundle, precisions: Sequence[str], options: BuildOptions) -> list[ResolvedEngine]:
    """Build (or find up to date) each precision's engine in the bundle's fingerprinted cache."""
    device = parse_device(options.device)
    if device.kind != "cuda":
        raise DeviceError(f"TensorRT engines are built on a CUDA device, not {device}: use --device cuda[:N]")
    gpu_name, capability = cuda_gpu(device.index)
    shapes = engine_shapes(bundle, options.hw)
    cache = options.timing_cache or bundle.path_of("engines") / TIMING_CACHE
    return [ensure_engine(trt, bundle, p, shapes, gpu_name=gpu_name, compute_capability=capability,
                          workspace_mb=options.workspace_mb, timing_cache=cache) for p in precisions]


def trtexec_jobs(bundle: Bundle, precisions: Sequence[str], hw: tuple[int, int] | None,
                 engines_dir: str) -> list[TrtexecJob]:
    """One job per precision, paths relative to the bundle folder; --shapes only for dynamic bundles."""
    dynamic = hw is not None or any(None in spec.shape for spec in bundle.inputs)
    spec = shapes_spec(engine_shapes(bundle, hw)) if dynamic else None
    return [TrtexecJob(p, build_plan(bundle, p).onnx.relative_to(bundle.path).as_posix(),
                       f"{engines_dir}/{p}.engine", spec) for p in precisions]


def write_trtexec_script(bundle: Bundle, precisions: Sequence[str], options: BuildOptions) -> Path:
    """Write ``engines/trtexec/trtexec.sh`` (executable) building ``precisions`` with trtexec; its path.

    Paths in it are relative to the bundle, so it runs wherever the bundle is
    copied; an explicit timing cache is written as an absolute path.
    """
    folder = bundle.path_of("engines") / TRTEXEC_DIR
    rel = folder.relative_to(bundle.path).as_posix()
    cache = str(options.timing_cache.resolve()) if options.timing_cache else f"{rel}/{TIMING_CACHE}"
    text = build_script(trtexec_jobs(bundle, precisions, options.hw, rel), workspace_mb=options.workspace_mb,
                        timing_cache=cache, workdir="../..",
                        title=f"TensorRT engines of bundle {bundle.name!r} with trtexec (written by edgepilot build)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = write_text_atomic(folder / SCRIPT, text)
        os.chmod(path, 0o755)
    except OSError as exc:
        raise BundleError(f"cannot write {folder / SCRIPT} ({exc.strerror or exc}); make the bundle "
                          "folder writable") from exc
    return path


def build_or_script(bundle: Bundle, precision: str = ALL, options: BuildOptions | None = None,
                    trt: Any | None = None) -> BuildResult:
    """Build the engines for ``precision`` (or ``all``) where TensorRT imports, else write the trtexec script.

    BundleError (exit 2) when the bundle lacks the graph a precision needs;
    DeviceError (exit 2) without a CUDA device; EngineError (exit 1) when
    TensorRT fails to build. ``trt``: the module to use (tests pass a fake).
    """
    options = options or BuildOptions()
    precisions = precisions_of(bundle, precision)
    why = ""
    if trt is None:
        trt, why = import_tensorrt()
    if trt is None:
        return BuildResult(precisions, script=write_trtexec_script(bundle, precisions, options), missing=why)
    return BuildResult(precisions, engines=tuple(build_engines(trt, bundle, precisions, options)))

