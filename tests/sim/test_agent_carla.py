"""The closed loop in CARLA: the tiny trained policy driving CarlaSimulator against the fake client API."""

from __future__ import annotations

import pytest

import edgepilot.sim.agent.drive as drive_module
from edgepilot.sim.agent.drive import DriveOptions, drive
from edgepilot.sim.agent.episode import Agent, run_episode
from edgepilot.sim.agent.policy import DrivingPolicy
from edgepilot.sim.carla.harness import FIXED_DELTA_S
from tests.sim.agent_fixtures import tiny_policy_bundle  # noqa: F401
from tests.sim.fake_carla import FakeServer
from tests.sim.sim_helpers import assert_server_clean, make_sim

TICKS = 10


def test_run_episode_drives_carla_for_max_steps_and_measures_the_route(tiny_policy_bundle):  # noqa: F811
    """run_episode on CarlaSimulator: 10 synchronous ticks, route completion measured, server left clean."""
    server = FakeServer()
    agent = Agent(DrivingPolicy.load(tiny_policy_bundle.bundle, backend="ort"), privileged=True)
    try:
        with make_sim(server, seed=3) as sim:
            first = server.frame
            result = run_episode(sim, agent, seed=3, max_steps=TICKS)
            assert server.frame >= first + TICKS  # one server tick per episode tick (after the reset's)
            assert len(server.actors) == 8  # ego + 3 NPCs + 4 sensors, still there mid-session
            assert sim.route_points_m.shape[1] == 2 and sim.max_steps == round(sim.scenario.duration_s / FIXED_DELTA_S)
    finally:
        agent.close()
    assert result.ticks == TICKS and result.ended == "timeout"
    assert result.skipped_frames == 0
    completion = result.score["route_completion"]
    assert isinstance(completion, float) and 0.0 <= completion <= 1.0
    assert result.score["steps"] == TICKS
    assert len(result.stages_ms["policy"]) == TICKS and len(result.stages_ms["tick"]) == TICKS
    assert_server_clean(server)


def test_drive_in_carla_closes_the_simulator(tiny_policy_bundle, monkeypatch):  # noqa: F811
    """drive(--sim carla) through a fake server: the report scores town01 and every actor is destroyed after."""
    server = FakeServer()
    made: list = []

    def fake_make_sim(opts: DriveOptions, scenario: str, *_agent: object):
        assert opts.sim == "carla" and scenario == "town01"
        made.append(make_sim(server, seed=opts.seed))
        return made[-1]

    monkeypatch.setattr(drive_module, "_make_sim", fake_make_sim)
    report = drive(DriveOptions(sim="carla", scenarios=("town01",), episodes=1, policy=str(tiny_policy_bundle.bundle),
                                privileged=True, max_steps=TICKS, progress=False))
    assert len(made) == 1
    assert report["sim"] == "carla" and report["mode"] == "privileged"
    (episode,) = report["episodes"]
    assert episode["scenario"] == "town01" and episode["ticks"] == TICKS and episode["ended"] == "timeout"
    assert 0.0 <= episode["route_completion"] <= 1.0
    assert report["scores"]["per_scenario"]["town01"]["episodes"] == 1
    assert_server_clean(server)
    assert len(server.destroy_batches) == 1


def test_carla_route_before_reset_is_an_error():
    """route_points_m needs an episode: before reset it raises SimulatorError, not an AttributeError."""
    from edgepilot.runtime.errors import SimulatorError

    with make_sim(FakeServer()) as sim, pytest.raises(SimulatorError, match="before reset"):
        _ = sim.route_points_m
