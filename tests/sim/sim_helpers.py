"""Helpers shared by the sim tests (imported as tests.sim.sim_helpers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgepilot.sim.carla.client import CarlaSimulator
from edgepilot.sim.types import CameraConfig

if TYPE_CHECKING:
    from edgepilot.sim.builtin.world import BuiltinSimulator
    from tests.sim.fake_carla import FakeServer

SMALL = CameraConfig(width=256, height=128)
CAM = CameraConfig(width=64, height=32, fov_deg=90.0, pitch_deg=5.0)  # the fake CARLA camera


def make_sim(server: FakeServer, **opts: object) -> CarlaSimulator:
    """A CarlaSimulator on ``server`` (town01, 3 NPCs, 2 warm-up ticks), options overridden."""
    defaults: dict[str, object] = {"n_vehicles": 3, "warmup_ticks": 2, "sensor_timeout_s": 0.5}
    defaults.update(opts)
    return CarlaSimulator("town01", CAM, carla_module=server.module(), **defaults)  # type: ignore[arg-type]


def assert_server_clean(server: FakeServer) -> None:
    """No actors of ours left, asynchronous settings restored, Traffic Manager asynchronous."""
    assert server.actors == {}
    assert server.settings.synchronous_mode is False
    assert server.settings.fixed_delta_seconds is None
    assert all(sync is False for sync in server.tm_sync.values())


def place(sim: BuiltinSimulator, offsets: list[tuple[float, float]]) -> list:
    """Keep only len(offsets) other vehicles, standing still at (forward, left) metres from the ego.

    Highway lanes run east, so forward is +x in both frames and left is highway-env's -y.
    """
    ego = sim.ego
    others = [v for v in sim.env.road.vehicles if v is not ego][: len(offsets)]
    assert len(others) == len(offsets)
    for v, (fwd, left) in zip(others, offsets, strict=True):
        v.position = ego.position + np.array([fwd, -left])
        v.heading, v.speed = 0.0, 0.0
        v.LENGTH, v.WIDTH = 5.0, 2.0
    sim.env.road.vehicles[:] = [ego, *others]
    sim.env.road.objects[:] = []
    return others
