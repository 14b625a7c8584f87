"""The privileged scripted driver: the baseline an RL policy has to beat.

Pure-pursuit steering on the ground-truth lane centre, a speed target limited by
the curvature ahead, and gap keeping to the lead vehicle. Optional noise makes
datagen episodes differ from each other.

``DriverConfig(overtake=True)`` (off by default, so the baseline keeps its lane) adds lane
changes on straight multi-lane roads: when a slower vehicle holds the driver up, it moves to
the lane beside it (left first) if that lane's traffic ahead is farther and not slower, and the
gap behind in it is safe for the closing speed; while it changes lane it keeps its distance to
the leads of both lanes. It needs ``Privileged.lanes`` (``privileged(lanes=True)``).
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
    overtake: bool = False  # change lanes past slower traffic (needs Privileged.lanes)
    overtake_horizon_m: float = 60.0  # a lead this close and slower holds the driver up
    overtake_gain_mps: float = 2.0  # ... slower by this much than the driver wants to go
    overtake_rear_gap_m: float = 8.0  # the gap behind in the new lane, at least
    overtake_rear_time_s: float = 2.5  # ... plus this many seconds of its closing speed
    overtake_cooldown_ticks: int = 40  # between the end of one lane change and the next
    lane_change_lookahead: float = 1.5  # pure-pursuit distance scale while changing lanes

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
        self._target_lane: tuple | None = None
        self._cooldown = 0

    def act(self, p: Privileged, ego: EgoState) -> Control:
        """One control from the privileged view and the ego pose (world frame)."""
        if not self.config.overtake:
            return Control(self._steer(p.path_xy, ego), *self._pedals(p)).clipped()
        path, leads, scale = self._lane_plan(p)
        return Control(self._steer(path, ego, scale), *self._pedals(p, leads)).clipped()

    def _desired_speed(self, p: Privileged) -> float:
        target = p.target_speed_mps * self._speed_scale
        if abs(p.curvature_ahead_1pm) > 1e-4:
            target = min(target, math.sqrt(self.config.max_lat_accel_mps2 / abs(p.curvature_ahead_1pm)))
        return target

    def _lane_plan(self, p: Privileged) -> tuple[np.ndarray, list[tuple[float, float]], float]:
        """The path to follow, the leads to keep a distance to, and the lookahead scale."""
        c = self.config
        leads = [(p.lead_gap_m, p.lead_speed_mps)]
        self._cooldown = max(self._cooldown - 1, 0)
        if self._target_lane is not None:
            if p.lane_index == self._target_lane and abs(p.lateral_offset_m) < 0.5:
                self._target_lane, self._cooldown = None, c.overtake_cooldown_ticks  # arrived
            elif p.lane_index != self._target_lane:
                option = next((o for o in p.lanes if o.lane_index == self._target_lane), None)
                if option is None:  # the lane is gone (the road changed): stay where we are
                    self._target_lane = None
                else:
                    return option.path_xy, [*leads, (option.lead_gap_m, option.lead_speed_mps)], c.lane_change_lookahead
            return p.path_xy, leads, (c.lane_change_lookahead if self._target_lane is not None else 1.0)
        desired = self._desired_speed(p)
        held_up = p.lead_gap_m < c.overtake_horizon_m and p.lead_speed_mps < desired - c.overtake_gain_mps
        if held_up and self._cooldown == 0:
            want = c.standstill_gap_m + c.time_gap_s * p.ego_speed_mps
            for o in sorted(p.lanes, key=lambda o: o.side):  # left first
                better = o.lead_gap_m > max(p.lead_gap_m + 15.0, want) and (
                    o.lead_speed_mps >= p.lead_speed_mps + 1.0 or o.lead_gap_m > c.overtake_horizon_m)
                closing = max(o.rear_speed_mps - p.ego_speed_mps, 0.0)
                safe = o.rear_gap_m > c.overtake_rear_gap_m + c.overtake_rear_time_s * closing
                if better and safe:
                    self._target_lane = o.lane_index
                    return o.path_xy, [*leads, (o.lead_gap_m, o.lead_speed_mps)], c.lane_change_lookahead
        return p.path_xy, leads, 1.0

    def _steer(self, path_xy: np.ndarray, ego: EgoState, scale: float = 1.0) -> float:
        c = self.config
        lookahead = max(c.min_lookahead_m, c.lookahead_s * ego.speed_mps) * scale
        rel = path_xy - np.array([ego.x_m, ego.y_m])
        dist = np.linalg.norm(rel, axis=1)
        target = rel[min(int(np.searchsorted(dist, lookahead)), len(rel) - 1)] if len(rel) else np.zeros(2)
        alpha = math.atan2(target[1], target[0]) - ego.heading_rad  # left positive
        alpha = (alpha + math.pi) % (2 * math.pi) - math.pi
        delta = math.atan2(2.0 * c.wheelbase_m * math.sin(alpha), max(float(np.hypot(*target)), 1e-3))
        if c.steer_noise > 0:
            self._noise = 0.9 * self._noise + c.steer_noise * float(self._rng.standard_normal())
        # Control steers right-positive; delta is a left-positive angle
        return -delta / MAX_STEER_RAD + self._noise

    def _pedals(self, p: Privileged, leads: list[tuple[float, float]] | None = None) -> tuple[float, float]:
        c = self.config
        accel = 0.8 * (self._desired_speed(p) - p.ego_speed_mps)
        want = c.standstill_gap_m + c.time_gap_s * p.ego_speed_mps
        for gap, speed in leads if leads is not None else [(p.lead_gap_m, p.lead_speed_mps)]:
            if math.isfinite(gap):
                accel = min(accel, 0.4 * (gap - want) + 0.8 * (speed - p.ego_speed_mps))
        if accel >= 0:
            return min(accel / c.max_accel_mps2, 1.0), 0.0
        return 0.0, min(-accel / c.max_decel_mps2, 1.0)
