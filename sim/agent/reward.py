"""The driving env's reward: a pure function of what happened in one step, term by term.

``reward_terms(facts, weights)`` returns every term (already weighted, penalties
negative); the env's reward is their sum and ``info["reward_terms"]`` carries them.
What each term measures, its weight and why are in the table of
``edgepilot.sim.agent.env``'s docstring; the weights live in :class:`RewardConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgepilot.sim.agent.action import Action


@dataclass(frozen=True, slots=True)
class RewardConfig:
    """Weights of the terms (per step) and the scales that normalise them."""

    progress: float = 1.0
    overspeed: float = 1.0
    lane_offset: float = 0.1
    heading: float = 0.1
    steer_change: float = 0.3
    pedal_change: float = 0.05
    collision: float = 10.0
    off_road: float = 10.0
    lane_offset_ref_m: float = 2.0  # half a 4 m lane: the offset that costs the full weight
    heading_ref_rad: float = math.pi / 4  # the heading error that costs the full weight

    @classmethod
    def default_config(cls) -> RewardConfig:
        return cls()


@dataclass(frozen=True, slots=True)
class StepFacts:
    """One step as the reward sees it. Metres, m/s, seconds, radians."""

    progress_m: float  # route progress gained this step (RouteProgress), >= 0
    speed_mps: float
    target_speed_mps: float
    dt_s: float
    lateral_offset_m: float  # from the centre of the ego's lane, left positive
    heading_error_rad: float  # ego heading minus lane heading
    action: Action  # applied this step
    previous: Action  # applied the step before (zeros after a reset)
    collision: bool  # first contact this step
    off_road: bool  # left the road this step


def reward_terms(f: StepFacts, w: RewardConfig) -> dict[str, float]:
    """Each weighted term of one step's reward (names as in the env's docstring table)."""
    at_target_m = max(f.target_speed_mps * f.dt_s, 1e-6)  # what one step covers at the target speed
    target = max(f.target_speed_mps, 1e-6)
    return {
        "progress": w.progress * min(max(f.progress_m, 0.0) / at_target_m, 1.0),
        "overspeed": -w.overspeed * max(f.speed_mps / target - 1.0, 0.0),
        "lane_offset": -w.lane_offset * min((f.lateral_offset_m / w.lane_offset_ref_m) ** 2, 1.0),
        "heading": -w.heading * min((f.heading_error_rad / w.heading_ref_rad) ** 2, 1.0),
        "steer_change": -w.steer_change * (f.action.steer - f.previous.steer) ** 2,
        "pedal_change": -w.pedal_change * (f.action.pedal - f.previous.pedal) ** 2,
        "collision": -w.collision * float(f.collision),
        "off_road": -w.off_road * float(f.off_road),
    }
