"""What the driving env needs from the builtin world: labels-only rendering and fast traffic,
both giving exactly what the full renderer and highway-env give."""

from __future__ import annotations

import types

import numpy as np
import pytest

from edgepilot.runtime.errors import SimulatorError
from edgepilot.sim.builtin.geometry import RoadMask, _positions
from edgepilot.sim.builtin.world import BuiltinSimulator
from edgepilot.sim.driver import ScriptedDriver
from edgepilot.sim.types import CameraConfig, Control
from tests.sim.sim_helpers import SMALL, place


@pytest.mark.parametrize("scenario", ["highway", "roundabout"])
def test_labels_only_rendering_gives_the_full_renderers_labels(scenario):
    cam = CameraConfig(width=128, height=64)
    driver = ScriptedDriver()
    with BuiltinSimulator(scenario, cam, rgb=True) as full, BuiltinSimulator(scenario, cam, rgb=False) as labels:
        a, b = full.reset(4), labels.reset(4)
        for _ in range(25):
            assert np.array_equal(a.labels, b.labels)
            assert b.image.shape == (1, 1, 3) and b.boxes == () and b.ego == a.ego
            control = driver.act(full.privileged(), a.ego)
            a, b = full.step(control), labels.step(control)
        assert len(np.unique(b.labels)) >= 4  # a real scene: road, lines, sky, terrain, ...
        with pytest.raises(SimulatorError, match="labels only"):
            labels.renderer.render((0.0, 0.0, 0.0), labels._vehicle_boxes(), 0)


def _trajectory(sim: BuiltinSimulator, original: bool, seed: int) -> list[np.ndarray]:
    from highway_env.road.road import Road

    sim.reset(seed)
    if original:  # highway-env's own methods instead of sim.builtin.traffic's
        sim.env.road.step = types.MethodType(Road.step, sim.env.road)
        sim.env.road.neighbour_vehicles = types.MethodType(Road.neighbour_vehicles, sim.env.road)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(120):
        obs = sim.step(Control(steer=float(rng.uniform(-0.3, 0.3)), throttle=1.0))
        rows.append(np.array([[*v.position, v.speed, v.heading, v.crashed] for v in sim.env.road.vehicles]))
        if obs.info["terminated"]:
            break
    return rows


@pytest.mark.parametrize("seed", [1, 2])
def test_vectorised_traffic_moves_and_crashes_like_highway_env(seed):
    with BuiltinSimulator("highway", SMALL, render=False) as sim:
        fast, slow = _trajectory(sim, False, seed), _trajectory(sim, True, seed)
    assert len(fast) == len(slow) and all(np.array_equal(a, b) for a, b in zip(fast, slow, strict=True))


def test_vectorised_collisions_report_the_same_contact(highway):
    steps = []
    for original in (False, True):
        highway.reset(3)
        place(highway, [(8.0, 0.0), (30.0, 4.0), (-20.0, 0.0)])
        others = highway.env.road.vehicles[1:]
        for v in others:  # enough road users for the vectorised path (VECTORISE_MIN)
            v.speed = 0.0
        highway.env.road.vehicles.extend(_parked(highway, 6))
        if original:
            from highway_env.road.road import Road

            highway.env.road.step = types.MethodType(Road.step, highway.env.road)
        events = [highway.step(Control(throttle=1.0)).events for _ in range(30)]
        steps.append([k for k, e in enumerate(events) if e.collision])
    assert steps[0] == steps[1] and len(steps[0]) == 1


def _parked(sim: BuiltinSimulator, n: int) -> list:
    """``n`` stopped cars far behind the ego, out of everyone's way."""
    from highway_env.vehicle.kinematics import Vehicle

    return [Vehicle(sim.env.road, sim.ego.position + np.array([-200.0 - 15.0 * k, 0.0]), 0.0, 0.0)
            for k in range(n)]


def test_road_mask_clearance_is_exact_below_its_cap():
    with BuiltinSimulator("roundabout", SMALL, render=False) as sim:
        sim.reset(0)
        mask = RoadMask(sim.env.road.network.lanes_list(), sim.ego.position.copy(), 1500.0)
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.uniform(mask.points.min(0) - 20, mask.points.max(0) + 20, (400, 2)),
                             mask.points[::5] + rng.normal(0.0, 2.0, (len(mask.points[::5]), 2))])
    brute = np.array([(np.hypot(*(p - mask.points).T) - mask.radii).min() for p in points])
    assert np.allclose(mask.clearance(points, cap_m=2.0), np.minimum(brute, 2.0), rtol=0, atol=1e-12)
    assert (brute < 0).any() and (brute > 2.0).any()  # both sides of the cap were tested


@pytest.mark.parametrize("scenario", ["highway", "roundabout"])
def test_lane_positions_in_bulk_equal_highway_envs(scenario):
    with BuiltinSimulator(scenario, SMALL, render=False) as sim:
        sim.reset(0)
        for lane in sim.env.road.network.lanes_list():
            s = np.linspace(0.0, min(lane.length, 200.0), 17)
            one_by_one = np.array([lane.position(si, 1.3) for si in s])
            assert np.array_equal(_positions(lane, s, 1.3), one_by_one)
