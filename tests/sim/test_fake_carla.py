"""The fake CARLA client behaves like the real one where the backend could get it wrong."""

from __future__ import annotations

import pytest

from edgepilot.sim.types import Control
from tests.sim.fake_carla import ArgumentError, FakeServer, Location, Transform
from tests.sim.sim_helpers import make_sim


def _world(server: FakeServer):
    return server.module().Client("localhost", 2000).get_world()


def test_blueprints_are_strict_like_the_real_library() -> None:
    library = _world(FakeServer()).get_blueprint_library()
    with pytest.raises(IndexError, match="sensor.camera.thermal"):
        library.find("sensor.camera.thermal")
    bp = library.find("sensor.camera.rgb")
    with pytest.raises(ArgumentError) as info:
        bp.set_attribute("fov", 90.0)  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError) and type(info.value).__name__ == "ArgumentError"
    with pytest.raises(IndexError, match="'exposure_magic'"):
        bp.set_attribute("exposure_magic", "1")
    bp.set_attribute("fov", "90.0")
    assert bp.attributes["fov"] == "90.0"


def test_camera_raw_data_is_a_read_only_memoryview() -> None:
    server = FakeServer()
    with make_sim(server) as sim:
        sim.reset()
        obs = sim.step(Control())
        camera = next(a for a in server.actors.values() if a.type_id == "sensor.camera.rgb")
        raw = server.render(camera, server.frame).raw_data
    assert isinstance(raw, memoryview) and raw.readonly
    with pytest.raises(TypeError):
        raw[0] = 1
    assert obs.image.flags.writeable  # decoded into an array of our own


def test_apply_settings_in_synchronous_mode_ticks() -> None:
    server = FakeServer()
    world = _world(server)
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = True, 0.05
    frame = server.frame
    assert world.apply_settings(settings) == frame + 1 == server.frame
    settings.synchronous_mode, settings.fixed_delta_seconds = False, None
    assert world.apply_settings(settings) == server.frame == frame + 1  # asynchronous: no tick


def test_then_returns_a_new_command() -> None:
    command = FakeServer().module().command
    spawn = command.SpawnActor("bp", Transform())
    chained = spawn.then(command.SetAutopilot(command.FutureActor, True, 8000))
    assert chained is not spawn and spawn.chained == () and len(chained.chained) == 1


def test_waypoint_next_is_empty_at_a_dead_end() -> None:
    server = FakeServer()
    server.road_end_x_m = 10.0
    waypoint = _world(server).get_map().get_waypoint(Location(7.0, 0.0, 0.0))
    assert waypoint is not None
    assert [w.transform.location.x for w in waypoint.next(2.0)] == [9.0]
    assert waypoint.next(4.0) == []


def test_apply_batch_sync_answers_in_command_order() -> None:
    server = FakeServer()
    module = server.module()
    client = module.Client("localhost", 2000)
    bp = client.get_world().get_blueprint_library().find("vehicle.audi.a2")
    cmd = module.command
    first = client.apply_batch_sync([cmd.SpawnActor(bp, Transform(Location(0.0, 0.0, 0.3)))])[0]
    responses = client.apply_batch_sync([
        cmd.DestroyActor(first.actor_id),
        cmd.SpawnActor(bp, Transform(Location(50.0, 0.0, 0.3))),
    ])
    assert responses[0].actor_id == first.actor_id and responses[0].error == ""
    assert responses[1].actor_id in server.actors and first.actor_id not in server.actors
