"""Engine registry: backend name -> class, imported lazily.

``load_engine(bundle, backend="ort", precision="fp32", device="cpu")`` is the one
place a backend is chosen; each backend lives in ``ops_<name>.py``.
``describe_options(backend)`` lists the ``--engine-opt`` keys a backend declares.

``backend="auto"`` is a name of the registry, not a backend. On a CPU it loads
every installed candidate (:func:`choose_backend`; engine options narrow them
to the backends that declare those options), times them on this bundle and
keeps the fastest, remembering the decision in the bundle
(:mod:`edgepilot.runtime.engines.auto`); :data:`CPU_PREFERENCE` is the order
used without measuring (``EDGEPILOT_AUTO_MEASURE=0``, or one candidate left).
On CUDA it is ort. The engine's ``describe()`` says which ran and why
(``chosen_by``). :data:`BACKEND_CHOICES` is every name ``load_engine`` accepts.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgepilot.runtime.bundle import Bundle, load_bundle
from edgepilot.runtime.engines import auto
from edgepilot.runtime.engines.base import Engine, parse_device
from edgepilot.runtime.engines.options import Option, describe_specs, validate_options
from edgepilot.runtime.errors import DeviceError, EngineError, MissingExtraError

BACKENDS = {
    "null": "edgepilot.runtime.engines.ops_null:NullEngine",
    "ort": "edgepilot.runtime.engines.ops_ort:OrtEngine",
    "torch": "edgepilot.runtime.engines.ops_torch:TorchEngine",
    "trt": "edgepilot.runtime.engines.ops_trt:TrtEngine",
    "openvino": "edgepilot.runtime.engines.ops_openvino:OpenVinoEngine",
    "triton": "edgepilot.runtime.engines.ops_triton:TritonEngine",  # a remote server; auto never picks it
}
AUTO = "auto"
BACKEND_CHOICES = (*BACKENDS, AUTO)
# The library each CPU candidate of ``auto`` needs; looked up with find_spec, never imported here.
LIBRARIES = {"openvino": "openvino", "ort": "onnxruntime"}
# CPU backends fastest first per precision, used when auto does not measure (and as the order
# candidates load in): the engine p50 order benchmarks/bench_cpu_compare.py measured on its
# YOLOv8n-class detector, same thread count for both (tests check it against the committed JSON).
# fp32: ort and OpenVINO's f32 are close (which leads varies from run to run on this shared
# machine: OpenVINO by 7 % in the committed run, ort by 3 % in the run before); fp16 on OpenVINO
# is bf16 arithmetic on a CPU with BF16 (about 2x), where ort's fp16 graph is no faster than its
# fp32. int8: ort runs the bundle's U8S8 graph (model.int8.cpu.onnx) and OpenVINO the signed one;
# which leads varies too (OpenVINO by 13 % in the committed run, ort by 36 % in the run before),
# and by bundle (ort leads on the INT8-first models/seg), so the committed run decides the static
# order and ``auto`` measures each bundle (auto.py).
CPU_PREFERENCE: dict[str, tuple[str, ...]] = {
    "fp32": ("ort", "openvino"),
    "fp16": ("openvino", "ort"),
    "int8": ("openvino", "ort"),
}
CPU_EVIDENCE = "benchmarks/results/cpu_compare.json"


def engine_class(backend: str) -> type[Engine]:
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}", exit_code=2)
    module, cls = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def describe_options(backend: str) -> list[str]:
    """One help line per option the backend declares, e.g. ``threads: int 1..8, intra-op threads (default: ...)``.

    Imports the backend module but not its library (no onnxruntime, torch or
    TensorRT), so ``--help`` can print it anywhere. EngineError (exit 2) for an
    unknown backend.
    """
    return describe_specs(engine_class(backend).OPTIONS)


def choose_backend(precision: str = "fp32", device: str = "cpu") -> list[tuple[str, str]]:
    """What ``auto`` would run, best first: (backend, why) for each installed candidate.

    On a CPU: the backends of ``CPU_PREFERENCE[precision]`` whose library is
    installed. On CUDA: ort, whose provider ``auto`` already takes TensorRT,
    then CUDA. Imports nothing heavy (``info`` can call it).
    """
    if parse_device(device).kind != "cpu":
        return [("ort", "auto: on cuda, ort (its provider auto takes TensorRT, then CUDA)")]
    order = CPU_PREFERENCE.get(precision, ("ort",))
    installed = [b for b in order if importlib.util.find_spec(LIBRARIES[b]) is not None]
    out = []
    for rank, name in enumerate(installed):
        faster = order[:order.index(name)]
        why = (f"auto: {name} is the fastest installed CPU backend for {precision} on the YOLOv8n-class "
               f"benchmark ({CPU_EVIDENCE})")
        if rank > 0:
            why = f"auto: {name}, the next installed CPU backend for {precision}"
        elif faster:
            why = (f"auto: {name}; {', '.join(faster)} is faster for {precision} but not installed "
                   f"(pip install 'edgepilot[{faster[0]}]'; {CPU_EVIDENCE})")
        out.append((name, why))
    return out or [("ort", "auto: no measured CPU backend is installed; ort")]


def load_engine(bundle: Bundle | str | Path, backend: str = "ort", precision: str = "fp32",
                device: str = "cpu", hw: tuple[int, int] | None = None,
                defaults: Mapping[str, Mapping[str, Any]] | None = None, **options: Any) -> Engine:
    """Build an engine for a bundle (a loaded Bundle or a folder path); ``backend="auto"`` chooses one.

    With ``auto`` a candidate that cannot run here (its library fails to
    import, or it cannot compile this graph: EngineError, exit 1) hands over to
    the next, and ``chosen_by`` says so; bad input (the bundle, an option, the
    device) is raised as it is. ``defaults`` are per-backend options a caller
    prefers (e.g. ``run`` on a file: ``{"openvino": {"hint": "throughput"}}``):
    applied to that backend only, under any option given, and never narrowing
    ``auto``'s candidates as given options do.
    """
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)

    def given(name: str) -> dict[str, Any]:  # a caller's per-backend defaults, under what was given
        return {**(defaults or {}).get(name, {}), **options}

    if backend != AUTO:
        return engine_class(backend).from_bundle(bundle, precision, device, hw, **given(backend))
    candidates = choose_backend(precision, device)
    if options:  # options narrow the choice to the backends that declare every one of them
        lacking = {n: sorted(set(options) - {o.name for o in engine_class(n).OPTIONS}) for n, _ in candidates}
        if all(lacking.values()):
            raise EngineError(f"no backend auto can choose takes every engine option given "
                              f"({', '.join(sorted(options))}): name one with --backend "
                              f"({'; '.join(f'{n} lacks {m[0]!r}' for n, m in lacking.items())})", exit_code=2)
        skipped = [f"{n} takes no option {m[0]!r}" for n, m in lacking.items() if m]
        candidates = [(n, w) for n, w in candidates if not lacking[n]]
    else:
        skipped = []
    loaded: dict[str, Engine] = {}
    whys: dict[str, str] = {}
    failed: list[str] = []
    measured = parse_device(device).kind == "cpu" and len(candidates) > 1 and auto.enabled()
    for rank, (name, why) in enumerate(candidates):
        try:
            loaded[name] = engine_class(name).from_bundle(bundle, precision, device, hw, **given(name))
            whys[name] = why
        except (EngineError, MissingExtraError) as exc:
            usable = isinstance(exc, MissingExtraError) or (exc.exit_code == 1 and not isinstance(exc, DeviceError))
            if (rank == len(candidates) - 1 and not loaded) or not usable:
                for engine in loaded.values():
                    engine.close()
                raise
            failed.append(f"{name} failed ({exc})")
            continue
        if not measured:
            break
    if len(loaded) > 1:
        name, why = auto.pick(bundle, precision, hw, loaded)
        for other, engine in loaded.items():
            if other != name:
                engine.close()
    else:
        name = next(iter(loaded))
        why = whys[name] if not failed else f"auto: {name}, as {'; '.join(failed)}"
    engine = loaded[name]
    engine.chosen_by = why + (f" ({'; '.join(skipped)})" if skipped else "")
    return engine
    raise AssertionError("choose_backend returned no candidate")  # it always returns at least one


__all__ = ["AUTO", "BACKENDS", "BACKEND_CHOICES", "CPU_EVIDENCE", "CPU_PREFERENCE", "Engine", "Option", "choose_backend",
           "describe_options", "engine_class", "load_engine", "validate_options"]
