"""One closed-loop episode: reset, then per tick perceive -> observe -> act -> apply -> step, scored.

``run_episode(sim, agent, seed)`` is the loop ``edgepilot drive`` runs in the builtin world and
in CARLA (any ``Simulator`` with ``route_points_m``, ``target_speed_mps`` and ``max_steps``).
Each tick is synchronous: one frame per simulator step, nothing dropped (unless
``--latency-aware`` skips the frames the agent could not have seen, ``sim.agent.latency``).

- Perception: the camera frame goes through each perception bundle by the runtime's
  per-frame call (``Engine.make_processor()``: ``preprocess``, ``infer``, ``postprocess``
  stamped on the frame's timeline as in ``edgepilot run``).
- Observation: from the segmentation bundle's predicted class ids, or with ``privileged``
  from the simulator's ground-truth labels, through the same ``semantic_view``.
- Policy: ``DrivingPolicy.act`` (observation build + engine), stamped too.
- Score: ``sim.metrics.EpisodeMeter`` (Leaderboard-style), the same in every simulator. The
  episode ends on a collision the simulator terminates on, on leaving the road (as the
  training env: more than ``off_road_margin_m`` outside every lane; CARLA: its off-road event
  for ``off_road_ticks`` ticks), when the route is complete, or after ``max_steps``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.frame import Frame, SegMap
from edgepilot.runtime.processor import Processor
from edgepilot.sim.agent.action import Action
from edgepilot.sim.agent.latency import DelayedActuator
from edgepilot.sim.agent.observation import class_ids_from_tags
from edgepilot.sim.agent.policy import DrivingPolicy
from edgepilot.sim.agent.safety import EmergencyBrake
from edgepilot.sim.metrics import EpisodeMeter
from edgepilot.sim.types import Control, Observation, Simulator

STAGES = ("preprocess", "infer", "postprocess")


@dataclass
class PerceptionModel:
    """One perception bundle in the loop: its engine's per-frame call."""

    name: str  # "seg" or "det"
    bundle: Bundle
    engine: Any
    processor: Processor

    @classmethod
    def load(cls, path: str, backend: str = "ort", precision: str = "int8", **options: Any) -> PerceptionModel:
        from edgepilot.runtime.bundle import load_bundle
        from edgepilot.runtime.engines import load_engine

        bundle = load_bundle(path)
        name = {"segmentation": "seg", "detection": "det"}.get(bundle.task)
        if name is None:
            from edgepilot.runtime.errors import BundleError

            raise BundleError(f"--perception {path} is a {bundle.task} bundle: give segmentation or detection bundles")
        engine = load_engine(bundle, backend=backend, precision=precision, **options)
        return cls(name, bundle, engine, engine.make_processor())


@dataclass
class Tick:
    """What one tick saw and did (handed to ``on_tick``, e.g. the video writer)."""

    index: int
    observation: Observation
    outputs: dict[str, Any]  # "seg": SegMap, "det": Detections (what perception produced this tick)
    action: Action | None  # None: the agent did not see this frame (latency-aware skip)
    control: Control  # applied in this step
    view: np.ndarray | None  # the policy's input view (C, h, w)
    stages_ms: dict[str, float]


@dataclass
class Agent:
    """Perception bundles + policy. ``privileged``: the observation from ground-truth labels;
    ``brake``: the emergency brake (``sim.agent.safety``) on the policy's pedal, from the same map."""

    policy: DrivingPolicy
    perception: list[PerceptionModel] = field(default_factory=list)
    privileged: bool = False
    brake: EmergencyBrake | None = None

    def __post_init__(self) -> None:
        if not self.privileged and not any(p.name == "seg" for p in self.perception):
            from edgepilot.runtime.errors import EdgepilotError

            raise EdgepilotError("driving on predictions needs a segmentation bundle in --perception "
                                 "(or --privileged to drive on the simulator's ground truth)", exit_code=2)

    def perceive(self, obs: Observation, index: int) -> tuple[dict[str, Any], dict[str, float]]:
        """Every perception bundle on this tick's frame; (outputs by name, stage ms by 'name.stage')."""
        outputs: dict[str, Any] = {}
        stages: dict[str, float] = {}
        if not self.perception:
            return outputs, stages
        frame = Frame.captured(index, cv2.cvtColor(obs.image, cv2.COLOR_RGB2BGR))
        for model in self.perception:
            start = len(frame.timeline.stamps)
            before = time.perf_counter()
            outputs[model.name] = model.processor(frame)
            t = before
            for stage, stamp in frame.timeline.stamps[start:]:
                if stage in STAGES:
                    stages[f"{model.name}.{stage}"] = (stamp - t) * 1e3
                    t = stamp
            stages[f"{model.name}.total"] = (time.perf_counter() - before) * 1e3
        return outputs, stages

    def class_ids(self, obs: Observation, outputs: dict[str, Any]) -> np.ndarray:
        if self.privileged:
            if obs.labels is None:
                from edgepilot.runtime.errors import SimulatorError

                raise SimulatorError("--privileged needs the simulator's label image, and this one has none")
            return class_ids_from_tags(obs.labels)
        seg = outputs["seg"]
        assert isinstance(seg, SegMap)
        return seg.class_ids

    def describe(self) -> dict[str, Any]:
        return {"privileged": self.privileged, "policy": self.policy.describe() if self.policy is not None else None,
                "brake": self.brake.describe() if self.brake is not None else None,
                "perception": [{"name": p.name, "bundle": str(p.bundle.path), "engine": p.engine.describe()}
                               for p in self.perception]}

    def close(self) -> None:
        for p in self.perception:
            p.engine.close()
        if self.policy is not None:
            self.policy.close()


@dataclass
class EpisodeResult:
    seed: int
    scenario: str
    score: dict[str, Any]
    ended: str  # route_complete | collision | off_road | timeout
    ticks: int
    skipped_frames: int
    stages_ms: dict[str, list[float]]  # per-tick samples, by stage
    brake_ticks: int | None = None  # ticks the emergency brake overrode the pedal (None: no brake)

    def to_dict(self) -> dict[str, Any]:
        extra = {} if self.brake_ticks is None else {"brake_ticks": self.brake_ticks}
        return {"seed": self.seed, "scenario": self.scenario, "ended": self.ended, "ticks": self.ticks,
                "skipped_frames": self.skipped_frames, **extra, **self.score}


def left_road(sim: Simulator, obs: Observation, margin_m: float, off_ticks: int, patience: int) -> bool:
    """The training env's rule where the simulator has a lane graph (builtin ``off_lanes``);
    elsewhere (CARLA) its off-road event for ``patience`` ticks in a row."""
    if not obs.events.off_road:
        return False
    off_lanes = getattr(sim, "off_lanes", None)
    return bool(off_lanes(margin_m)) if off_lanes is not None else off_ticks >= patience


def run_episode(sim: Simulator, agent: Agent, seed: int, *, latency_aware: bool = False,
                latency_scale: float = 1.0, on_tick: Callable[[Tick], None] | None = None,
                max_steps: int = 0, off_road_margin_m: float = 1.0, off_road_ticks: int = 20) -> EpisodeResult:
    """Drive one episode of ``sim`` from ``seed`` (see the module docstring)."""
    obs = sim.reset(seed)
    routed: Any = sim
    agent.policy.reset(routed.route_points_m)
    if agent.brake is not None:
        agent.brake.reset()
    target = float(routed.target_speed_mps)
    limit = max_steps or int(routed.max_steps)
    dt_s = 1.0 / 20.0
    actuator = DelayedActuator(dt_s) if latency_aware else None
    meter = EpisodeMeter()
    samples: dict[str, list[float]] = {}
    ended, tick, off_ticks = "timeout", 0, 0
    while tick < limit:
        action: Action | None = None
        outputs: dict[str, Any] = {}
        stages: dict[str, float] = {}
        if actuator is None or actuator.ready(tick):
            t0 = time.perf_counter()
            outputs, stages = agent.perceive(obs, tick)
            class_ids = agent.class_ids(obs, outputs)
            action = agent.policy.act(class_ids, obs.ego, float(obs.info.get("progress_m", 0.0)), target)
            stages.update(agent.policy.last_ms)
            if agent.brake is not None:
                t1 = time.perf_counter()
                action = agent.brake.filter(class_ids, obs.ego, action, tick)
                stages["brake"] = (time.perf_counter() - t1) * 1e3
            stages["tick"] = (time.perf_counter() - t0) * 1e3
            for name, ms in stages.items():
                samples.setdefault(name, []).append(ms)
            if actuator is not None:
                actuator.submit(tick, latency_scale * stages["tick"] / 1e3, action.to_control())
        control = actuator.control_for(tick) if actuator is not None else action.to_control()  # type: ignore[union-attr]
        agent.policy.applied(Action.from_control(control))
        if on_tick is not None:
            view = agent.policy.last_observation["view"] if agent.policy.last_observation else None
            on_tick(Tick(tick, obs, outputs, action, control, view, stages))
        obs = sim.step(control)
        meter.update(obs)
        tick += 1
        off_ticks = off_ticks + 1 if obs.events.off_road else 0
        if float(obs.info.get("route_completion", 0.0)) >= 1.0:
            ended = "route_complete"
            break
        if obs.info.get("terminated"):  # the builtin world ends on a crash; CARLA drives on, as the Leaderboard
            ended = "collision"
            break
        if left_road(sim, obs, off_road_margin_m, off_ticks, off_road_ticks):
            ended = "off_road"
            break
    score = meter.score().to_dict()
    return EpisodeResult(seed, str(obs.info.get("scenario", getattr(sim, "name", ""))), score, ended, tick,
                         actuator.skipped if actuator else 0, samples,
                         agent.brake.engaged_ticks if agent.brake is not None else None)
