"""Engine fingerprints and the bundle's engine cache (pure Python).

A TensorRT engine is only valid for the exact ONNX graph, TensorRT version,
GPU model, precision, input shapes and calibration data it was built from.
All of these go into a :class:`Fingerprint`; the cache file name is derived
from its canonical JSON, and a sidecar ``.json`` stores the fingerprint itself
so a cached or hand-supplied engine is checked field by field before use:
a stale engine is rebuilt or refused, never run.

Layout::

    bundle/engines/<sha256(canonical fingerprint JSON)[:16]>.engine
    bundle/engines/<sha256(canonical fingerprint JSON)[:16]>.json   # the fingerprint

(``engines`` is ``bundle.FILES["engines"]``.)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.errors import BundleError, EngineError


def shape_items(input_shapes: Mapping[str, Any]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Input shapes as sorted (name, dims) pairs, so a fingerprint does not depend on their order."""
    return tuple(sorted((str(k), tuple(int(d) for d in v)) for k, v in input_shapes.items()))


def checked_fields(cls: type, data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data``'s ``input_shapes`` if its keys are exactly ``cls``'s fields (a fingerprint's JSON)."""
    names = {f.name for f in fields(cls)}
    if set(data) != names:
        raise ValueError(f"fields {sorted(set(data) ^ names)} missing or unexpected")
    shapes = data["input_shapes"]
    if not isinstance(shapes, Mapping):
        raise TypeError("input_shapes must be an object")
    return shapes


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """Everything a built engine depends on. ``input_shapes``: name -> concrete shape."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...]
    calibration_sha256: str | None = None

    @staticmethod
    def make(onnx_sha256: str, tensorrt_version: str, gpu_name: str, compute_capability: str,
             precision: str, input_shapes: Mapping[str, tuple[int, ...]],
             calibration_sha256: str | None = None) -> Fingerprint:
        """Build from a shape mapping (sorted by name so the key does not depend on order)."""
        return Fingerprint(onnx_sha256, tensorrt_version, gpu_name, compute_capability,
                           precision, shape_items(input_shapes), calibration_sha256)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; shapes become ``{name: [dims]}``."""
        out = asdict(self)
        out["input_shapes"] = {name: list(shape) for name, shape in self.input_shapes}
        return out

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Fingerprint:
        """Inverse of :meth:`to_json`; raises KeyError/TypeError/ValueError on malformed data."""
        shapes = checked_fields(Fingerprint, data)
        calib = data["calibration_sha256"]
        return Fingerprint.make(str(data["onnx_sha256"]), str(data["tensorrt_version"]),
                                str(data["gpu_name"]), str(data["compute_capability"]),
                                str(data["precision"]), shapes, None if calib is None else str(calib))

    def canonical(self) -> str:
        """Canonical JSON text (sorted keys, no spaces): the thing that is hashed."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    def key(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical JSON."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:16]

    def diff(self, other: Fingerprint) -> dict[str, tuple[Any, Any]]:
        """Fields that differ: name -> (self's value, other's value)."""
        mine, theirs = self.to_json(), other.to_json()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}


@dataclass(frozen=True, slots=True)
class ResolvedEngine:
    """The engine file to deserialise and whether it was (re)built in this call."""

    path: Path
    built: bool
    fingerprint: Fingerprint


def cache_paths(bundle: Bundle, fingerprint: Fingerprint) -> tuple[Path, Path]:
    """(engine file, sidecar json) for a fingerprint inside the bundle's ``engines/``."""
    base = bundle.path_of("engines") / fingerprint.key()
    return base.with_suffix(".engine"), base.with_suffix(".json")


def sidecar_of(engine_path: Path) -> Path:
    return engine_path.with_suffix(".json")


def read_sidecar(path: Path) -> Fingerprint | None:
    """The stored fingerprint, or None when the sidecar is missing or unreadable."""
    try:
        return Fingerprint.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _describe(diff: Mapping[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{k}: engine has {a!r}, now {b!r}" for k, (a, b) in sorted(diff.items()))


def _atomic_write(path: Path, data: bytes) -> None:
    # A crash mid-write must not leave a truncated engine that looks valid.
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _check_explicit(engine_path: Path, current: Fingerprint) -> ResolvedEngine:
    if not engine_path.is_file():
        raise BundleError(f"engine file {engine_path} does not exist")
    stored = read_sidecar(sidecar_of(engine_path))
    if stored is None:
        raise EngineError(
            f"engine {engine_path} has no readable fingerprint sidecar {sidecar_of(engine_path).name}; "
            "refusing to run an engine of unknown origin: drop --engine-opt engine=PATH to build one", exit_code=2)
    diff = stored.diff(current)
    if diff:
        raise EngineError(f"engine {engine_path} was built for something else ({_describe(diff)}); "
                          "drop --engine-opt engine=PATH to build a matching one", exit_code=2)
    return ResolvedEngine(engine_path, False, current)


def _stale_candidates(bundle: Bundle, current: Fingerprint) -> list[Fingerprint]:
    """Stored fingerprints for the same precision (the closest thing to 'the old engine')."""
    folder = bundle.path_of("engines")
    found = [read_sidecar(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return [fp for fp in found if fp is not None and fp.precision == current.precision]


def resolve_engine(bundle: Bundle, fingerprint: Fingerprint, build_fn: Callable[[], bytes], *,
                   rebuild: bool = True, engine_path: Path | None = None) -> ResolvedEngine:
    """Find or build the engine matching ``fingerprint``; never returns a stale one.

    ``build_fn`` returns the serialised engine bytes; it is called only when no
    cached engine matches and ``rebuild`` is true. With ``rebuild=False`` a
    missing match raises EngineError naming the fields that differ from the
    closest cached engine. An explicit ``engine_path`` must carry a sidecar
    whose fingerprint equals ``fingerprint`` exactly.
    """
    if engine_path is not None:
        return _check_explicit(Path(engine_path), fingerprint)
    engine, sidecar = cache_paths(bundle, fingerprint)
    stored = read_sidecar(sidecar)
    if engine.is_file() and stored == fingerprint:
        return ResolvedEngine(engine, False, fingerprint)
    if not rebuild:
        others = _stale_candidates(bundle, fingerprint)
        why = "; ".join(_describe(fp.diff(fingerprint)) for fp in others) or "no cached engine"
        raise EngineError(f"no cached engine in {engine.parent} matches ({why}); "
                          "drop --engine-opt rebuild=false to build one", exit_code=2)
    data = build_fn()
    if not data:
        raise EngineError("the engine build produced no data (see the builder log above)")
    engine.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(engine, bytes(data))
    _atomic_write(sidecar, (json.dumps(fingerprint.to_json(), indent=2, sort_keys=True) + "\n").encode())
    return ResolvedEngine(engine, True, fingerprint)
