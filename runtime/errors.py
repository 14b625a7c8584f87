"""Typed errors with exit codes.

Every error the CLI can meet is one of these: the message says what went wrong,
where, and what to do, on one line. The CLI prints ``error: <message>`` and exits
with ``exit_code``: 2 for bad input (a file, an argument, a missing extra), 1 for a
failure at run time (a camera that dies, NaN outputs).
"""

from __future__ import annotations

from typing import Any

BAD_INPUT = 2
RUNTIME_FAILURE = 1


class EdgepilotError(Exception):
    """Base of all edgepilot errors; ``exit_code`` is what the CLI exits with."""

    exit_code: int = RUNTIME_FAILURE

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BundleError(EdgepilotError):
    """A model bundle is missing, malformed or inconsistent with its ONNX graph."""

    exit_code = BAD_INPUT


class SourceError(EdgepilotError):
    """A frame source cannot be opened (bad input) or failed mid-run (runtime)."""

    exit_code = BAD_INPUT


class SinkError(EdgepilotError):
    """An output (video file, JSONL, window) cannot be written."""

    exit_code = BAD_INPUT


class EngineError(EdgepilotError):
    """An engine cannot be built or loaded, or produced invalid output."""

    exit_code = RUNTIME_FAILURE


class DeviceError(EngineError):
    """The requested device does not exist or is not usable by the backend."""

    exit_code = BAD_INPUT


class MissingExtraError(EdgepilotError):
    """An optional dependency is not installed."""

    exit_code = BAD_INPUT


class GateError(EdgepilotError):
    """A benchmark baseline is unreadable or does not match the run."""

    exit_code = BAD_INPUT


class SimulatorError(EdgepilotError):
    """A simulator could not start, lost its server, or timed out on a sensor."""

    exit_code = RUNTIME_FAILURE


def require(module: str, extra: str, what: str = "") -> Any:
    """Import ``module`` or raise MissingExtraError naming the extra to install.

    Used by every backend and simulator so a missing heavy dependency is one line:
    ``onnxruntime is not installed (needed by the ort backend): pip install 'edgepilot[onnx]'``.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        need = f" (needed by {what})" if what else ""
        raise MissingExtraError(
            f"{module} is not installed{need}: pip install 'edgepilot[{extra}]'"
        ) from exc
