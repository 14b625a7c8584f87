"""Engine registry: backend name -> class, imported lazily.

``load_engine(bundle, backend="ort", precision="fp32", device="cpu")`` is the one
place a backend is chosen; each backend lives in ``ops_<name>.py``.
``describe_options(backend)`` lists the ``--engine-opt`` keys a backend declares.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edgepilot.runtime.bundle import Bundle, load_bundle
from edgepilot.runtime.engines.base import Engine
from edgepilot.runtime.engines.options import Option, describe_specs, validate_options
from edgepilot.runtime.errors import EngineError

BACKENDS = {
    "null": "edgepilot.runtime.engines.ops_null:NullEngine",
    "ort": "edgepilot.runtime.engines.ops_ort:OrtEngine",
    "torch": "edgepilot.runtime.engines.ops_torch:TorchEngine",
    "trt": "edgepilot.runtime.engines.ops_trt:TrtEngine",
}


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


def load_engine(bundle: Bundle | str | Path, backend: str = "ort", precision: str = "fp32",
                device: str = "cpu", hw: tuple[int, int] | None = None, **options: Any) -> Engine:
    """Build an engine for a bundle (a loaded Bundle or a folder path)."""
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    return engine_class(backend).from_bundle(bundle, precision, device, hw, **options)


__all__ = ["BACKENDS", "Engine", "Option", "describe_options", "engine_class", "load_engine",
           "validate_options"]
