"""CarlaSimulator against the fake client API (tests/sim/fake_carla.py); one real-server test."""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

from edgepilot.runtime.errors import EdgepilotError, MissingExtraError, SimulatorError
from edgepilot.sim.carla.client import CarlaSimulator
from edgepilot.sim.carla.harness import FIXED_DELTA_S
from edgepilot.sim.registry import make_simulator
from edgepilot.sim.tags import TAG_IDS
from edgepilot.sim.types import Control
from tests.sim.fake_carla import FakeServer, Location, Transform
from tests.sim.fake_carla_scene import STALE_TAG, SceneObject
from tests.sim.sim_helpers import CAM, assert_server_clean, make_sim


def test_reset_configures_server_and_step_returns_matching_frame() -> None:
    server = FakeServer()
    with make_sim(server, seed=3) as sim:
        obs = sim.reset()
        assert server.loads == ["Town01"]
        assert server.settings.synchronous_mode is True
        assert server.settings.fixed_delta_seconds == FIXED_DELTA_S
        assert server.tm_sync == {8000: True} and server.tm_seed == 3
        assert all(t == 5.0 for t in server.tick_timeouts)  # tick_timeout_s, not timeout_s
        npcs = [a for a in server.vehicles() if a.attributes["role_name"] == "autopilot"]
        assert len(npcs) == 3 and all(a.autopilot_port == 8000 for a in npcs)
        # ego + 3 NPCs + 4 sensors on the ego
        assert len(server.actors) == 8
        rgb = next(a for a in server.actors.values() if a.type_id == "sensor.camera.rgb")
        assert (rgb.attributes["image_size_x"], rgb.attributes["image_size_y"]) == ("64", "32")
        assert rgb.transform.rotation.pitch == -5.0  # CARLA pitch up = positive
        assert obs.frame == server.frame
        obs2 = sim.step(Control(throttle=1.0))
        assert obs2.frame == obs.frame + 1
        assert obs2.image.shape == (32, 64, 3) and obs2.labels is not None
        assert obs2.sim_time_s == pytest.approx(2 * FIXED_DELTA_S)
    assert_server_clean(server)
    assert len(server.destroy_batches) == 1 and len(server.destroy_batches[0]) == 4


def test_stale_frames_are_dropped_and_late_frames_awaited() -> None:
    server = FakeServer()
    server.delivery = {
        "sensor.camera.semantic_segmentation": "stale_first",
        "sensor.camera.rgb": "late",
    }
    with make_sim(server) as sim:
        sim.reset()
        for _ in range(3):
            obs = sim.step(Control())
            assert obs.frame == server.frame
            assert obs.labels is not None and not (obs.labels == STALE_TAG).any()
            assert obs.image.any()  # the late RGB image arrived and was used
        assert obs.info["stale_frames_dropped"] >= 3


def test_exception_mid_episode_leaves_server_clean() -> None:
    server = FakeServer()
    sim = make_sim(server)
    with pytest.raises(ZeroDivisionError), sim:
        sim.reset()
        sim.step(Control(throttle=0.5))
        assert len(server.actors) == 8
        _ = 1 / 0
    assert_server_clean(server)
    sim.close()  # idempotent
    assert len(server.destroy_batches) == 1


def test_server_error_in_step_closes_session_and_raises_simulator_error() -> None:
    server = FakeServer()
    sim = make_sim(server)
    sim.reset()
    server.fail_at_tick = server.ticks + 1
    sim.step(Control())
    with pytest.raises(SimulatorError, match="CARLA tick failed on localhost:2000.*time-out"):
        sim.step(Control())
    server.fail_at_tick = None
    assert server.actors == {}
    assert server.settings.synchronous_mode is False and server.tm_sync == {8000: False}
    with pytest.raises(SimulatorError, match="before reset"):
        sim.step(Control())


def test_sigint_during_step_cleans_up_and_restores_handler() -> None:
    server = FakeServer()
    before = signal.getsignal(signal.SIGINT)
    sim = make_sim(server)
    sim.reset()
    assert signal.getsignal(signal.SIGINT) is not before
    server.on_tick.append(lambda frame: signal.raise_signal(signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        sim.step(Control(throttle=1.0))
    server.on_tick.clear()
    assert_server_clean(server)
    assert signal.getsignal(signal.SIGINT) is before


def test_sigint_from_another_thread_cleans_up() -> None:
    server = FakeServer()
    sim = make_sim(server, sensor_timeout_s=5.0)
    sim.reset()
    # The next step blocks waiting for an RGB image that never comes; Ctrl-C must cut it short.
    server.delivery = {"sensor.camera.rgb": "never"}
    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        sim.step(Control())
    assert time.monotonic() - start < 2.0
    assert_server_clean(server)


def test_silent_sensor_raises_clear_error_within_timeout() -> None:
    server = FakeServer()
    server.delivery = {"sensor.camera.semantic_segmentation": "never"}
    sim = make_sim(server, sensor_timeout_s=0.2)
    start = time.monotonic()
    with pytest.raises(
        SimulatorError, match=r"sensor 'semantic' gave no data for frame \d+ within 0.2 s"
    ):
        sim.reset()
    assert time.monotonic() - start < 2.0
    assert_server_clean(server)


def test_unreachable_server_is_a_simulator_error() -> None:
    server = FakeServer()
    server.reachable = False
    with pytest.raises(SimulatorError, match="no CARLA server at localhost:2000"):
        make_sim(server).reset()
    assert server.actors == {} and server.settings.synchronous_mode is False


def test_missing_carla_package_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "carla", None)  # makes `import carla` fail
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(MissingExtraError, match=r"pip install 'edgepilot\[carla\]'") as info:
        CarlaSimulator("town01", CAM).reset()
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    assert signal.getsignal(signal.SIGINT) is before


def test_version_mismatch_is_an_error_naming_both_versions_and_the_fix() -> None:
    server = FakeServer(version="0.9.15", client_version="0.9.16")
    with pytest.raises(
        SimulatorError,
        match=r"client 0.9.16 does not match server 0.9.15: install the matching client "
        r"\(pip install carla==0.9.15\) or run a 0.9.16 server",
    ):
        make_sim(server).reset()
    assert server.actors == {} and server.loads == [] and server.settings.synchronous_mode is False


def test_semantic_labels_come_from_red_channel() -> None:
    server = FakeServer()
    with make_sim(server) as sim:
        labels = sim.reset().labels
    assert labels is not None
    assert labels[0, 0] == TAG_IDS["Sky"] and labels[-1, 0] == TAG_IDS["Roads"]
    assert labels[16, 20] == TAG_IDS["Car"]
    assert set(np.unique(labels)) == {TAG_IDS["Sky"], TAG_IDS["Roads"], TAG_IDS["Car"]}


def test_old_server_tags_are_remapped() -> None:
    server = FakeServer(version="0.9.13")
    server.scene.append(SceneObject(TAG_IDS["RoadLine"], 0, 30, 64, 32, 1.0))
    with make_sim(server) as sim:
        obs = sim.reset()
    assert obs.labels is not None
    # The fake wrote 0.9.13 ids (Road 7, Vehicles 10, Sky 13, RoadLine 6); we read 0.9.14 ones.
    assert obs.labels[0, 0] == TAG_IDS["Sky"] == 11
    assert obs.labels[20, 0] == TAG_IDS["Roads"] == 1
    assert obs.labels[16, 20] == TAG_IDS["Car"] == 14
    assert obs.labels[31, 0] == TAG_IDS["RoadLine"] == 24


def test_ego_state_is_right_handed() -> None:
    server = FakeServer()
    # CARLA: 5 m to the right (y=+5), yaw 30 deg clockwise seen from above.
    server.spawn_points = [Transform(Location(10.0, 5.0, 0.3))]
    server.spawn_points[0].rotation.yaw = 30.0
    with make_sim(server, n_vehicles=0) as sim:
        sim.reset()
        obs = sim.step(Control(throttle=1.0))
    assert obs.ego.y_m < -5.0  # moved further right, i.e. south
    assert obs.ego.heading_rad == pytest.approx(-math.radians(30.0))
    assert obs.ego.x_m > 10.0
    assert obs.ego.speed_mps == pytest.approx(4 * FIXED_DELTA_S)


def test_boxes_are_occlusion_aware_and_inside_image() -> None:
    server = FakeServer()
    server.scene += [
        # a truck completely hidden behind a nearer building: no box
        SceneObject(TAG_IDS["Truck"], 40, 10, 50, 20, 30.0),
        SceneObject(TAG_IDS["Building"], 38, 8, 56, 24, 10.0),
        # a car partly hidden by a pole, and cut by the image edge
        SceneObject(TAG_IDS["Car"], 56, 14, 70, 22, 15.0),
        SceneObject(TAG_IDS["Pole"], 56, 0, 59, 32, 5.0),
    ]
    with make_sim(server) as sim:
        boxes = sim.reset().boxes
    assert sorted((b.tag, b.x1, b.y1, b.x2, b.y2) for b in boxes) == [
        (TAG_IDS["Car"], 16.0, 12.0, 26.0, 22.0),
        (TAG_IDS["Car"], 59.0, 14.0, 64.0, 22.0),
    ]
    assert all(0 <= b.x1 < b.x2 <= 64 and 0 <= b.y1 < b.y2 <= 32 for b in boxes)


def test_events_route_and_off_road() -> None:
    server = FakeServer()
    server.spawn_points = [Transform(Location(0.0, 0.0, 0.3))]
    with make_sim(server, n_vehicles=0) as sim:
        obs = sim.reset()
        assert obs.info["route_completion"] == 0.0 and obs.events.collision is False
        server.pending_collisions = ["walker.pedestrian.0001", "static.prop.bench"]
        server.pending_lane_invasions = 1
        obs = sim.step(Control())
        assert obs.events.collision and obs.events.collision_with == "pedestrian"
        assert obs.events.lane_invasion and not obs.events.off_road
        for _ in range(80):
            obs = sim.step(Control(throttle=1.0))
        assert obs.events.collision is False and obs.events.lane_invasion is False
        assert obs.info["distance_m"] > 10.0
        assert obs.info["progress_m"] == pytest.approx(obs.info["distance_m"])  # straight road
        assert obs.info["route_completion"] == pytest.approx(obs.info["progress_m"] / 300.0)
        ego = next(a for a in server.vehicles() if a.attributes["role_name"] == "hero")
        ego.transform.location.y = 20.0
        assert sim.step(Control()).events.off_road is True


def test_unknown_scenario_is_bad_input() -> None:
    with pytest.raises(EdgepilotError, match="unknown CARLA scenario 'mars'") as info:
        CarlaSimulator("mars", CAM, carla_module=FakeServer().module())
    assert info.value.exit_code == 2


def test_reset_twice_replaces_the_episode() -> None:
    server = FakeServer()
    with make_sim(server) as sim:
        sim.reset(seed=1)
        first = set(server.actors)
        sim.reset(seed=2)
        assert len(server.actors) == 8 and not first & set(server.actors)
        assert server.settings.synchronous_mode is True
    assert_server_clean(server)


def test_registry_builds_the_carla_backend() -> None:
    server = FakeServer()
    sim = make_simulator("carla", scenario="town02", camera=CAM, carla_module=server.module())
    assert isinstance(sim, CarlaSimulator) and sim.town == "Town02"
    with sim:
        assert sim.reset(seed=0).image.shape == (32, 64, 3)
        assert server.loads == ["Town02"] and len(server.vehicles()) == 1 + 5  # 6 spawn points
    assert_server_clean(server)


@pytest.mark.carla
def test_real_server_runs_a_few_steps() -> None:
    host = os.environ.get("CARLA_HOST")
    if not host:
        pytest.skip("CARLA_HOST is not set: no CARLA server to run against (see docs/carla.md)")
    pytest.importorskip("carla", reason="the carla client package is not installed")
    port = int(os.environ.get("CARLA_PORT", "2000"))
    with CarlaSimulator("town01", CAM, host=host, port=port, n_vehicles=5, seed=0) as sim:
        obs = sim.reset()
        for _ in range(10):
            obs = sim.step(Control(throttle=0.4))
        assert obs.image.shape == (32, 64, 3) and obs.labels is not None
        assert obs.labels.max() <= 28 and obs.ego.speed_mps >= 0.0
