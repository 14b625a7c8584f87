"""The emergency brake (``sim.agent.safety``): range from a class-id map, closing speed, when it brakes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgepilot.perception.classes import SEGMENTATION
from edgepilot.sim.agent.action import Action
from edgepilot.sim.agent.safety import BrakeConfig, EmergencyBrake, ground_grid
from edgepilot.sim.builtin.camera import PinholeCamera
from edgepilot.sim.types import CameraConfig, EgoState

CAMERA = CameraConfig(width=512, height=256)
ROAD, VEHICLE = SEGMENTATION.names.index("road"), SEGMENTATION.names.index("vehicle")
CLEAR = BrakeConfig().clearance_m


def scene(rear_m: float | None, left_m: float = 0.0, shape: tuple[int, int] = (256, 512),
          half_width_m: float = 0.9, top_m: float = 1.4) -> np.ndarray:
    """A class-id map of road with, if ``rear_m``, the rear face of a car ``rear_m`` ahead of the
    ego's centre (``left_m`` to its left), from ``CLEAR`` to ``top_m`` above the road, as the
    pinhole camera of ``CAMERA`` scaled to ``shape`` sees it."""
    h, w = shape
    ids = np.full(shape, ROAD, np.uint8)
    if rear_m is None:
        return ids
    f = (CAMERA.width / 2) / math.tan(math.radians(CAMERA.fov_deg) / 2)
    fx, fy = f * w / CAMERA.width, f * h / CAMERA.height
    depth = rear_m - CAMERA.x_m
    bottom = h / 2 + fy * (CAMERA.z_m - CLEAR) / depth
    top = h / 2 + fy * (CAMERA.z_m - top_m) / depth
    right, left = w / 2 + fx * (-left_m + half_width_m) / depth, w / 2 + fx * (-left_m - half_width_m) / depth
    r0, r1 = max(int(math.floor(top)), 0), min(int(math.ceil(bottom)), h)
    c0, c1 = max(int(math.floor(left)), 0), min(int(math.ceil(right)), w)
    ids[r0:r1, c0:c1] = VEHICLE
    return ids


def ego(speed_mps: float, heading_rad: float = 0.0) -> EgoState:
    return EgoState(0.0, 0.0, heading_rad, speed_mps)


def test_ground_grid_agrees_with_the_builtin_camera():
    """A point on the road 20 m ahead projects (builtin PinholeCamera) to the pixel whose ground point is 20 m ahead."""
    cam = PinholeCamera(CAMERA)
    cam.set_pose(0.0, 0.0, 0.0)
    forward, left = ground_grid(CAMERA.height, CAMERA.width, CAMERA)
    for ahead, side in ((20.0, 0.0), (12.0, 2.0), (30.0, -3.5)):
        u, v = cam.project(cam.to_camera(np.array([ahead, side, 0.0])))
        row, col = int(v), int(u)
        assert forward[row, col] == pytest.approx(ahead, rel=0.06)
        assert left[row, col] == pytest.approx(side, abs=0.1 + 0.03 * ahead)
    assert math.isinf(forward[0, 0]) and math.isinf(forward[CAMERA.height // 2 - 1, 10])  # the sky


@pytest.mark.parametrize("shape", [(256, 512), (128, 256)])
def test_range_reads_a_car_in_the_path_and_ignores_one_in_the_next_lane(shape):
    brake = EmergencyBrake(CAMERA)
    for rear in (8.0, 15.0, 25.0):
        row_span = rear * rear / ((CAMERA.z_m - CLEAR) * 256 * shape[0] / 256)  # metres per pixel row there
        assert brake.range_m(scene(rear, shape=shape)) == pytest.approx(rear, abs=0.2 + row_span)
    assert math.isinf(brake.range_m(scene(12.0, left_m=3.5, shape=shape)))  # the next lane
    assert math.isinf(brake.range_m(scene(None, shape=shape)))


def test_a_speckle_or_a_thin_strip_is_not_a_car():
    """Two columns of a car are not enough (min_columns: 3); nor is a strip of "vehicle" a few
    rows high across the path (what a predicted map puts at the foot of a wall)."""
    brake = EmergencyBrake(CAMERA)
    ids = scene(None)
    ids[150:200, 256:258] = VEHICLE  # two columns, tall enough
    assert math.isinf(brake.range_m(ids))
    ids[150:200, 256:259] = VEHICLE  # three
    assert math.isfinite(brake.range_m(ids))
    strip = scene(None)
    strip[196:200, 200:320] = VEHICLE  # 4 rows at ~6 m, where a car's 0.6 m is ~40 rows
    assert math.isinf(brake.range_m(strip))
    far = scene(None)
    far[140:143, 250:262] = VEHICLE  # 3 rows at ~30 m: a car's 0.6 m is ~5 rows there
    assert math.isinf(brake.range_m(far))
    far[136:143, 250:262] = VEHICLE
    assert math.isfinite(brake.range_m(far))


def test_the_corridor_bends_with_the_ego_path():
    """On a left curve a car on the arc 25 m ahead (3.1 m to the left at k = 0.01) is in the path."""
    brake = EmergencyBrake(CAMERA)
    on_arc = scene(25.0, left_m=0.5 * 0.01 * 25.0 ** 2)
    assert math.isinf(brake.range_m(on_arc))
    brake.curvature = 0.01
    assert brake.range_m(on_arc) == pytest.approx(25.0, abs=2.5)


def drive_towards(brake: EmergencyBrake, speed_mps: float, lead_mps: float, start_m: float,
                  ticks: int, pedal: float = 0.0) -> list[Action]:
    """The ego at a fixed ``speed_mps`` behind a car at ``lead_mps`` from ``start_m``; the guard's actions."""
    out = []
    for t in range(ticks):
        rear = start_m - (speed_mps - lead_mps) * t * brake.config.dt_s
        out.append(brake.filter(scene(rear), ego(speed_mps), Action(0.1, pedal), t))
    return out


def test_it_brakes_for_a_stopped_car_in_time_and_not_for_a_car_it_follows():
    cfg = BrakeConfig()
    brake = EmergencyBrake(CAMERA, cfg)
    actions = drive_towards(brake, 20.0, 0.0, 60.0, 40)
    first = next(t for t, a in enumerate(actions) if a.pedal == -1.0)
    rear = 60.0 - 20.0 * first * cfg.dt_s
    stopping_m = 20.0 ** 2 / (2 * 6.0)  # at the builtin world's full brake
    assert rear - cfg.front_m > stopping_m  # still room to stop
    assert all(a.steer == 0.1 for a in actions)  # steering stays the policy's
    assert brake.engaged_ticks == sum(a.pedal == -1.0 for a in actions) > 0
    follow = EmergencyBrake(CAMERA, cfg)
    assert all(a.pedal == 0.3 for a in drive_towards(follow, 20.0, 20.0, 20.0, 40, pedal=0.3))
    assert follow.engaged_ticks == 0
    slow_close = EmergencyBrake(CAMERA, cfg)  # 2 m/s closing from 30 m: the policy's business
    assert all(a.pedal == 0.3 for a in drive_towards(slow_close, 20.0, 18.0, 30.0, 40, pedal=0.3))


def test_it_holds_the_brake_behind_a_car_it_braked_for_at_the_bottom_edge():
    """Braking for a stopped car that ends nearer than the map shows: throttle is refused while
    it sits at the bottom edge; a car that appears there without being braked for is not held."""
    brake = EmergencyBrake(CAMERA)
    drive_towards(brake, 10.0, 0.0, 20.0, 20)
    assert brake.engaged
    ids = scene(4.4)  # nearer than the map's lowest row shows: its range reads the same every tick
    for t in range(20, 40):
        assert brake.filter(ids, ego(0.0), Action(0.0, 0.5), t).pedal == -1.0  # throttle refused
    brake.reset()
    assert brake.engaged_ticks == 0 and not brake.engaged
    assert all(brake.filter(ids, ego(0.0), Action(0.0, 0.5), t).pedal == 0.5 for t in range(10))


def test_release_when_the_car_ahead_pulls_away():
    brake = EmergencyBrake(CAMERA)
    drive_towards(brake, 20.0, 0.0, 40.0, 20)
    assert brake.engaged
    for t in range(20, 40):  # now the gap opens at 5 m/s
        brake.filter(scene(20.0 + 5.0 * (t - 20) * 0.05), ego(10.0), Action(0.0, 0.2), t)
    assert not brake.engaged


@pytest.mark.parametrize("bad", [{"half_width_m": 0.0}, {"min_columns": 0}, {"window_ticks": 2},
                                 {"clearance_m": 1.5}, {"stop_gap_m": -1.0}, {"trigger_mps2": -3.0}])
def test_bad_config_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="BrakeConfig"):
        BrakeConfig(**bad)


def test_a_car_lost_for_a_tick_or_two_still_counts():
    """A predicted map may lose the car ahead for a tick: the brake stays on for coast_ticks, then lets go."""
    cfg = BrakeConfig()
    brake = EmergencyBrake(CAMERA, cfg)
    drive_towards(brake, 20.0, 0.0, 50.0, 20)
    assert brake.engaged
    for t in range(20, 20 + cfg.coast_ticks):
        assert brake.filter(scene(None), ego(18.0), Action(0.0, 0.2), t).pedal == -1.0
    assert brake.filter(scene(None), ego(18.0), Action(0.0, 0.2), 20 + cfg.coast_ticks + 1).pedal == 0.2
    assert not brake.engaged


def test_a_followed_car_whose_edge_steps_a_row_is_not_closing():
    """Following at a steady ~27 m, the car's bottom edge steps between two pixel rows (2.5 m of
    range apart there): no brake, though the raw least-squares slope reads several m/s."""
    brake = EmergencyBrake(CAMERA)
    rears = [28.5] * 6 + [26.0] * 6
    slopes = []
    for t in range(48):
        assert brake.filter(scene(rears[t % len(rears)]), ego(20.0), Action(0.0, 0.1), t).pedal == 0.1
        slopes.append(brake.last["closing_mps"])
    assert max(slopes) > 3.0 and brake.engaged_ticks == 0
    fresh = EmergencyBrake(CAMERA)  # the step right after the car is first seen: a short history
    for t, rear in enumerate([28.5] * 3 + [26.0] * 10):
        assert fresh.filter(scene(rear), ego(20.0), Action(0.0, 0.1), t).pedal == 0.1
    assert fresh.engaged_ticks == 0


def test_on_the_coarse_privileged_map_it_stops_in_time_from_14_mps():
    """On the 96 x 192 map the privileged drive renders (a row spans ~4 m at 25 m) the brake still
    comes on with room to stop from 14 m/s (from 20 m/s it is late: the README says so)."""
    brake = EmergencyBrake(CAMERA)
    first = None
    for t in range(60):
        rear = 45.0 - 14.0 * t * brake.config.dt_s
        if brake.filter(scene(rear, shape=(96, 192)), ego(14.0), Action(0.0, 0.0), t).pedal == -1.0:
            first = rear
            break
    assert first is not None and first - brake.config.front_m > 14.0 ** 2 / (2 * 6.0) + 2.0


def first_brake_m(cfg: BrakeConfig, pedal: float, speed_mps: float = 20.0, lead_mps: float = 12.0,
                  start_m: float = 45.0) -> float:
    """The range at which the guard first brakes fully, closing on a slower car with the policy's ``pedal``."""
    brake = EmergencyBrake(CAMERA, cfg)
    for t, action in enumerate(drive_towards(brake, speed_mps, lead_mps, start_m, 100, pedal=pedal)):
        if action.pedal == -1.0 and pedal > -1.0:
            return start_m - (speed_mps - lead_mps) * t * cfg.dt_s
    return -math.inf


def test_brake_assist_comes_on_earlier_only_while_the_policy_brakes():
    """With ``assist_pedal`` the need that engages the guard drops to ``assist_need_mps2`` while the
    policy brakes at least that hard: closing at 8 m/s from 45 m it brakes from ~27 m instead of
    ~15 m; with the policy off the brake (pedal 0, or lighter than ``assist_pedal``) nothing changes."""
    plain, assist = BrakeConfig(assist_pedal=-1.0), BrakeConfig(assist_pedal=-0.3, assist_need_mps2=1.0)
    alone = first_brake_m(plain, -0.5)
    assisted = first_brake_m(assist, -0.5)
    assert assisted > alone + 5.0
    assert first_brake_m(assist, 0.0) == first_brake_m(plain, 0.0) == alone
    assert first_brake_m(assist, -0.2) == alone
    follow = EmergencyBrake(CAMERA, assist)  # braking gently behind a car at the same speed: no closing, no assist
    assert all(a.pedal == -0.5 for a in drive_towards(follow, 20.0, 20.0, 20.0, 40, pedal=-0.5))


def test_brake_config_from_overrides():
    """KEY=VALUE fields over the defaults (the benchmark scripts' --set / --variant); bad ones are clear errors."""
    cfg = BrakeConfig.from_overrides(["assist_pedal=-1", "window_ticks=20"])
    assert cfg.assist_pedal == -1.0 and cfg.window_ticks == 20 and isinstance(cfg.window_ticks, int)
    assert cfg.trigger_mps2 == BrakeConfig().trigger_mps2
    assert BrakeConfig.from_overrides([]) == BrakeConfig()
    with pytest.raises(ValueError, match="'assist' is not a field"):
        BrakeConfig.from_overrides(["assist=-0.3"])
    with pytest.raises(ValueError, match="needs a number"):
        BrakeConfig.from_overrides(["assist_pedal=hard"])
    with pytest.raises(ValueError, match="assist_pedal in"):
        BrakeConfig.from_overrides(["assist_pedal=0.5"])
