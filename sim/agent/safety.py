"""Emergency braking beside the policy: full brake when the path ahead closes faster than it can stop.

The policy brakes too late for a stopped or much slower car ahead (the README's driving
section: its pedal for the states the scripted driver fully brakes in is short of data), and
a learned controller has no guarantee there. ``EmergencyBrake`` is the guard a driving stack
keeps outside its learned planner (an AEB function): it reads the same class-id map the
policy's view is built from (ground truth with ``--privileged``, the segmentation bundle's
prediction otherwise; one code path), so it works wherever the policy does, and it only ever
presses the brake harder: steering is the policy's.

Per tick:

1. **Range.** In each image column the lowest vehicle pixel is taken to be where a car meets
   the road (``clearance_m`` above it) and projected through the camera (``CameraConfig``:
   height, pitch, field of view, scaled to the map's resolution) to a point on the road ahead.
   A column counts only if it shows at least ``min_height_m`` of vehicle at that range: a
   predicted map's thin strips of "vehicle" at the foot of a wall are not cars.
2. **Path.** The ego's path is the arc of its current curvature (yaw rate over speed, from
   the headings of the last ticks; both simulators report the heading), and the corridor is
   ``half_width_m`` either side of it. The range is the ``min_columns``-th nearest of the
   columns' points inside the corridor (so a speckle is not a car).
3. **Closing speed.** The least-squares slope of the range over the ticks of the last
   ``window_ticks``, while the range moves continuously (a jump of more than ``jump_m`` between two
   ticks is another object: the history restarts), at most the ego's own speed (what a
   stopped car closes at; more is noise in the range). A row of pixels spans metres of road
   far out (2.5 m at 26 m on a 256-row map), and a followed car whose edge steps one row looks
   like closing at several m/s over a short history; the decision uses the closing speed
   beyond what one row's step over the history's span can fake.
4. **Decision.** Engage when stopping that closing speed within the gap left (range minus
   ``front_m`` to the ego's bumper, minus ``stop_gap_m``, minus what ``reaction_s`` of closing
   eats while the estimate catches up) needs more than ``trigger_mps2``:
   ``closing^2 / (2 gap) > trigger_mps2``, or when the gap is used up and still closing. While
   engaged the pedal is -1 (full brake), held while a car it braked for sits at the map's bottom
   edge (nearer than the map can show, so its range stops changing); it
   releases once the closing speed falls below ``release_mps`` or the corridor has been clear
   for more than ``coast_ticks`` (a predicted map can lose a car for a tick or two).

``trigger_mps2`` (3 m/s^2, half of the builtin world's 6 m/s^2 brake) leaves ordinary
following to the policy; the guard acts only where stopping needs hard braking.

**Brake assist** (as a car's brake assist reads an emergency from how the driver presses the
pedal): while the policy itself brakes at least ``assist_pedal`` (-0.3), ``assist_need_mps2``
(1 m/s^2) is enough to engage. The policy sees a car ahead slow down before the pixel rows can
tell its range apart, and brakes, but too gently (pedal -0.3 to -0.8 where the scripted driver
fully brakes); the guard's own range says the car is closing. Two signals that agree brake
earlier than either alone. On the development seeds 2000-2039 (``benchmarks/results/brake_dev.json``)
it removed the policy's five collisions (two merge pile-ups, three roundabout) where the guard
without it removed four; ``-1`` turns it off.

The defaults were set on validation seeds 900-909 and development seeds 2000+, never on the
held-out 1000-1019 the reports use.

``drive`` turns it on by default since stage 13 shipped (``--no-emergency-brake`` drives the policy
alone): on fresh seeds 3000-3039 stage 13 with it was the one agent at or above the scripted
baseline on every scenario, and with perception in the loop on development seeds 2000-2009 it
lifted the score 0.922 -> 0.934 (``benchmarks/results/valb/README.md``, its rule written before
those runs). With stage 5 it had stayed off: with perception in the loop it changed nothing that
counts on the validation and development seeds (the README's tables). Limits: ranges come from pixel rows, so on the 96-row
label map of the privileged drive it comes on in time for a standing car only up to ~12 m/s, on
the segmentation bundle's 128 rows up to ~16 m/s (``benchmarks/brake_reach.py``); it assumes the
car ahead keeps its speed, so it is late for one that is itself braking hard; it sees only ahead
along the path, not a car coming in from the side. The README gives what it changed.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from edgepilot.perception.classes import SEGMENTATION
from edgepilot.sim.agent.action import Action
from edgepilot.sim.types import CameraConfig, EgoState

VEHICLE_CLASSES = ("vehicle", "person")


@dataclass(frozen=True, slots=True)
class BrakeConfig:
    """Distances in metres, speeds in m/s, decelerations in m/s^2, measured from the ego's centre."""

    half_width_m: float = 1.2  # corridor either side of the path: the ego's half width (1.0) + margin
    clearance_m: float = 0.2  # height of a vehicle's lowest visible edge (builtin bodies: 0.2 m; CARLA's
    #                           tyres touch the road, where this reads ranges ~12% short: more caution)
    front_m: float = 2.5  # ego centre to its front bumper
    stop_gap_m: float = 2.0  # bumper gap to stop at
    max_range_m: float = 80.0
    min_columns: int = 3  # image columns that must show the car
    min_height_m: float = 0.6  # of vehicle a column must show at its range (car bodies: 0.2-1.5 m)
    window_ticks: int = 16
    jump_m: float = 3.0  # plus a row and a half of range (a row of pixels spans more road further out)
    trigger_mps2: float = 3.0
    reaction_s: float = 0.3  # the gap shrinks by this much closing before the brake bites (estimate lag)
    coast_ticks: int = 5  # ticks a car in the path may go unseen (segmentation flicker) and still count
    release_mps: float = 0.3
    dt_s: float = 0.05  # one simulator tick (20 Hz)
    # brake assist: while the policy itself brakes at least this hard (pedal <= assist_pedal), a lower
    # need engages the guard (assist_need_mps2 instead of trigger_mps2); -1 turns it off
    assist_pedal: float = -0.3
    assist_need_mps2: float = 1.0

    def __post_init__(self) -> None:
        positive = {"half_width_m": self.half_width_m, "max_range_m": self.max_range_m, "jump_m": self.jump_m,
                    "trigger_mps2": self.trigger_mps2, "dt_s": self.dt_s}
        bad = [k for k, v in positive.items() if not v > 0]
        if not 0 <= self.clearance_m < 1.0:
            bad.append("clearance_m in [0, 1)")
        if self.min_columns < 1 or self.window_ticks < 3 or self.min_height_m < 0:
            bad.append("min_columns >= 1, window_ticks >= 3 and min_height_m >= 0")
        if not -1.0 <= self.assist_pedal <= 0.0 or not self.assist_need_mps2 >= 0:
            bad.append("assist_pedal in [-1, 0] and assist_need_mps2 >= 0")
        if self.front_m < 0 or self.stop_gap_m < 0 or self.release_mps < 0 or self.reaction_s < 0 or self.coast_ticks < 0:
            bad.append("front_m, stop_gap_m, release_mps, reaction_s and coast_ticks >= 0")
        if bad:
            raise ValueError(f"BrakeConfig: {'; '.join(bad)} (positive unless said), got {self}")

    @classmethod
    def default_config(cls) -> BrakeConfig:
        return cls()

    @classmethod
    def from_overrides(cls, items: list[str] | tuple[str, ...]) -> BrakeConfig:
        """The defaults with ``KEY=VALUE`` fields over them (benchmark scripts' ``--set``/``--variant``);
        an unknown key or a value that is not a number is a ValueError naming the fields."""
        types = {f.name: f.type for f in fields(cls)}
        kw: dict[str, Any] = {}  # each value int or float, by its field
        for item in items:
            key, _, value = item.partition("=")
            if key not in types:
                raise ValueError(f"BrakeConfig: {key!r} is not a field (one of {', '.join(types)})")
            try:
                kw[key] = int(value) if types[key] in (int, "int") else float(value)
            except ValueError:
                raise ValueError(f"BrakeConfig: {item!r} needs a number after '='") from None
        return cls(**kw)


def focal_px(camera: CameraConfig, rows: int) -> float:
    """The focal length in pixels of ``camera`` on a map ``rows`` high (its intrinsics scaled)."""
    return (camera.width / 2.0) / math.tan(math.radians(camera.fov_deg) / 2.0) * rows / camera.height


@functools.lru_cache(maxsize=8)
def ground_grid(height: int, width: int, camera: CameraConfig, clearance_m: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(forward_m, left_m), each (height, width): where each pixel's ray meets the plane
    ``clearance_m`` above the flat road, from the ego's centre, for a class-id map of that size
    from ``camera`` (intrinsics scaled to it). Rays at or above that plane's horizon get ``inf``
    forward."""
    fy = focal_px(camera, height)
    fx = fy * (width / camera.width) / (height / camera.height)
    xn = ((np.arange(width) + 0.5) - width / 2.0) / fx  # (W,) right over depth
    yn = ((np.arange(height) + 0.5) - height / 2.0) / fy  # (H,) down over depth
    pitch = math.radians(camera.pitch_deg)
    cp, sp = math.cos(pitch), math.sin(pitch)
    down = yn * cp + sp  # (H,) the ray's downward component per unit depth
    with np.errstate(divide="ignore"):
        t = np.where(down > 1e-6, (camera.z_m - clearance_m) / np.maximum(down, 1e-6), np.inf)  # (H,) depth
    forward = camera.x_m + t * (cp - yn * sp)  # (H,)
    forward_hw = np.where(np.isfinite(t), forward, np.inf)[:, None] * np.ones((1, width))
    left_hw = -(np.where(np.isfinite(t), t, 0.0)[:, None] * xn[None, :])
    for a in (forward_hw, left_hw):
        a.flags.writeable = False
    return forward_hw, left_hw


@functools.lru_cache(maxsize=1)
def _vehicle_table() -> np.ndarray:
    table = np.zeros(256, bool)
    for name in VEHICLE_CLASSES:
        table[SEGMENTATION.names.index(name)] = True
    return table


class EmergencyBrake:
    """``reset()`` per episode, then ``filter(class_ids, ego, action)`` per tick (see the module docstring)."""

    def __init__(self, camera: CameraConfig, config: BrakeConfig | None = None) -> None:
        self.camera, self.config = camera, config or BrakeConfig()
        self._ranges: deque[tuple[int, float]] = deque()  # (tick, range_m)
        self._heading: tuple[int, float] | None = None  # (tick, heading_rad)
        self.curvature = 0.0  # 1/m, positive turning left
        self.engaged = False
        self.engaged_ticks = 0  # ticks this episode the guard overrode the pedal
        self.last: dict[str, float] = {}

    def reset(self) -> None:
        self._ranges.clear()
        self._heading, self.curvature, self.engaged, self.engaged_ticks = None, 0.0, False, 0
        self.last = {}

    def range_m(self, class_ids: np.ndarray) -> float:
        """Distance from the ego's centre to the nearest vehicle in the path corridor (inf: none).

        One candidate per image column: its lowest vehicle pixel (the nearest road contact the
        column shows), kept if the column holds at least ``min_height_m`` of vehicle at that range
        (a thin strip at the foot of a wall, a mislabel a few rows high, is not a car) and if it
        lies in the corridor; the range is the ``min_columns``-th nearest.
        """
        cfg = self.config
        h, w = class_ids.shape
        forward, left = ground_grid(h, w, self.camera, cfg.clearance_m)
        mask = _vehicle_table()[class_ids]  # (H, W)
        count = np.count_nonzero(mask, axis=0)  # (W,) vehicle pixels per column
        cols = np.flatnonzero(count)
        if cols.size < cfg.min_columns:
            return math.inf
        bottom = h - 1 - np.argmax(mask[::-1, cols], axis=0)  # lowest vehicle row per column
        fwd, lat = forward[bottom, cols], left[bottom, cols]
        in_range = fwd < cfg.max_range_m  # (rows at or above the horizon read inf)
        fwd, lat, cols = fwd[in_range], lat[in_range], cols[in_range]
        depth = np.maximum(fwd - self.camera.x_m, 0.1)
        keep = ((count[cols] >= cfg.min_height_m * focal_px(self.camera, h) / depth)
                & (np.abs(lat - 0.5 * self.curvature * fwd * fwd) < cfg.half_width_m))
        fwd = fwd[keep]
        if fwd.size < cfg.min_columns:
            return math.inf
        return float(np.partition(fwd, cfg.min_columns - 1)[cfg.min_columns - 1])

    def _row_m(self, range_m: float, height: int) -> float:
        """Road one pixel row spans at ``range_m`` on a map ``height`` rows high (flat road, level camera)."""
        depth = max(range_m - self.camera.x_m, 0.1)
        return depth * depth / (focal_px(self.camera, height) * (self.camera.z_m - self.config.clearance_m))

    def _nearest_visible_m(self, shape: tuple[int, ...]) -> float:
        """The shortest range the map can show: its bottom row's, straight ahead."""
        forward, _ = ground_grid(shape[0], shape[1], self.camera, self.config.clearance_m)
        return float(forward[-1, shape[1] // 2])

    def _update_curvature(self, ego: EgoState, tick: int) -> None:
        if self._heading is not None and ego.speed_mps > 1.0 and tick > self._heading[0]:
            turn = (ego.heading_rad - self._heading[1] + math.pi) % (2 * math.pi) - math.pi
            rate = turn / ((tick - self._heading[0]) * self.config.dt_s)  # rad/s
            self.curvature = 0.7 * self.curvature + 0.3 * rate / ego.speed_mps
        self._heading = (tick, ego.heading_rad)

    def _track(self, rng: float, tick: int, row_m: float) -> None:
        """Add a range to the history; a jump (beyond ``jump_m`` and a row and a half) or a long gap
        starts a new one (another object)."""
        cfg = self.config
        if self._ranges and (abs(rng - self._ranges[-1][1]) > cfg.jump_m + 1.5 * row_m
                             or tick - self._ranges[-1][0] > cfg.window_ticks):
            self._ranges.clear()
        self._ranges.append((tick, rng))
        while tick - self._ranges[0][0] >= cfg.window_ticks:
            self._ranges.popleft()

    def closing_mps(self) -> float:
        """Least-squares closing speed over the range history (0 with fewer than 3 samples)."""
        if len(self._ranges) < 3:
            return 0.0
        ticks, ranges = np.asarray(self._ranges).T
        slope = np.polyfit(ticks * self.config.dt_s, ranges, 1)[0]
        return float(-slope)

    def filter(self, class_ids: np.ndarray, ego: EgoState, action: Action, tick: int) -> Action:
        """The action to apply on simulator tick ``tick``: the policy's, or with the pedal at -1
        while the guard is engaged. Ticks may skip (latency-aware driving); the rates use them."""
        cfg = self.config
        self._update_curvature(ego, tick)
        rng = self.range_m(class_ids)
        if math.isfinite(rng):
            row = self._row_m(rng, class_ids.shape[0])
            self._track(rng, tick, row)
            closing = min(self.closing_mps(), ego.speed_mps)  # the car ahead does not reverse into us
            # what one pixel row of range can fake over the history's span (a car's edge that
            # steps a row shows as closing); the decision uses the closing speed beyond it
            span_s = (self._ranges[-1][0] - self._ranges[0][0]) * cfg.dt_s
            sure = closing - row / span_s if span_s > 0 else 0.0
            gap = rng - cfg.front_m - cfg.stop_gap_m - sure * cfg.reaction_s
            need = sure * sure / (2.0 * max(gap, 0.05)) if sure > 0 else 0.0
            # a car braked for that reaches the map's bottom edge may be nearer than it reads, and its
            # range no longer changes: hold the brake while the ego moves or the policy asks for throttle
            hold = (self.engaged and rng <= self._nearest_visible_m(class_ids.shape) + 0.5
                    and (ego.speed_mps > 0.1 or action.pedal > 0))
            # brake assist: the policy brakes hard on its own, so a lower need is enough (two signals agree)
            trigger = (cfg.assist_need_mps2 if cfg.assist_pedal > -1.0 and action.pedal <= cfg.assist_pedal
                       else cfg.trigger_mps2)
            if hold or (sure >= cfg.release_mps and (need > trigger or gap <= 0)):
                self.engaged = True
            elif closing < cfg.release_mps:
                self.engaged = False
        else:  # nothing in the path: a car the map lost for a tick or two is still there (coast)
            closing, need = 0.0, 0.0
            if not self._ranges or tick - self._ranges[-1][0] > cfg.coast_ticks:
                self._ranges.clear()
                self.engaged = False
        self.last = {"range_m": rng, "closing_mps": closing, "need_mps2": need}
        if not self.engaged:
            return action
        self.engaged_ticks += 1
        return Action(action.steer, -1.0)

    def describe(self) -> dict[str, Any]:
        """Its settings (``BrakeConfig`` as a dict), for the report."""
        return asdict(self.config)
