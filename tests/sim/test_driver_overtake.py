"""The overtaking scripted driver (the stage-7 policy's expert) and the lanes it chooses from."""

from __future__ import annotations

import numpy as np
import pytest

from edgepilot.sim.builtin.route import lane_options
from edgepilot.sim.builtin.world import BuiltinSimulator
from edgepilot.sim.driver import DriverConfig, ScriptedDriver
from tests.sim.sim_helpers import SMALL, place


def _drive(sim: BuiltinSimulator, driver: ScriptedDriver, ticks: int, lanes: bool) -> tuple[set, bool]:
    obs = sim.observe()
    seen, hit = {sim.ego.lane_index}, False
    for _ in range(ticks):
        obs = sim.step(driver.act(sim.privileged(lanes=lanes), obs.ego))
        seen.add(sim.ego.lane_index)
        hit = hit or obs.events.collision
    return seen, hit


def _stopped_car(sim: BuiltinSimulator, ahead_m: float):
    """An obstacle ``ahead_m`` in front of the ego, in its lane: a car that will not move."""
    from highway_env.vehicle.objects import Obstacle

    car = Obstacle(sim.env.road, sim.ego.position + np.array([ahead_m, 0.0]))
    sim.env.road.objects.append(car)
    return car


@pytest.mark.parametrize("overtake", [False, True])
def test_a_stopped_car_ahead_is_passed_by_the_overtaking_driver_and_waited_behind_by_the_baseline(overtake):
    with BuiltinSimulator("highway", SMALL, render=False) as sim:
        sim.reset(3)
        place(sim, [])  # an empty road
        car = _stopped_car(sim, 60.0)
        driver = ScriptedDriver(DriverConfig(overtake=overtake))
        lanes, hit = _drive(sim, driver, 200, lanes=overtake)
        assert not hit
        passed = sim.ego.position[0] > car.position[0] + 10.0
        assert passed == overtake
        assert (len(lanes) > 1) == overtake  # the baseline never leaves its lane


def test_no_lane_change_into_a_lane_where_a_faster_car_closes_from_behind():
    def first_steer(rear: bool) -> float:
        with BuiltinSimulator("highway", SMALL, render=False) as sim:
            sim.reset(3)
            sides = [o.side for o in lane_options(sim.ego, sim.env.road, sim.route)]
            assert sides  # a three-lane road: at least one lane beside the ego
            cars = place(sim, [(-6.0, -4.0 * side) for side in sides] if rear else [])
            for car in cars:
                car.speed = sim.ego.speed + 8.0
            _stopped_car(sim, 50.0)
            driver = ScriptedDriver(DriverConfig(overtake=True))
            return driver.act(sim.privileged(lanes=True), sim.observe().ego).steer

    assert abs(first_steer(rear=False)) > 0.05  # it turns towards the free lane at once
    assert abs(first_steer(rear=True)) < 0.02  # it keeps its lane: the gap behind is not safe


def test_lane_options_offer_only_straight_drivable_lanes_beside_the_ego():
    with BuiltinSimulator("merge", SMALL, render=False) as sim:
        sim.reset(0)
        ego, net = sim.ego, sim.env.road.network
        ego.lane_index = ("b", "c", 1)
        ego.lane = net.get_lane(ego.lane_index)
        ego.position = ego.lane.position(20.0, 0.0)
        options = lane_options(ego, sim.env.road, sim.route)
        # lane 2 of this stretch is the on-ramp (highway-env's forbidden lane): not offered
        assert [o.lane_index for o in options] == [("b", "c", 0)]
        (left,) = options
        assert left.side == -1 and left.lateral_offset_m == pytest.approx(-4.0)
        assert np.allclose(left.path_xy[:, 1], left.path_xy[0, 1])  # its centre line, straight on
    with BuiltinSimulator("roundabout", SMALL, render=False) as sim:
        sim.reset(0)
        assert lane_options(sim.ego, sim.env.road, sim.route) == ()
        assert sim.privileged().lanes == ()  # only asked for with lanes=True
