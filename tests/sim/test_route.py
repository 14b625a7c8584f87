"""Route completion (sim.route): hand-made polylines with known answers, and both backends on it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgepilot.sim.route import LOOKAHEAD_M, REACH_M, RouteProgress
from edgepilot.sim.types import Control
from tests.sim.fake_carla import FakeServer, Location, Transform
from tests.sim.sim_helpers import SMALL, make_sim

SQUARE = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0], [0.0, 1.0]])  # 399 m


def test_progress_is_the_arc_length_of_the_projection() -> None:
    route = RouteProgress(np.array([[0.0, 0.0], [40.0, 0.0]]))
    assert route.length_m == 40.0 and route.completion == 0.0
    assert route.update(10.1, 1.0) == pytest.approx(10.1 / 40.0)  # not rounded to a point
    assert route.progress_m == pytest.approx(10.1)
    route.update(-5.0, 0.0)  # behind the start projects to 0: no change
    assert route.progress_m == pytest.approx(10.1)


def test_progress_follows_corners() -> None:
    route = RouteProgress(np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]))
    route.update(9.0, -1.0)
    assert route.progress_m == pytest.approx(9.0)
    route.update(11.0, 5.0)  # 1 m right of the second leg, 5 m along it
    assert route.progress_m == pytest.approx(15.0) and route.completion == pytest.approx(0.75)
    route.update(10.0, 12.0)  # 2 m past the end projects onto the end: completion 1
    assert route.progress_m == pytest.approx(20.0) and route.completion == 1.0


def test_progress_is_monotone_and_only_near_the_route() -> None:
    route = RouteProgress(np.stack([np.arange(0.0, 41.0, 2.0), np.zeros(21)], axis=1))
    route.update(10.0, 0.0)
    route.update(2.0, 0.0)  # driving back does not undo progress
    assert route.progress_m == pytest.approx(10.0)
    route.update(14.0, REACH_M + 0.5)  # beside the route but too far from it
    assert route.progress_m == pytest.approx(10.0)
    route.update(14.0, REACH_M - 0.5)
    assert route.progress_m == pytest.approx(14.0)
    route.update(14.0 + LOOKAHEAD_M + 1.0, 0.0)  # a jump past the lookahead is not progress
    assert route.progress_m == pytest.approx(14.0)


def test_a_loop_closing_on_its_start_is_not_completed_at_the_start() -> None:
    route = RouteProgress(SQUARE)
    assert route.length_m == pytest.approx(399.0)
    route.update(0.0, 0.5)  # nearest the last leg (0 m) but that is 399 m ahead
    assert route.progress_m == 0.0
    for x in np.arange(0.0, 101.0, 2.0):  # drive the first leg, then up the second
        route.update(float(x), 0.0)
    for y in np.arange(0.0, 51.0, 2.0):
        route.update(100.0, float(y))
    assert route.progress_m == pytest.approx(150.0)


def test_curved_route_progress_is_the_arc_length() -> None:
    angles = np.radians(np.arange(0.0, 90.1, 1.0))
    arc = 10.0 * np.stack([np.sin(angles), 1.0 - np.cos(angles)], axis=1)  # quarter circle r = 10
    route = RouteProgress(arc)
    assert route.length_m == pytest.approx(10.0 * math.pi / 2, rel=1e-4)
    # 2 m outside the circle at 45 degrees projects to the middle of the arc
    route.update(12.0 * math.sin(math.pi / 4), 10.0 - 12.0 * math.cos(math.pi / 4))
    assert route.completion == pytest.approx(0.5, abs=1e-3)


def test_degenerate_routes_are_refused() -> None:
    with pytest.raises(ValueError, match="N>=2"):
        RouteProgress(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="positive length"):
        RouteProgress(np.array([[3.0, 4.0], [3.0, 4.0]]))
    route = RouteProgress(np.array([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0]]))  # a repeated point
    assert route.update(5.0, 0.0) == pytest.approx(0.5)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[RouteProgress, float]]:
    """Every RouteProgress.update call and what it returned."""
    calls: list[tuple[RouteProgress, float]] = []
    update = RouteProgress.update

    def recording(self: RouteProgress, x_m: float, y_m: float) -> float:
        calls.append((self, update(self, x_m, y_m)))
        return calls[-1][1]

    monkeypatch.setattr(RouteProgress, "update", recording)
    return calls


def test_carla_reports_route_completion_through_route_progress(spy: list) -> None:
    server = FakeServer()
    server.spawn_points = [Transform(Location(3.0, 0.0, 0.3))]
    with make_sim(server, n_vehicles=0) as sim:
        sim.reset()
        for _ in range(37):
            obs = sim.step(Control(throttle=1.0))
        ego = next(a for a in server.vehicles() if a.attributes["role_name"] == "hero")
    route, completion = spy[-1]
    assert obs.info["route_completion"] == completion and completion > 0.0
    assert obs.info["progress_m"] == route.progress_m == pytest.approx(ego.transform.location.x - 3.0)
    assert obs.info["route_length_m"] == route.length_m == pytest.approx(300.0)


def test_builtin_reports_route_completion_through_route_progress(spy: list) -> None:
    pytest.importorskip("highway_env")
    from edgepilot.sim.builtin.world import BuiltinSimulator

    with BuiltinSimulator("highway", SMALL, seed=0, render=False) as sim:
        sim.reset(5)
        for _ in range(20):
            obs = sim.step(Control(throttle=0.5))
        route, completion = spy[-1]
        assert route is sim.route_progress
        assert obs.info["route_completion"] == completion > 0.0
        assert obs.info["progress_m"] == route.progress_m
        assert obs.info["route_length_m"] == route.length_m == pytest.approx(900.0)
