"""The null engine: shapes from the bundle, no compute.

Lets the loop, the gate and the CLI run anywhere. Outputs are zeros of the
declared shapes (dynamic dims follow the input's H, W divided by ``stride``).
Options (``NullEngine.OPTIONS``): ``delay_ms`` (busy-wait per call, to emulate
an engine's latency; busy rather than sleep so it behaves like compute, not
like an idle wait), ``nan`` (fill float outputs with NaN, to test error handling).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.engines.base import Engine
from edgepilot.runtime.engines.options import Option
from edgepilot.runtime.errors import EngineError


class NullEngine(Engine):
    backend = "null"
    devices = ("cpu", "cuda")
    precisions = ("fp32", "fp16", "int8")
    OPTIONS = (
        Option("delay_ms", "float", "busy-wait per infer call in ms, emulating an engine's latency",
               default=0.0, min=0, max=60_000),
        Option("nan", "bool", "fill float outputs with NaN, to test error handling", default=False),
    )

    def __init__(self, bundle: Bundle, precision: str = "fp32", device: str = "cpu",
                 hw: tuple[int, int] | None = None, **options: Any) -> None:
        super().__init__(bundle, precision, device, hw, **options)
        self.delay_s = self.options["delay_ms"] / 1e3
        self._expected = self.input_shapes()
        ih, iw = next(iter(self._expected.values()))[-2:]
        fill = np.nan if self.options["nan"] else 0
        self._outputs = {}
        for spec in self.outputs:
            shape = [d if d is not None else 1 for d in spec.shape]
            if hw is not None and len(shape) >= 2 and None in spec.shape[-2:]:
                shape[-2], shape[-1] = ih, iw
            arr = np.zeros(shape, spec.dtype)
            if arr.dtype.kind == "f":
                arr.fill(fill)
            self._outputs[spec.name] = arr

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, shape in self._expected.items():
            got = feeds.get(name)
            if got is None or tuple(got.shape) != shape:
                raise EngineError(
                    f"input {name!r} expects shape {list(shape)}, got "
                    f"{None if got is None else list(got.shape)}", exit_code=2)
        if self.delay_s:
            end = time.perf_counter() + self.delay_s
            while time.perf_counter() < end:
                pass
        return dict(self._outputs)
