"""The privileged scripted driver: the baseline an RL policy has to beat.

Pure-pursuit steering on the ground-truth lane centre, a speed target limited by
the curvature ahead, and gap keeping to the lead vehicle. Optional noise makes
datagen episodes differ from each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from edgepilot.sim.builtin.route import Privileged
from edgepilot.sim.types import Control, EgoState

MAX_STEER_RAD = math.pi / 4  # highway-env's ContinuousAction steering range


@runtime_checkable
class PrivilegedView(Protocol):
    """A simulator that exposes the ground truth the scripted driver steers by (builtin)."""

    def privileged(self) -> Privileged: ...


@dataclass(frozen=True, slots=True)
class DriverConfig:
    wheelbase_m: float = 5.0  # highway-env turns like a bicycle with this wheelbase
    lookahead_s: float = 0.6  # pure-pursuit distance per m/s of speed
    min_lookahead_m: float = 6.0
    max_lat_accel_mps2: float = 3.0
    time_gap_s: float = 1.5
    standstill_gap_m: float = 4.0
    max_accel_mps2: float = 3.0
    max_decel_mps2: float = 6.0
    steer_noise: float = 0.0  # std of Ornstein-Uhlenbeck steering noise, in Control units
    speed_noise: float = 0.0  # relative std of the per-episode speed target

    @classmethod
    def default_config(cls) -> DriverConfig:
        return cls()


class ScriptedDriver:
    """``act(privileged, ego) -> Control``; ``reset(seed)`` redraws the noise."""

    def __init__(self, config: DriverConfig | None = None) -> None:
        self.config = config or DriverConfig()
        self.reset(0)

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng([seed, 0xD1])
        self._noise = 0.0
        self._speed_scale = 1.0 + self.config.speed_noise * float(self._rng.standard_normal())

    def act(self, p: Privileged, ego: EgoState) -> Control:
        """One control from the privileged view and the ego pose (world frame)."""
        return Control(self._steer(p, ego), *self._pedals(p)).clipped()

    def _steer(self, p: Privileged, ego: EgoState) -> float:
        c = self.config
        lookahead = max(c.min_lookahead_m, c.lookahead_s * ego.speed_mps)
        rel = p.path_xy - np.array([ego.x_m, ego.y_m])
        dist = np.linalg.norm(rel, axis=1)
        target = rel[min(int(np.searchsorted(dist, lookahead)), len(rel) - 1)] if len(rel) else np.zeros(2)
        alpha = math.atan2(target[1], target[0]) - ego.heading_rad  # left positive
        alpha = (alpha + math.pi) % (2 * math.pi) - math.pi
        delta = math.atan2(2.0 * c.wheelbase_m * math.sin(alpha), max(float(np.hypot(*target)), 1e-3))
        if c.steer_noise > 0:
            self._noise = 0.9 * self._noise + c.steer_noise * float(self._rng.standard_normal())
        # Control steers right-positive; delta is a left-positive angle
        return -delta / MAX_STEER_RAD + self._noise

    def _pedals(self, p: Privileged) -> tuple[float, float]:
        c = self.config
        target = p.target_speed_mps * self._speed_scale
        if abs(p.curvature_ahead_1pm) > 1e-4:
            target = min(target, math.sqrt(c.max_lat_accel_mps2 / abs(p.curvature_ahead_1pm)))
        accel = 0.8 * (target - p.ego_speed_mps)
        if math.isfinite(p.lead_gap_m):
            want = c.standstill_gap_m + c.time_gap_s * p.ego_speed_mps
            accel = min(accel, 0.4 * (p.lead_gap_m - want) + 0.8 * (p.lead_speed_mps - p.ego_speed_mps))
        if accel >= 0:
            return min(accel / c.max_accel_mps2, 1.0), 0.0
        return 0.0, min(-accel / c.max_decel_mps2, 1.0)
