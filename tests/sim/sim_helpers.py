"""Helpers shared by the sim tests (imported as tests.sim.sim_helpers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgepilot.sim.types import CameraConfig

if TYPE_CHECKING:
    from edgepilot.sim.builtin.world import BuiltinSimulator

SMALL = CameraConfig(width=256, height=128)


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
