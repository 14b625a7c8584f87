"""Declared engine options: each backend lists what it reads, with type, range and help.

``--engine-opt KEY=VALUE`` arrives as ``parse_value``'s bool/int/float/str (the
Python API may pass the same, or strings). :func:`validate_options` refuses an
unknown key or a bad value with one line (EngineError, exit 2) before any
backend imports its library, coerces the rest to the declared type and fills
in the defaults; the engine reads ``self.options`` and nothing else.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgepilot.runtime.errors import EngineError

Kind = Literal["bool", "int", "float", "str", "path", "choice"]
KINDS: tuple[str, ...] = ("bool", "int", "float", "str", "path", "choice")
# A thread pool far above the core count only adds contention; 100000 threads hung
# onnxruntime and took 2 GB, so the bound is a multiple of the cores, with a hard cap.
THREADS_PER_CORE = 4
THREADS_CAP = 256
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True, slots=True)
class Option:
    """One engine option: ``name`` as typed after ``--engine-opt``, its ``kind`` and range.

    ``min``/``max`` bound int and float options (inclusive); ``choices`` are the
    allowed values of a ``choice``. ``default`` is what the engine gets when the
    key is absent (None: leave the library's own default); ``default_text`` says
    that in words for the help line. ``env`` names an environment variable read,
    and validated the same way, when the key is absent. ``note`` explains the range.
    """

    name: str
    kind: Kind
    help: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    default_text: str = ""
    env: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: unknown kind {self.kind!r}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"option {self.name}: a choice needs choices")

    def expected(self) -> str:
        """What an error asks for: ``int 1..8``, ``one of auto|cpu``, ``bool (true or false)``."""
        if self.kind == "choice":
            return f"one of {self.type_text()}"
        if self.kind == "bool":
            return "bool (true or false)"
        return self.type_text()

    def type_text(self) -> str:
        """The type and range, short: ``int 1..8``, ``float 0..60000``, ``auto|cpu``, ``path``."""
        if self.kind == "choice":
            return "|".join(self.choices)
        if self.min is None and self.max is None:
            return self.kind
        lo = "" if self.min is None else _number(self.min)
        hi = "" if self.max is None else _number(self.max)
        return f"{self.kind} {lo}..{hi}"


def max_threads(cores: int | None = None) -> int:
    """The largest thread count an engine accepts: 4 x the machine's cores, at most 256."""
    return min(THREADS_PER_CORE * (cores or os.cpu_count() or 1), THREADS_CAP)


def threads_option(help: str, default_text: str, env: str | None = None) -> Option:
    """A thread-count option bounded by :func:`max_threads`, its error naming the core count."""
    cores = os.cpu_count() or 1
    return Option("threads", "int", help, min=1, max=max_threads(cores), default_text=default_text, env=env,
                  note=f"{THREADS_PER_CORE} x this machine's {cores} cores, at most {THREADS_CAP}")


def validate_options(specs: Sequence[Option], given: Mapping[str, Any], backend: str,
                     environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every declared option's value: ``given`` coerced and range-checked, the rest defaulted.

    Raises EngineError (exit 2) naming an unknown key and the known ones, or a
    bad value with the expected type and range. ``environ`` (default
    ``os.environ``) supplies options declared with ``env`` that ``given`` lacks.
    """
    known = {s.name: s for s in specs}
    unknown = sorted(k for k in given if k not in known)
    if unknown:
        names = ", ".join(known) or "none"
        raise EngineError(f"unknown engine option {unknown[0]!r} for the {backend} backend "
                          f"(its options: {names})", exit_code=2)
    env = os.environ if environ is None else environ
    values = {}
    for spec in specs:
        if spec.name in given:
            values[spec.name] = coerce(spec, given[spec.name], f"engine option {spec.name}", backend)
        elif spec.env and env.get(spec.env, "").strip():
            values[spec.name] = coerce(spec, env[spec.env].strip(), f"${spec.env} (option {spec.name})", backend)
        else:
            values[spec.name] = spec.default
    return values


def coerce(spec: Option, value: Any, where: str, backend: str) -> Any:
    """``value`` as ``spec``'s type, or EngineError (exit 2) saying what was expected."""
    try:
        out = _CASTS[spec.kind](spec, value)
    except (TypeError, ValueError, OverflowError):
        out = None
    if out is None or not _in_range(spec, out):
        shown = repr(value) if isinstance(value, str) else str(value)
        note = f" ({spec.note})" if spec.note else ""
        raise EngineError(f"{where}={shown} for the {backend} backend: expected {spec.expected()}{note}",
                          exit_code=2)
    return out


def describe_specs(specs: Sequence[Option]) -> list[str]:
    """One help line per option: ``threads: int 1..8, intra-op threads (default: onnxruntime's)``."""
    return [f"{s.name}: {s.type_text()}, {s.help} (default: {_default_text(s)})" for s in specs]


def _bool(spec: Option, value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # parse_value turns "1"/"0" into ints
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _int(spec: Option, value: Any) -> int | None:
    if isinstance(value, bool):  # a bool is an int to Python, not to a user
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        return int(value.strip())
    return None


def _float(spec: Option, value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _str(spec: Option, value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _path(spec: Option, value: Any) -> Path | None:
    if isinstance(value, (str, os.PathLike)) and str(value).strip():
        return Path(value)
    return None


def _choice(spec: Option, value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    wanted = value.strip().lower()
    return next((c for c in spec.choices if c.lower() == wanted), None)


_CASTS: dict[str, Callable[[Option, Any], Any]] = {"bool": _bool, "int": _int, "float": _float, "str": _str, "path": _path, "choice": _choice}


def _in_range(spec: Option, value: Any) -> bool:
    if spec.kind not in ("int", "float"):
        return True
    return (spec.min is None or value >= spec.min) and (spec.max is None or value <= spec.max)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _default_text(spec: Option) -> str:
    if spec.default_text:
        return spec.default_text
    if isinstance(spec.default, bool):
        return str(spec.default).lower()
    if isinstance(spec.default, (int, float)):
        return _number(spec.default)
    return "none" if spec.default is None else str(spec.default)
