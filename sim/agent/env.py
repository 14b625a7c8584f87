"""``edgepilot/Drive-v0``: a Gymnasium environment over the builtin world for the driving policy.

    import gymnasium as gym
    env = gym.make("edgepilot.sim.agent:edgepilot/Drive-v0")  # or import edgepilot.sim.agent first
    obs, info = env.reset(seed=0, options={"scenario": "roundabout"})

One env for the four scenarios (``highway``, ``racetrack``, ``roundabout``, ``merge``):
each reset picks ``options["scenario"]`` or one of ``DriveConfig.scenarios`` from the
env's seeded generator, and the world's episode seed from ``options["sim_seed"]`` or
the same generator, so ``reset(seed=s)`` replays the same episode. The world renders
labels only (``BuiltinSimulator(rgb=False)``) at ``DriveConfig.camera``'s resolution.

Observation (``sim.agent.observation``): ``{"view": Box(0, 255, (C*F, h, w), uint8),
"vector": Box(-1, 1, (D,), float32)}``, the semantic view of the label image and the
ego speed, target speed, route headings ahead and the previous action.
Action (``sim.agent.action``): ``Box(-1, 1, (2,), float32)``, (steer, pedal).

Reward per step: the sum of these terms (weights in ``RewardConfig``; ``s`` is route
progress from ``sim.route.RouteProgress``, ``v`` the speed, ``v_t`` the scenario's
target speed, ``dt`` 0.05 s; every term is in ``info["reward_terms"]``):

| term | value | weight | why |
| --- | --- | --- | --- |
| progress | ``min(ds / (v_t dt), 1)`` | +1.0 | drive along the route; 1 a step at ``v_t``. Summed over an episode it is the route length over ``v_t dt`` whatever the speed, so finishing early loses nothing and the discount makes sooner better |
| overspeed | ``max(v / v_t - 1, 0)`` | -1.0 | progress is capped at ``v_t``; going faster only costs |
| lane_offset | ``min((lateral / 2 m)^2, 1)`` | -0.1 | stay near the centre of a lane (any lane: lane changes cost only while between lanes) |
| heading | ``min((heading error / (pi/4))^2, 1)`` | -0.1 | point along the lane |
| steer_change | ``(steer - previous steer)^2`` | -0.3 | smooth steering, no bang-bang |
| pedal_change | ``(pedal - previous pedal)^2`` | -0.05 | smooth throttle and brake |
| collision | 1 on the first contact | -10 | and the episode terminates |
| off_road | 1 when the ego has left the road | -10 | and the episode terminates |

An episode terminates on the first collision, on leaving the road, or when the route
is complete (no bonus: its progress has been paid), and is truncated after
``max_steps`` (0: the scenario's ``duration_s`` at 20 Hz). Leaving the road means the
ego's centre is more than ``off_road_margin_m`` outside every lane: highway-env's own
off-road flag (``Events.off_road``) also fires in the short gaps between the
roundabout's entry lanes and its ring, where the scripted driver is on the road.
At the end of an episode ``info["score"]`` holds its Leaderboard-style score
(``sim.metrics.EpisodeMeter``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgepilot.runtime.errors import require
from edgepilot.sim.agent.action import ACTION_HIGH, ACTION_LOW, ACTION_SIZE, Action
from edgepilot.sim.agent.observation import (
    ObservationBuilder,
    ObservationConfig,
    class_ids_from_tags,
)
from edgepilot.sim.agent.reward import RewardConfig, StepFacts, reward_terms
from edgepilot.sim.builtin.world import BuiltinSimulator
from edgepilot.sim.metrics import EpisodeMeter
from edgepilot.sim.types import CameraConfig, Observation

gym: Any = require("gymnasium", "sim", "the driving env")
GymEnv: Any = gym.Env  # a base class mypy takes as Any: gymnasium is an extra, imported via require

SCENARIOS = ("highway", "racetrack", "roundabout", "merge")
# render_mode="rgb_array": a colour per view channel (road, lane lines, vehicles, other)
VIEW_RGB = np.array([[90, 90, 100], [255, 255, 255], [40, 110, 255], [255, 150, 40]], np.uint8)


@dataclass(frozen=True, slots=True)
class DriveConfig:
    """The env's settings; ``DriveEnv(**overrides)`` replaces fields of the defaults.

    ``camera`` sets the label image's resolution (twice the view's, so thin lines
    average into the view) and geometry (the perception camera's: a policy must drive
    on predictions from the same view).
    """

    scenarios: tuple[str, ...] = SCENARIOS
    camera: CameraConfig = field(default_factory=lambda: CameraConfig(width=192, height=96))
    observation: ObservationConfig = field(default_factory=ObservationConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    max_steps: int = 0  # 0: the scenario's duration
    off_road_margin_m: float = 1.0
    far_m: float = 180.0
    # world seeds drawn at reset (without options["sim_seed"]) come from [low, high): training
    # draws from 100000 up, so the evaluation seeds below it (validation 900-999, test 1000+)
    # are never trained on
    sim_seed_range: tuple[int, int] = (100_000, 2**31 - 1)

    @classmethod
    def default_config(cls) -> DriveConfig:
        return cls()


class DriveEnv(GymEnv):
    """The builtin world as a Gymnasium env (see the module docstring for the contract)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, config: DriveConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        self.config = dataclasses.replace(config or DriveConfig(), **overrides)
        if not self.config.scenarios:
            raise ValueError("DriveConfig.scenarios is empty: name at least one scenario")
        self.render_mode = render_mode
        self.builder = ObservationBuilder(self.config.observation)
        obs_cfg = self.config.observation
        self.observation_space = gym.spaces.Dict({
            "view": gym.spaces.Box(0, 255, obs_cfg.view_shape, np.uint8),
            "vector": gym.spaces.Box(-1.0, 1.0, (obs_cfg.vector_size,), np.float32),
        })
        self.action_space = gym.spaces.Box(ACTION_LOW, ACTION_HIGH, (ACTION_SIZE,), np.float32)
        self._sims: dict[str, BuiltinSimulator] = {}
        self._sim: BuiltinSimulator | None = None
        self._sim_obs: Observation | None = None
        self._last: dict[str, np.ndarray] | None = None

    @property
    def simulator(self) -> BuiltinSimulator | None:
        """The world of the current episode (None before the first reset); for the scripted
        driver (``simulator.privileged()``), benchmarks and tests, never for the policy."""
        return self._sim

    @property
    def sim_observation(self) -> Observation | None:
        """The simulator's latest ``Observation`` (ego state, events, labels, info)."""
        return self._sim_obs

    # -- episode -----------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None
              ) -> tuple[dict[str, np.ndarray], dict]:
        super().reset(seed=seed)
        options = options or {}
        scenarios = self.config.scenarios
        scenario = options.get("scenario") or scenarios[int(self.np_random.integers(len(scenarios)))]
        low, high = self.config.sim_seed_range
        sim_seed = int(options["sim_seed"]) if "sim_seed" in options else int(self.np_random.integers(low, high))
        sim = self._world(str(scenario))
        obs = sim.reset(sim_seed)
        self._sim, self._sim_obs, self._meter = sim, obs, EpisodeMeter()
        self._previous, self._progress_m, self._steps = Action(), 0.0, 0
        self._dt_s = 1.0 / sim.config.frequency_hz
        self._max_steps = self.config.max_steps or int(round(sim.config.duration_s * sim.config.frequency_hz))
        self.builder.reset(sim.route_progress.points_m)
        observation = self._observation(obs, self._previous)
        return observation, self._info(obs, {}, done=False)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        sim = self._sim
        if sim is None:
            raise RuntimeError("DriveEnv.step before reset: call reset() first")
        act = Action.from_array(action)
        obs = sim.step(act.to_control())
        self._sim_obs = obs
        self._steps += 1
        self._meter.update(obs)
        off_road = obs.events.off_road and sim.off_lanes(self.config.off_road_margin_m)
        lateral_m, heading_rad = _lane_pose(sim.ego)
        progress_m = float(obs.info["progress_m"])
        facts = StepFacts(
            progress_m=progress_m - self._progress_m, speed_mps=obs.ego.speed_mps,
            target_speed_mps=sim.config.target_speed_mps, dt_s=self._dt_s,
            lateral_offset_m=lateral_m, heading_error_rad=heading_rad, action=act,
            previous=self._previous, collision=obs.events.collision, off_road=off_road,
        )
        terms = reward_terms(facts, self.config.reward)
        self._progress_m, self._previous = progress_m, act
        route_done = obs.info["route_completion"] >= 1.0
        terminated = bool(obs.events.collision or off_road or route_done)
        truncated = not terminated and self._steps >= self._max_steps
        observation = self._observation(obs, act)
        info = self._info(obs, terms, done=terminated or truncated)
        info.update(route_done=route_done, off_road=off_road)
        return observation, float(sum(terms.values())), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """rgb_array: the last view, (h, w, 3) uint8, one colour per channel (the strongest wins)."""
        if self.render_mode != "rgb_array" or self._last is None:
            return None
        c = len(self.config.observation.channels)
        view = self._last["view"][-c:]  # (C, h, w), the newest frame
        strongest = view.argmax(axis=0)
        share = view.max(axis=0, keepdims=True).transpose(1, 2, 0) / 255.0
        return (VIEW_RGB[strongest % len(VIEW_RGB)] * share).astype(np.uint8)

    def close(self) -> None:
        for sim in self._sims.values():
            sim.close()
        self._sims, self._sim = {}, None

    # -- helpers -----------------------------------------------------------------------------

    def _world(self, scenario: str) -> BuiltinSimulator:
        """The labels-only world of ``scenario``, built on first use and kept for later resets."""
        if scenario not in self._sims:
            self._sims[scenario] = BuiltinSimulator(scenario, self.config.camera, rgb=False,
                                                    far_m=self.config.far_m)
        return self._sims[scenario]

    def _observation(self, obs: Observation, previous: Action) -> dict[str, np.ndarray]:
        assert obs.labels is not None and self._sim is not None  # the world renders labels
        self._last = self.builder.build(class_ids_from_tags(obs.labels), obs.ego, float(obs.info["progress_m"]),
                                        self._sim.config.target_speed_mps, previous)
        return self._last

    def _info(self, obs: Observation, terms: dict[str, float], done: bool) -> dict:
        info = {
            "scenario": obs.info["scenario"], "sim_seed": obs.info["seed"],
            "route_completion": obs.info["route_completion"], "progress_m": obs.info["progress_m"],
            "speed_mps": obs.ego.speed_mps, "collision_with": obs.events.collision_with,
            "reward_terms": terms,
        }
        if done:
            info["score"] = self._meter.score().to_dict()
        return info


def _lane_pose(ego: Any) -> tuple[float, float]:
    """(lateral offset from the lane centre, left positive, m; heading error, rad), as in
    ``Privileged`` but without its path and lead-vehicle search (~0.2 ms a step)."""
    lane = ego.lane
    s, lat = lane.local_coordinates(ego.position)
    heading = -float(ego.heading) + float(lane.heading_at(s))  # highway-env's y is down: negate
    return -float(lat), (heading + math.pi) % (2 * math.pi) - math.pi

