"""CarlaSimulator when the client fails: errors name the harness step, cleanup still holds."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from edgepilot.runtime.errors import EdgepilotError, SimulatorError
from edgepilot.sim.carla.harness import is_client_error
from edgepilot.sim.types import Control
from tests.sim.fake_carla import ArgumentError, FakeServer, Location, Transform
from tests.sim.sim_helpers import assert_server_clean, make_sim

NOT_A_BOOL = ValueError("number_of_wheels: invalid bool: 4")  # a 0.9.16 client on 0.9.15 data


@pytest.mark.parametrize(
    ("call", "exc", "step"),
    [
        ("load_world", NOT_A_BOOL, "load town"),
        ("get_blueprint_library", NOT_A_BOOL, "spawn NPCs"),
        ("try_spawn_actor", IndexError("vector::_M_range_check"), "spawn ego"),
        ("spawn_actor", ArgumentError("Python argument types did not match"), "attach sensors"),
        ("tick", OverflowError("int too big to convert"), "enter synchronous mode"),
        ("world.tick", OverflowError("int too big to convert"), "warm-up tick"),
    ],
)
def test_client_errors_in_reset_name_the_step_and_leave_the_server_clean(
    call: str, exc: Exception, step: str
) -> None:
    server = FakeServer()
    server.fail_on[call] = exc
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SimulatorError, match=f"CARLA {step} failed on localhost:2000: "
                       f"{type(exc).__name__}: ") as info:
        make_sim(server).reset()
    assert info.value.__cause__ is exc
    server.fail_on.clear()
    assert server.actors == {} and server.settings.synchronous_mode is False
    assert all(sync is False for sync in server.tm_sync.values())
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize(
    ("call", "exc", "step"),
    [
        ("apply_control", ArgumentError("VehicleControl.__init__(float)"), "apply control"),
        ("world.tick", OverflowError("frame id out of range"), "tick"),
        ("get_transform", IndexError("actor not found"), "read the ego state"),
    ],
)
def test_client_errors_in_step_name_the_step_and_leave_the_server_clean(
    call: str, exc: Exception, step: str
) -> None:
    server = FakeServer()
    sim = make_sim(server)
    sim.reset()
    server.fail_on[call] = exc
    with pytest.raises(SimulatorError, match=f"CARLA {step} failed on localhost:2000") as info:
        sim.step(Control(throttle=0.3))
    assert info.value.__cause__ is exc
    server.fail_on.clear()
    assert_server_clean(server)


def test_a_host_that_does_not_resolve_is_a_connect_error() -> None:
    server = FakeServer()
    with pytest.raises(SimulatorError, match="CARLA connect failed on carla.invalid:2000: gaierror") as info:
        make_sim(server, host="carla.invalid").reset()
    assert isinstance(info.value.__cause__, socket.gaierror)
    assert "check the host name and port" in str(info.value)


def test_boost_argument_error_is_matched_by_name() -> None:
    boost_like = type("ArgumentError", (Exception,), {"__module__": "Boost.Python"})
    assert is_client_error(boost_like("wrong types")) and is_client_error(ArgumentError())
    assert not is_client_error(KeyError("ours")) and not is_client_error(KeyboardInterrupt())


def test_a_server_that_stops_answering_fails_the_tick_within_tick_timeout_s() -> None:
    server = FakeServer()
    sim = make_sim(server, timeout_s=3.0, tick_timeout_s=0.2)
    sim.reset()
    server.hang_ticks = True
    start = time.monotonic()
    with pytest.raises(SimulatorError, match=r"CARLA tick failed on localhost:2000: RuntimeError: "
                       r"time-out of 200ms.*raise tick_timeout_s") as info:
        sim.step(Control())
    # the step's tick, then cleanup's batch and last tick, 0.2 s each: not the 3 s client time-out
    assert time.monotonic() - start < 1.5
    assert isinstance(info.value.__cause__, RuntimeError)
    assert server.tick_timeouts[-2:] == [0.2, 0.2]
    assert_server_clean(server)
    with pytest.raises(EdgepilotError, match="tick_timeout_s=0"):
        make_sim(server, tick_timeout_s=0)


def test_dead_end_spawn_points_are_skipped_and_the_route_stops_at_the_road_end() -> None:
    server = FakeServer()
    server.road_end_x_m = 40.0
    server.spawn_points = [Transform(Location(x, 0.0, 0.3)) for x in (39.5, 40.0, 30.0, 45.0)]
    with make_sim(server, n_vehicles=0, seed=1) as sim:
        obs = sim.reset()
        ego = next(a for a in server.vehicles() if a.attributes["role_name"] == "hero")
        assert ego.transform.location.x < 31.0  # the one spawn point with a lane ahead
        assert obs.info["route_length_m"] == pytest.approx(10.0)
        for _ in range(60):
            obs = sim.step(Control(throttle=1.0))
        assert ego.transform.location.x > 40.0 and obs.info["route_completion"] == 1.0
    server.spawn_points = server.spawn_points[1:2]
    with pytest.raises(SimulatorError, match="none of the 1 spawn points of Town01 has a lane ahead"):
        make_sim(server, n_vehicles=0).reset()
    assert_server_clean(server)
