"""What the driving env needs from the builtin world: labels-only rendering and fast traffic,
both giving exactly what the full renderer and highway-env give."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest

from edgepilot.runtime.errors import SimulatorError
from edgepilot.sim.builtin.geometry import RoadMask, _positions
from edgepilot.sim.builtin.scenario import load_scenario
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


def _trajectory(scenario: str, original: bool, seed: int, driven: bool) -> list[np.ndarray]:
    """Every road user's (x, y, speed, heading, crashed) per step; ``original``: highway-env's own
    traffic (its IDMVehicle, Road.act, Road.step, Road.neighbour_vehicles, and
    RoadNetwork.get_closest_lane_index) instead of ours."""
    from highway_env.road.road import Road

    cfg = load_scenario(scenario)
    if original:
        cfg = dataclasses.replace(cfg, env_config={
            **cfg.env_config, "other_vehicles_type": "highway_env.vehicle.behavior.IDMVehicle"})
    rows = []
    with BuiltinSimulator(cfg, SMALL, render=False) as sim:
        sim.reset(seed)
        road = sim.env.road
        kinds = {type(v).__name__ for v in road.vehicles[1:]}
        if original:
            for name in ("act", "step", "neighbour_vehicles"):
                setattr(road, name, types.MethodType(getattr(Road, name), road))
            vars(road.network).pop("get_closest_lane_index", None)  # back to RoadNetwork's own
        elif scenario != "racetrack":  # racetrack builds IDMVehicle itself
            assert kinds == {"FastIDMVehicle"}, kinds
        rng, driver = np.random.default_rng(seed), ScriptedDriver()
        for _ in range(200 if driven else 120):
            control = (driver.act(sim.privileged(), sim.observe().ego) if driven
                       else Control(steer=float(rng.uniform(-0.3, 0.3)), throttle=1.0))
            obs = sim.step(control)
            rows.append(np.array([[*v.position, v.speed, v.heading, v.crashed] for v in sim.env.road.vehicles]))
            if obs.info["terminated"]:
                break
    return rows


@pytest.mark.parametrize("scenario", ["highway", "roundabout", "merge", "racetrack"])
@pytest.mark.parametrize(("seed", "driven"), [(1, False), (2, True)])
def test_our_traffic_moves_and_crashes_like_highway_env(scenario, seed, driven):
    fast, slow = _trajectory(scenario, False, seed, driven), _trajectory(scenario, True, seed, driven)
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


@pytest.mark.parametrize("scenario", ["highway", "roundabout", "merge", "racetrack"])
def test_closest_lane_index_picks_highway_envs_lane_everywhere(scenario):
    """Points on, beside and far from every lane, with and without a heading: the same lane."""
    from highway_env.road.road import RoadNetwork

    from edgepilot.sim.builtin.traffic import closest_lane_index, closest_straight_lane_index

    with BuiltinSimulator(scenario, SMALL, render=False) as sim:
        sim.reset(0)
        network = sim.env.road.network
        rng = np.random.default_rng(7)
        lanes = network.lanes_list()
        points = []
        for lane in lanes:
            length = min(lane.length, 2000.0)
            for s in rng.uniform(-30.0, length + 30.0, 40):
                points.append(lane.position(s, rng.normal(0.0, 4.0)))
        points.extend(rng.uniform(-300.0, 600.0, (200, 2)))  # anywhere, off every road too
        for k, point in enumerate(points):
            heading = None if k % 5 == 0 else float(rng.uniform(-np.pi, np.pi))
            search = closest_straight_lane_index if scenario == "highway" else closest_lane_index
            ours = search(network, np.asarray(point, np.float64), heading)
            assert ours == RoadNetwork.get_closest_lane_index(network, np.asarray(point, np.float64), heading)
        if scenario == "highway":
            assert getattr(network, "_lane_bounds", None) is None  # below PRUNE_MIN_LANES: not used
            assert network.get_closest_lane_index.__func__ is closest_straight_lane_index
            # ties: exactly between two lanes with the same heading, and on a lane's far end
            mid = (lanes[0].position(50.0, 0.0) + lanes[1].position(50.0, 0.0)) / 2
            for point, heading in [(mid, float(lanes[0].heading)), (mid, None), (lanes[0].end, None)]:
                assert (closest_straight_lane_index(network, point, heading)
                        == RoadNetwork.get_closest_lane_index(network, point, heading))
            return
        _, _, centres, radii, shrink = network._lane_bounds
        assert len(centres) == len(lanes) and np.isfinite(radii).all()  # every lane kind here is bounded


def test_neighbour_search_picks_highway_envs_vehicles_with_ties_and_the_cache():
    """Every road user searching every lane, with cars at equal s (the tie rules) and the
    searcher on and off the road: the same front and rear vehicles as highway-env's own
    search, with the per-lane cache of ``act_road`` and without it."""
    from highway_env.road.road import Road

    from edgepilot.sim.builtin.traffic import _snapshot, neighbour_vehicles

    with BuiltinSimulator("highway", SMALL, render=False) as sim:
        sim.reset(4)
        road = sim.env.road
        # equal s on one lane (two cars at one spot), beside each other, and a parked column
        place(sim, [(20.0, 0.0), (20.0, 0.0), (20.0, 4.0), (-10.0, 0.0), (-10.0, 0.0)])
        road.vehicles.extend(_parked(sim, 4))
        lanes = [idx for idx in road.network.lanes_dict()]
        assert len(road.vehicles) >= 8  # the vectorised path (VECTORISE_MIN)
        stranger = _parked(sim, 1)[0]  # searches without being on the road's list
        stranger.position = road.vehicles[1].position.copy()  # and ties with a car there
        searchers = [*road.vehicles, stranger]
        expected = [[Road.neighbour_vehicles(road, v, idx) for idx in lanes] for v in searchers]
        assert any(f is not None and r is not None for row in expected for f, r in row)
        for cached in (False, True):
            road._neighbour_snapshot = _snapshot(road) if cached else None
            try:
                got = [[neighbour_vehicles(road, v, idx) for idx in lanes] for v in searchers]
            finally:
                road._neighbour_snapshot = None
            assert all(g[0] is e[0] and g[1] is e[1] for gr, er in zip(got, expected, strict=True)
                       for g, e in zip(gr, er, strict=True))
