"""Option strings users type, parsed once for every command: ``HxW`` shapes and ``KEY=VALUE`` engine options."""

from __future__ import annotations

from typing import Any

from edgepilot.runtime.errors import EdgepilotError

NATIVE = "native"
MAX_SIDE = 16384  # pixels: larger inputs are a typo, and would fail as a numpy out-of-memory error


def parse_shape(text: str | None) -> tuple[int, int] | None:
    """``"256x512"`` -> (256, 512) as (H, W); None or ``"native"`` -> None (the bundle's own shape)."""
    if text is None or text.strip().lower() == NATIVE:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise EdgepilotError(f"bad shape {text!r}: write it as HxW, e.g. 256x512", exit_code=2) from None
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise EdgepilotError(f"bad shape {text!r}: H and W must be in 1..{MAX_SIDE}", exit_code=2)
    return h, w


def parse_value(text: str) -> Any:
    """``"true"``/``"false"`` -> bool, integers and floats -> numbers, anything else stays a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_engine_opt(item: str) -> tuple[str, Any]:
    """``"threads=2"`` -> ("threads", 2); raises a bad-input error without ``=`` or a key."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise EdgepilotError(f"--engine-opt {item!r}: write it as KEY=VALUE, e.g. threads=2", exit_code=2)
    return key.strip(), parse_value(value.strip())


def parse_engine_opts(items: list[str]) -> dict[str, Any]:
    """``["threads=2", "nan=true"]`` -> {"threads": 2, "nan": True}."""
    return dict(parse_engine_opt(item) for item in items)
