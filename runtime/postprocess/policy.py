"""Policy: an action vector [1, A] clipped to the bundle's bounds."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.frame import PolicyAction
from edgepilot.runtime.postprocess import check_finite, output
from edgepilot.runtime.preprocess import Transform


class ActionDecoder:
    def __init__(self, bundle: Bundle) -> None:
        cfg = bundle.decoder
        self.name = cfg.get("output", bundle.outputs[0].name)
        self.names = tuple(cfg.get("names", ("steer", "throttle")))
        self.low = np.asarray(cfg.get("low", [-1.0] * len(self.names)), np.float32)
        self.high = np.asarray(cfg.get("high", [1.0] * len(self.names)), np.float32)

    def __call__(
        self, outputs: Mapping[str, np.ndarray], transform: Transform, src_hw: tuple[int, int]
    ) -> PolicyAction:
        raw = output(outputs, self.name)
        check_finite(self.name, raw)
        values = np.clip(raw.reshape(-1)[: len(self.names)].astype(np.float32), self.low, self.high)
        return PolicyAction(values, self.names)
