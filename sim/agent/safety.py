"""Emergency braking beside the policy: full brake when the path ahead closes faster than it can stop.

The policy brakes too late for a stopped or much slower car ahead (the README's driving
section: its pedal for the states the scripted driver fully brakes in is short of data), and
a learned controller has no guarantee there. ``EmergencyBrake`` is the guard a driving stack
keeps outside its learned planner (an AEB function): it reads the same class-id map the
policy's view is built from (ground truth with ``--privileged``, the segmentation bundle's
prediction otherwise; one code path), so it works wherever the policy does, and it only ever
presses the brake harder: steering is the policy's.

Per tick:

1. **Range.** Every vehicle pixel is taken to touch the flat road and projected through the
   camera (``CameraConfig``: height, pitch, field of view, scaled to the map's resolution) to a
   point on the ground ahead. A car's lowest pixels are where it meets the road; its higher
   pixels project further out along their rays (further ahead and further sideways), so the
   nearest projected points are the car's contact with the road.
2. **Path.** The ego's path is the arc of its current curvature (yaw rate over speed, from
   the headings of the last ticks; both simulators report the heading), and the corridor is
   ``half_width_m`` either side of it. The range is the ``min_pixels``-th nearest vehicle point
   inside the corridor (so a speckle of mispredicted pixels is not a car).
3. **Closing speed.** The least-squares slope of the range over the ticks of the last
   ``window_ticks``, while the range moves continuously (a jump of more than ``jump_m`` between two
   ticks is another object: the history restarts), at most the ego's own speed (what a
   stopped car closes at; more is noise in the range).
4. **Decision.** Engage when stopping the closing speed within the gap left (range minus
   ``front_m`` to the ego's bumper, minus ``stop_gap_m``) needs more than ``trigger_mps2``:
   ``closing^2 / (2 gap) > trigger_mps2``, or when the gap is used up and still closing. While engaged the pedal is -1 (full brake); it
   releases once the closing speed falls below ``release_mps`` or the corridor is clear.

``trigger_mps2`` (3 m/s^2, half of the builtin world's 6 m/s^2 brake) leaves ordinary
following to the policy; the guard acts only where stopping needs hard braking. The defaults
were set on validation seeds 900-909, never on the held-out 1000+ the reports use.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import asdict, dataclass
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
    min_pixels: int = 3
    window_ticks: int = 8
    jump_m: float = 3.0  # plus jump_share of the range (a row of pixels spans more road further out)
    jump_share: float = 0.15
    trigger_mps2: float = 3.0
    release_mps: float = 0.3
    dt_s: float = 0.05  # one simulator tick (20 Hz)

    def __post_init__(self) -> None:
        positive = {"half_width_m": self.half_width_m, "max_range_m": self.max_range_m, "jump_m": self.jump_m,
                    "trigger_mps2": self.trigger_mps2, "dt_s": self.dt_s}
        bad = [k for k, v in positive.items() if not v > 0]
        if not 0 <= self.clearance_m < 1.0 or self.jump_share < 0:
            bad.append("clearance_m in [0, 1) and jump_share >= 0")
        if self.min_pixels < 1 or self.window_ticks < 3:
            bad.append("min_pixels >= 1 and window_ticks >= 3")
        if self.front_m < 0 or self.stop_gap_m < 0 or self.release_mps < 0:
            bad.append("front_m, stop_gap_m and release_mps >= 0")
        if bad:
            raise ValueError(f"BrakeConfig: {'; '.join(bad)} (positive unless said), got {self}")

    @classmethod
    def default_config(cls) -> BrakeConfig:
        return cls()


@functools.lru_cache(maxsize=8)
def ground_grid(height: int, width: int, camera: CameraConfig, clearance_m: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(forward_m, left_m), each (height, width): where each pixel's ray meets the plane
    ``clearance_m`` above the flat road, from the ego's centre, for a class-id map of that size
    from ``camera`` (intrinsics scaled to it). Rays at or above that plane's horizon get ``inf``
    forward."""
    sx, sy = width / camera.width, height / camera.height
    f = (camera.width / 2.0) / math.tan(math.radians(camera.fov_deg) / 2.0)
    fx, fy = f * sx, f * sy
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


def _first_row_within(forward: np.ndarray, max_range_m: float) -> int:
    """The first row whose ground point (centre column) is nearer than ``max_range_m``."""
    near = np.flatnonzero(forward[:, forward.shape[1] // 2] < max_range_m)
    return int(near[0]) if near.size else forward.shape[0]


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
        """Distance from the ego's centre to the nearest vehicle in the path corridor (inf: none)."""
        cfg = self.config
        forward, left = ground_grid(class_ids.shape[0], class_ids.shape[1], self.camera, cfg.clearance_m)
        top = _first_row_within(forward, cfg.max_range_m)  # rows above show nothing in range
        rows, cols = np.nonzero(_vehicle_table()[class_ids[top:]])
        rows += top
        if rows.size < cfg.min_pixels:
            return math.inf
        fwd, lat = forward[rows, cols], left[rows, cols]
        near = fwd < cfg.max_range_m
        fwd, lat = fwd[near], lat[near]
        inside = np.abs(lat - 0.5 * self.curvature * fwd * fwd) < cfg.half_width_m
        fwd = fwd[inside]
        if fwd.size < cfg.min_pixels:
            return math.inf
        return float(np.partition(fwd, cfg.min_pixels - 1)[cfg.min_pixels - 1])

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
        jump = cfg.jump_m + cfg.jump_share * rng
        if self._ranges and (not math.isfinite(rng) or abs(rng - self._ranges[-1][1]) > jump
                             or tick - self._ranges[-1][0] > cfg.window_ticks):
            self._ranges.clear()
        if math.isfinite(rng):
            self._ranges.append((tick, rng))
        while self._ranges and tick - self._ranges[0][0] >= cfg.window_ticks:
            self._ranges.popleft()
        closing = min(self.closing_mps(), ego.speed_mps)  # the car ahead does not reverse into us
        gap = rng - cfg.front_m - cfg.stop_gap_m
        need = closing * closing / (2.0 * max(gap, 0.05)) if closing > 0 else 0.0
        # a vehicle at the bottom edge of the map may be nearer than it reads, and its range no
        # longer changes: hold the brake while the ego moves or the policy asks for throttle
        hold = rng <= self._nearest_visible_m(class_ids.shape) + 0.5 and (ego.speed_mps > 0.1 or action.pedal > 0)
        if hold or (math.isfinite(rng) and closing >= cfg.release_mps and (need > cfg.trigger_mps2 or gap <= 0)):
            self.engaged = True
        elif not math.isfinite(rng) or closing < cfg.release_mps:
            self.engaged = False
        self.last = {"range_m": rng, "closing_mps": closing, "need_mps2": need}
        if not self.engaged:
            return action
        self.engaged_ticks += 1
        return Action(action.steer, -1.0)

    def describe(self) -> dict[str, Any]:
        return {"emergency_brake": asdict(self.config)}
