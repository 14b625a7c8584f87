"""BuiltinSimulator contract: events, info, scenarios, the privileged driver."""

from __future__ import annotations

import numpy as np
import pytest

from edgepilot.runtime.errors import EdgepilotError, SimulatorError
from edgepilot.sim.builtin.world import BuiltinSimulator
from edgepilot.sim.driver import ScriptedDriver
from edgepilot.sim.registry import make_simulator
from edgepilot.sim.types import Control
from tests.sim.sim_helpers import SMALL, place


def test_registry_builds_builtin_and_reset_reports_info():
    with make_simulator("builtin", scenario="racetrack", camera=SMALL, render=False) as sim:
        obs = sim.reset(1)
        assert obs.frame == 0 and obs.sim_time_s == 0.0
        obs = sim.step(Control(throttle=0.5))
        assert obs.frame == 1 and obs.sim_time_s == pytest.approx(0.05)
        assert 0.0 <= obs.info["route_completion"] <= 1.0 and obs.info["distance_m"] > 0
    sim.close()  # idempotent
    with pytest.raises(SimulatorError):
        sim.reset(0)


def test_unknown_scenario_is_bad_input():
    with pytest.raises(EdgepilotError) as err:
        BuiltinSimulator("moon", SMALL)
    assert err.value.exit_code == 2 and "highway" in str(err.value)


def test_collision_is_reported_once(highway):
    highway.reset(3)
    place(highway, [(8.0, 0.0)])
    events = [highway.step(Control(throttle=1.0)).events for _ in range(30)]
    hits = [e for e in events if e.collision]
    assert len(hits) == 1 and hits[0].collision_with == "vehicle"



def test_a_vehicle_hit_is_not_called_static_because_some_obstacle_was_hit_before(highway):
    from highway_env.vehicle.objects import Obstacle

    highway.reset(3)
    place(highway, [(8.0, 0.0)])
    far = Obstacle(highway.env.road, highway.ego.position + np.array([300.0, 0.0]))
    far.crashed = True  # hit by someone long ago, far away
    highway.env.road.objects.append(far)
    hits = [e for e in (highway.step(Control(throttle=1.0)).events for _ in range(30)) if e.collision]
    assert len(hits) == 1 and hits[0].collision_with == "vehicle"

def test_driver_keeps_its_lane_on_highway():
    driver = ScriptedDriver()
    with BuiltinSimulator("highway", SMALL, seed=0, render=False) as sim:
        obs = sim.reset(11)
        driver.reset(11)
        lanes = set()
        for _ in range(300):
            obs = sim.step(driver.act(sim.privileged(), obs.ego))
            assert not obs.events.off_road and not obs.events.collision
            lanes.add(sim.ego.lane_index[2])
            assert abs(sim.privileged().lateral_offset_m) < 0.5
    assert len(lanes) == 1 and obs.info["distance_m"] > 200


@pytest.mark.parametrize("scenario", ["roundabout", "merge"])
def test_driver_completes_short_routes(scenario):
    driver = ScriptedDriver()
    with BuiltinSimulator(scenario, SMALL, render=False) as sim:
        obs = sim.reset(0)
        while not (obs.info["truncated"] or obs.info["terminated"]):
            obs = sim.step(driver.act(sim.privileged(), obs.ego))
    assert obs.info["route_completion"] > 0.5


def test_route_progress_is_monotone_and_needs_the_ego_near_the_route(highway):
    highway.reset(2)
    place(highway, [])  # an empty road
    for _ in range(40):
        obs = highway.step(Control(throttle=0.6))
    before, there = obs.info["progress_m"], highway.ego.position.copy()
    assert before > 5.0 and obs.info["route_completion"] == pytest.approx(before / 900.0)
    highway.ego.position = there - np.array([15.0, 0.0])  # 15 m back along the lane
    assert highway.step(Control()).info["progress_m"] == pytest.approx(before)
    highway.ego.position = there + np.array([10.0, -40.0])  # ahead, but 40 m off the road
    assert highway.step(Control()).info["progress_m"] == pytest.approx(before)
    highway.ego.position = there + np.array([5.0, 0.0])  # back on the route: progress resumes
    assert highway.step(Control()).info["progress_m"] > before + 5.0
