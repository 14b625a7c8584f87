"""BuiltinSimulator: highway-env traffic and roads, our camera, CARLA-style ground truth.

Per step: apply the control to highway-env's ego for one simulation tick, then
render RGB, labels and boxes from the same draw calls, and report events and
route progress. ``render=False`` skips the camera for fast metric-only runs;
``rgb=False`` renders the label image alone, for a policy that reads labels only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgepilot.runtime.errors import SimulatorError
from edgepilot.sim.builtin.appearance import Appearance, build_backdrop, label_backdrop
from edgepilot.sim.builtin.camera import PinholeCamera
from edgepilot.sim.builtin.geometry import BoxSet, build_static_world, to_world
from edgepilot.sim.builtin.ground import GroundTexture
from edgepilot.sim.builtin.render import Renderer
from edgepilot.sim.builtin.route import Privileged, Route, privileged_view, wrap
from edgepilot.sim.builtin.scenario import ScenarioConfig, load_scenario, make_env
from edgepilot.sim.route import RouteProgress
from edgepilot.sim.tags import TAG_IDS
from edgepilot.sim.types import CameraConfig, Control, EgoState, Events, Observation, Simulator

GLASS_RGB = np.array([35.0, 45.0, 55.0])


class BuiltinSimulator(Simulator):
    """The embedded world. ``scenario`` is a name in ``configs/sim`` or a ScenarioConfig.

    Options: ``seed`` (first episode's seed; later resets without a seed count up
    from it), ``render`` (False: a 1x1 black image and no labels, for fast driving
    metrics), ``rgb`` (False: labels only, the same labels as a full render, with a 1x1
    black image, no boxes and no ground textures), ``far_m`` (draw distance), and any
    ScenarioConfig field as an override.
    """

    name = "builtin"

    def __init__(self, scenario: str | ScenarioConfig = "highway", camera: CameraConfig | None = None,
                 seed: int | None = None, render: bool = True, far_m: float = 180.0,
                 rgb: bool = True, **overrides: Any) -> None:
        self.config = scenario if isinstance(scenario, ScenarioConfig) else load_scenario(scenario, **overrides)
        self.camera_config = camera or CameraConfig()
        self.render_enabled = render
        self.rgb_enabled = rgb
        self.camera = PinholeCamera(self.camera_config)
        self.renderer = Renderer(self.camera, far_m=far_m)
        self._next_seed = 0 if seed is None else int(seed)
        self.env = make_env(self.config)
        self.seed: int | None = None
        self._blank = np.zeros((1, 1, 3), np.uint8)
        self._actors: dict[int, tuple[Any, int, int, np.ndarray]] = {}

    # -- episode -----------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> Observation:
        """Start an episode; ``seed`` fixes traffic, scenery and appearance."""
        if self.env is None:
            raise SimulatorError("the builtin simulator is closed: make a new one")
        self.seed = self._next_seed if seed is None else int(seed)
        self._next_seed = self.seed + 1
        self.env.reset(seed=self.seed)
        rng = np.random.default_rng([self.seed, 0xB17])
        self._rng = rng
        self._actors = {}
        self._make_trucks(rng)
        ego = self.ego
        self.look = Appearance.sample(rng)
        world = build_static_world(self.env.road, self.config.scenery, self.look, ego.position.copy(), rng)
        if self.rgb_enabled:
            backdrop, texture = build_backdrop(self.look, self.camera, rng), GroundTexture.sample(rng)
        else:  # labels only: no colours, sensor noise or ground textures to prepare (labels draw no randoms)
            backdrop, texture = label_backdrop(self.camera), None
        self.renderer.begin_episode(world, self.look, backdrop, texture)
        self.route = Route(self.env.road.network, ego.lane_index, self.config.destination)
        s0 = ego.lane.local_coordinates(ego.position)[0]
        length_m = (self.route.length_from(ego.lane_index, s0) if self.config.destination
                    else self.config.route_length_m)
        self.route_progress = self._route_progress(length_m)
        self.frame, self.distance_m = 0, 0.0
        self._prev_pos = ego.position.copy()
        self._prev_lane = ego.lane_index
        self._was_crashed = False
        return self._observe(Events())

    def step(self, control: Control) -> Observation:
        """Advance one tick (1 / frequency_hz seconds) under ``control``."""
        if self.env is None or self.seed is None:
            raise SimulatorError("step() before reset(): call reset(seed) first")
        c = control.clipped()
        accel = c.throttle * self.config.max_accel_mps2 - c.brake * self.config.max_decel_mps2
        accel_range = max(self.config.max_accel_mps2, self.config.max_decel_mps2)
        # highway-env steers positive towards its +y, which is our right: same sign as Control
        action = np.array([accel / accel_range, c.steer])
        self.env.time += 1.0 / self.config.frequency_hz
        self.env._simulate(action)  # env.step would also build a pandas observation and rewards
        self.frame += 1
        return self._observe(self._events())

    def close(self) -> None:
        """Release highway-env; idempotent."""
        if self.env is not None:
            self.env.close()
            self.env = None

    # -- ground truth ------------------------------------------------------------------------

    @property
    def ego(self) -> Any:
        return self.env.vehicle

    @property
    def route_points_m(self) -> np.ndarray:
        """The episode's route, (N, 2) metres in EgoState's frame (for the policy's route headings)."""
        return self.route_progress.points_m

    @property
    def target_speed_mps(self) -> float:
        return float(self.config.target_speed_mps)

    @property
    def max_steps(self) -> int:
        """Ticks in an episode at most (its duration at the simulator's rate)."""
        return int(round(self.config.duration_s * self.config.frequency_hz))

    def off_lanes(self, margin_m: float) -> bool:
        """Is the ego's centre more than ``margin_m`` outside every lane of the road network?

        highway-env's own off-road flag (``Events.off_road``) also fires in the short gaps
        between the roundabout's entry lanes and its ring, where a driver is on the road.
        """
        position = self.ego.position
        return not any(lane.on_lane(position, margin=margin_m) for lane in self.env.road.network.lanes_list())

    def privileged(self, lanes: bool = False) -> Privileged:
        """Lane geometry, lead vehicle and speeds for the scripted baseline driver; with ``lanes``,
        the lanes beside the ego's and their traffic too (for ``DriverConfig.overtake``)."""
        return privileged_view(self.ego, self.env.road, self.route, self.config.target_speed_mps, lanes=lanes)

    def _route_progress(self, length_m: float) -> RouteProgress:
        """Progress tracker on the route polyline ahead of the ego, ``length_m`` long."""
        ego = self.ego
        try:
            return RouteProgress(self.route.polyline(ego.lane_index, ego.position, length_m))
        except ValueError as exc:
            raise SimulatorError(
                f"scenario {self.config.name!r} (seed {self.seed}): no road ahead of the ego to "
                f"route along ({length_m:.0f} m asked: {exc}); check its destination and route_length_m"
            ) from exc

    def _events(self) -> Events:
        ego = self.ego
        crashed_now = bool(ego.crashed) and not self._was_crashed
        self._was_crashed = bool(ego.crashed)
        lane = ego.lane_index
        invaded = lane != self._prev_lane and lane in self.env.road.network.all_side_lanes(self._prev_lane)
        self._prev_lane = lane
        self.distance_m += float(np.linalg.norm(ego.position - self._prev_pos))
        self._prev_pos = ego.position.copy()
        return Events(
            collision=crashed_now,
            collision_with=self._collision_kind() if crashed_now else "",
            lane_invasion=bool(invaded),
            off_road=not ego.on_road,
        )

    def _collision_kind(self) -> str:
        """What the ego hit: the nearest crashed road object ("static") or vehicle ("vehicle").

        Any obstacle ever hit stays ``crashed``, so the kind is decided by which crashed
        thing is nearest to the ego now, not by whether one exists anywhere.
        """
        ego = self.ego

        def nearest(things: Any) -> float:
            return min((float(np.linalg.norm(o.position - ego.position)) for o in things
                        if o is not ego and getattr(o, "crashed", False)), default=math.inf)

        return "static" if nearest(self.env.road.objects) < nearest(self.env.road.vehicles) else "vehicle"

    def observe(self) -> Observation:
        """Render the current state again without stepping (no events); for tests and tools."""
        if self.env is None or self.seed is None:
            raise SimulatorError("observe() before reset(): call reset(seed) first")
        return self._observe(Events())

    def _observe(self, events: Events) -> Observation:
        ego = self.ego
        x, y = to_world(ego.position)
        heading = wrap(-float(ego.heading))
        state = EgoState(float(x), float(y), heading, float(ego.speed))
        if self.render_enabled and self.rgb_enabled:
            image, labels, boxes = self.renderer.render((float(x), float(y), heading), self._vehicle_boxes(), self.frame)
        elif self.render_enabled:
            image, boxes = self._blank, ()
            labels = self.renderer.render_labels((float(x), float(y), heading), self._vehicle_boxes())
        else:
            image, labels, boxes = self._blank, None, ()
        sim_time = self.frame / self.config.frequency_hz
        completion = self.route_progress.update(float(x), float(y))
        info = {
            "route_completion": completion,
            "distance_m": self.distance_m,
            "progress_m": self.route_progress.progress_m,
            "route_length_m": self.route_progress.length_m,
            "terminated": bool(ego.crashed),
            "truncated": sim_time >= self.config.duration_s or completion >= 1.0,
            "scenario": self.config.name,
            "seed": self.seed,
        }
        return Observation(image, labels, boxes, state, events, sim_time, self.frame, info)

    # -- actors ------------------------------------------------------------------------------

    def _make_trucks(self, rng: np.random.Generator) -> None:
        """Lengthen a share of the traffic into trucks (highway-env has only 5 m cars)."""
        for v in self.env.road.vehicles:
            if v is not self.ego and rng.random() < self.config.truck_share:
                v.LENGTH, v.WIDTH = float(rng.uniform(8.0, 11.0)), 2.5
                v.diagonal = math.hypot(v.LENGTH, v.WIDTH)

    def _actor(self, v: Any) -> tuple[Any, int, int, np.ndarray]:
        """(vehicle, actor id, tag, colour), assigned on first sight in a deterministic order."""
        entry = self._actors.get(id(v))
        if entry is None:
            truck = v.LENGTH > 6.5
            rgb = self.look.car_colour(self._rng) if not truck else np.array([210.0, 205, 195]) * self._rng.uniform(0.6, 1.1)
            entry = (v, len(self._actors) + 1, TAG_IDS["Truck" if truck else "Car"], rgb)
            self._actors[id(v)] = entry
        return entry

    def _vehicle_boxes(self) -> BoxSet:
        """Body and cabin boxes of the other vehicles near the camera, plus road obstacles."""
        ego, rows = self.ego, []
        far = self.renderer.far_m + 20.0
        others = [v for v in self.env.road.vehicles if v is not ego]
        if others:  # one distance test for all of them; plain floats below (to_world negates y)
            rel = np.array([v.position for v in others]) - ego.position
            near = (np.sqrt(rel[:, 0] ** 2 + rel[:, 1] ** 2) <= far).tolist()
            others = [v for v, keep in zip(others, near, strict=True) if keep]
        truck = TAG_IDS["Truck"]
        for v in others:
            _, aid, tag, rgb = self._actor(v)
            x, y = float(v.position[0]), -float(v.position[1])
            yaw, hl, hw = -float(v.heading), v.LENGTH / 2, v.WIDTH / 2
            if tag == truck:
                rows.append((x, y, yaw, hl, hw, 0.3, 3.4, tag, rgb, aid))
                cx, cy = x + (hl - 1.0) * math.cos(yaw), y + (hl - 1.0) * math.sin(yaw)
                rows.append((cx, cy, yaw, 1.0, hw, 0.3, 2.9, tag, GLASS_RGB + 40, aid))
                continue
            rows.append((x, y, yaw, hl, hw, 0.2, 0.95, tag, rgb, aid))
            back = -0.1 * v.LENGTH
            rows.append((x + back * math.cos(yaw), y + back * math.sin(yaw), yaw, 0.27 * v.LENGTH,
                         0.88 * hw, 0.95, 1.5, tag, GLASS_RGB, aid))
        for o in self.env.road.objects:
            x, y = to_world(o.position)
            rows.append((x, y, -float(o.heading), o.LENGTH / 2, o.WIDTH / 2, 0.0, 1.0,
                         TAG_IDS["Static"], np.array([200.0, 120, 40]), -1))
        return BoxSet.from_rows(rows)
