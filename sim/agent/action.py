"""What the driving policy outputs, and the one mapping from it to a vehicle ``Control``.

A policy emits two numbers in [-1, 1]: ``steer`` (positive steers right, as
``Control.steer``) and ``pedal``, throttle and brake on one axis (positive is
throttle, negative is brake, so the policy cannot press both). Every backend,
the Gymnasium env and the drive loop turn them into a ``Control`` here.
Out-of-range values are clipped; NaN becomes 0 (no steer, no pedal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgepilot.sim.types import Control

ACTION_SIZE = 2  # (steer, pedal)
ACTION_LOW = -1.0
ACTION_HIGH = 1.0


@dataclass(frozen=True, slots=True)
class Action:
    """One policy output; both fields in [-1, 1] once built by :meth:`from_array`."""

    steer: float = 0.0
    pedal: float = 0.0

    @classmethod
    def from_array(cls, values: np.ndarray | list[float] | tuple[float, ...]) -> Action:
        """A (2,) array (steer, pedal) from a policy -> a clipped Action."""
        a = np.nan_to_num(np.asarray(values, dtype=np.float64).reshape(-1), nan=0.0)
        if a.shape != (ACTION_SIZE,):
            raise ValueError(f"an action is (steer, pedal), got {a.shape[0]} values")
        a = np.clip(a, ACTION_LOW, ACTION_HIGH)
        return cls(float(a[0]), float(a[1]))

    @classmethod
    def from_control(cls, control: Control) -> Action:
        """The action that maps to ``control`` (throttle and brake both set: their difference)."""
        c = control.clipped()
        return cls(c.steer, c.throttle - c.brake)

    def to_array(self) -> np.ndarray:
        return np.array([self.steer, self.pedal], dtype=np.float32)

    def to_control(self) -> Control:
        """steer as is; pedal > 0 is throttle, pedal < 0 is brake (the other one 0)."""
        return Control(steer=self.steer, throttle=max(self.pedal, 0.0), brake=max(-self.pedal, 0.0)).clipped()


def to_control(values: np.ndarray | list[float] | tuple[float, ...]) -> Control:
    """A policy's (steer, pedal) output -> ``Control``: ``Action.from_array(values).to_control()``."""
    return Action.from_array(values).to_control()
