"""The Engine interface. One class per backend (``ops_<name>.py``), found by name.

Nothing outside ``runtime/engines`` branches on the backend: code asks the
registry for an engine and talks to this interface.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgepilot.runtime.bundle import PRECISIONS, Bundle, TensorSpec
from edgepilot.runtime.engines.options import Option, validate_options
from edgepilot.runtime.errors import DeviceError, EngineError
from edgepilot.runtime.processor import HostProcessor, Processor

_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


@dataclass(frozen=True, slots=True)
class Device:
    """A parsed device string: ``cpu``, ``cuda`` or ``cuda:N``."""

    kind: str
    index: int = 0

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


def parse_device(text: str) -> Device:
    m = _DEVICE.match(text.strip().lower())
    if not m:
        raise DeviceError(f"unknown device {text!r}: use cpu, cuda or cuda:N")
    return Device(m.group(1), int(m.group(2) or 0))


class Engine(ABC):
    """Runs one bundle on one backend, device and precision.

    ``infer`` takes and returns host numpy arrays keyed by tensor name. The
    returned arrays may be buffers the engine reuses: copy what you keep.

    ``OPTIONS`` declares every ``--engine-opt`` the backend reads; the constructor
    validates the given ones against it before anything heavy is imported, and
    ``self.options`` holds every declared option's value (given or default).
    """

    backend: ClassVar[str] = "abstract"
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    OPTIONS: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, bundle: Bundle, precision: str = "fp32", device: str = "cpu",
                 hw: tuple[int, int] | None = None, **options: Any) -> None:
        if precision not in PRECISIONS:
            raise EngineError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}", exit_code=2)
        if precision not in self.precisions:
            raise EngineError(
                f"the {self.backend} backend does not support {precision} "
                f"(it supports {', '.join(self.precisions)})", exit_code=2)
        self.device = parse_device(device)
        if self.device.kind not in self.devices:
            raise DeviceError(f"the {self.backend} backend cannot run on {self.device} (it runs on {', '.join(self.devices)})")
        self.bundle = bundle
        self.precision = precision
        self.hw = hw
        self.chosen_by: str | None = None  # why load_engine(backend="auto") picked this backend
        self.options: dict[str, Any] = validate_options(self.OPTIONS, options, self.backend)

    @classmethod
    def from_bundle(cls, bundle: Bundle, precision: str = "fp32", device: str = "cpu",
                    hw: tuple[int, int] | None = None, **options: Any) -> Engine:
        return cls(bundle, precision, device, hw, **options)

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.bundle.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.bundle.outputs

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Concrete input shapes at this engine's size (dynamic H, W from ``hw``)."""
        return {s.name: _concrete(s, self.hw, self.bundle.preprocess.get("layout", "NCHW")) for s in self.inputs}

    def sample_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Random inputs of the right shape and dtype, for warm-up and benchmarks."""
        rng = np.random.default_rng(seed)
        feeds = {}
        for spec in self.inputs:
            shape = self.input_shapes()[spec.name]
            if spec.dtype.startswith("float"):
                feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
            else:
                feeds[spec.name] = rng.integers(0, 255, shape).astype(spec.dtype)
        return feeds

    @abstractmethod
    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; blocks until outputs are on the host. The arrays may be views of the
        engine's own buffers (OpenVINO shares its output tensors), valid until the next call:
        decode them at once or copy what is kept."""

    def make_processor(self) -> Processor:
        """The per-frame call (Frame -> Output) for this engine at its input size.

        Host pre/post-processing around :meth:`infer` by default; a backend that
        keeps frames on its device overrides this with its own Processor.
        """
        return HostProcessor(self.bundle, self, self.hw)

    def throughput_fps(self, feeds: Mapping[str, np.ndarray], calls: int) -> float | None:
        """Frames/s with as many requests in flight as this engine overlaps in the loop; None where it
        overlaps none (then back-to-back latency is its per-frame cost). ``auto`` compares on it."""
        return None

    def warmup(self, n: int = 10) -> None:
        feeds = self.sample_inputs()
        for _ in range(n):
            self.infer(feeds)

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on CPU); benchmarks call it before reading clocks."""

    def describe(self) -> dict[str, Any]:
        """What actually runs: backend, device, precision, why it was chosen, backend details."""
        info: dict[str, Any] = {"backend": self.backend, "device": str(self.device), "precision": self.precision}
        if self.chosen_by:
            info["chosen_by"] = self.chosen_by
        return info

    def close(self) -> None:
        """Release device memory and sessions. Idempotent."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_feeds(expected: Mapping[str, tuple[tuple[int | None, ...], str]],
                feeds: Mapping[str, np.ndarray]) -> None:
    """Check each input's presence, rank, fixed dims (None = any) and numpy dtype name.

    Raises EngineError (exit 2) naming the input, so a wrong shape is one clear
    line instead of a backend's stack trace.
    """
    for name, (fixed, dtype) in expected.items():
        got = feeds.get(name)
        if got is None:
            raise EngineError(f"missing input {name!r} (feeds have {sorted(feeds)})", exit_code=2)
        if got.ndim != len(fixed) or any(a is not None and a != b for a, b in zip(fixed, got.shape, strict=True)):
            shown = ["?" if d is None else d for d in fixed]
            raise EngineError(f"input {name!r} expects shape {shown}, got {list(got.shape)}", exit_code=2)
        if str(got.dtype) != dtype:
            raise EngineError(f"input {name!r} expects {dtype}, got {got.dtype}", exit_code=2)


def _concrete(spec: TensorSpec, hw: tuple[int, int] | None, layout: str) -> tuple[int, ...]:
    shape = list(spec.shape)
    if hw is not None and len(shape) == 4:
        hi, wi = (2, 3) if layout.upper() == "NCHW" else (1, 2)
        shape[hi], shape[wi] = hw
    if shape and shape[0] is None:
        shape[0] = 1
    if any(d is None for d in shape):
        raise EngineError(f"input {spec.name!r} has dynamic dims {spec.shape}: pass a shape (--shapes HxW)", exit_code=2)
    return tuple(int(d) for d in shape)  # type: ignore[arg-type]
