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


def test_a_speckle_is_not_a_car():
    ids = scene(None)
    ids[200, 256:258] = VEHICLE  # two pixels
    assert math.isinf(EmergencyBrake(CAMERA).range_m(ids))
    ids[200, 256:259] = VEHICLE  # min_pixels
    assert math.isfinite(EmergencyBrake(CAMERA).range_m(ids))


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


def test_it_holds_the_brake_behind_a_car_at_the_bottom_edge():
    brake = EmergencyBrake(CAMERA)
    ids = scene(4.4)  # nearer than the map's lowest row shows
    assert brake.filter(ids, ego(0.0), Action(0.0, 0.5), 0).pedal == -1.0  # throttle refused
    assert brake.filter(ids, ego(0.0), Action(0.0, -0.2), 1).pedal == -0.2  # standing still, no throttle
    brake.reset()
    assert brake.engaged_ticks == 0 and not brake.engaged


def test_release_when_the_car_ahead_pulls_away():
    brake = EmergencyBrake(CAMERA)
    drive_towards(brake, 20.0, 0.0, 40.0, 20)
    assert brake.engaged
    for t in range(20, 40):  # now the gap opens at 5 m/s
        brake.filter(scene(20.0 + 5.0 * (t - 20) * 0.05), ego(10.0), Action(0.0, 0.2), t)
    assert not brake.engaged


@pytest.mark.parametrize("bad", [{"half_width_m": 0.0}, {"min_pixels": 0}, {"window_ticks": 2},
                                 {"clearance_m": 1.5}, {"stop_gap_m": -1.0}, {"trigger_mps2": -3.0}])
def test_bad_config_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="BrakeConfig"):
        BrakeConfig(**bad)
