"""A fake of the ``carla`` client API, as much of it as ``sim.carla`` uses.

``FakeServer`` holds the state a real server would (live actors, world
settings, Traffic Manager mode, the frame counter) so tests can assert on it;
``server.module()`` returns an object that stands in for ``import carla``.
Sensors deliver on ``world.tick()`` according to ``server.delivery[type_id]``:
``"ok"`` (during the tick), ``"stale_first"`` (an older frame first), ``"late"``
(from a timer thread ``late_s`` after the tick) or ``"never"``.

The world is a straight road along +x (CARLA coordinates: x forward, y right);
cameras render ``scene`` with ``fake_carla_scene.render_camera``.
"""

from __future__ import annotations

import math
import socket
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tests.sim.fake_carla_scene import (
    FakeImage,
    SceneObject,
    default_scene,
    render_camera,
)
from tests.sim.fake_carla_types import (
    BLUEPRINTS,
    ArgumentError,
    Blueprint,
    BlueprintLibrary,
    DestroyActor,
    FutureActor,
    LaneType,
    Location,
    Response,
    Rotation,
    SetAutopilot,
    SpawnActor,
    TrafficManager,
    Transform,
    Vector3D,
    VehicleControl,
    Waypoint,
    WorldSettings,
    _Command,
)

__all__ = ["ArgumentError", "FakeServer", "Location", "Rotation", "Transform"]

# Speed the fake Traffic Manager drives autopilot vehicles at (m/s).
AUTOPILOT_SPEED_MPS = 8.0


@dataclass
class FakeEvent:
    frame: int
    other_actor: Any = None


class Actor:
    def __init__(
        self, server: FakeServer, bp: Blueprint, transform: Transform, parent: Any
    ) -> None:
        self.server = server
        self.id = server.next_id()
        self.type_id = bp.id
        self.attributes = dict(bp.attributes)
        self.transform = replace(transform, location=Location(**vars(transform.location)))
        self.parent = parent
        self.speed_mps = 0.0
        self.control = VehicleControl()
        self.controls_under_autopilot = 0  # apply_control calls while the TM drives
        self.autopilot_port: int | None = None
        self.callback: Callable[[Any], None] | None = None

    def get_transform(self) -> Transform:
        self.server.check("get_transform")
        return self.transform

    def get_velocity(self) -> Vector3D:
        yaw = math.radians(self.transform.rotation.yaw)
        return Vector3D(self.speed_mps * math.cos(yaw), self.speed_mps * math.sin(yaw), 0.0)

    def apply_control(self, control: VehicleControl) -> None:
        self.server.check("apply_control")
        self.controls_under_autopilot += self.autopilot_port is not None
        self.control = control

    def set_autopilot(self, enabled: bool = True, tm_port: int = 8000) -> None:
        self.server.check("set_autopilot")
        self.autopilot_port = tm_port if enabled else None

    def listen(self, callback: Callable[[Any], None]) -> None:
        self.callback = callback

    def stop(self) -> None:
        self.callback = None

    def destroy(self) -> bool:
        return self.server.actors.pop(self.id, None) is not None


class Map:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.name = f"Carla/Maps/{server.town}"

    def get_spawn_points(self) -> list[Transform]:
        return list(self.server.spawn_points)

    def get_waypoint(
        self, location: Location, project_to_road: bool = True, lane_type: int = LaneType.Driving
    ) -> Waypoint | None:
        on_road = abs(location.y) <= self.server.road_half_width_m
        if not on_road and not project_to_road:
            return None
        where = Location(location.x, 0.0 if not on_road else location.y)
        return Waypoint(Transform(where), end_x=self.server.road_end_x_m)


class World:
    def __init__(self, server: FakeServer, client: Client) -> None:
        self.server, self.client = server, client

    def get_map(self) -> Map:
        return Map(self.server)

    def get_settings(self) -> WorldSettings:
        return replace(self.server.settings)

    def apply_settings(self, settings: WorldSettings) -> int:
        """Like the real server: in synchronous mode with a fixed step, applying ticks."""
        self.server.settings = replace(settings)
        if settings.synchronous_mode and settings.fixed_delta_seconds:
            return self.server.tick(self.client.timeout_s)
        return self.server.frame

    def get_blueprint_library(self) -> BlueprintLibrary:
        self.server.check("get_blueprint_library")
        return BlueprintLibrary(Blueprint(i) for i in BLUEPRINTS)

    def spawn_actor(self, bp: Blueprint, transform: Transform, attach_to: Any = None) -> Actor:
        self.server.check("spawn_actor")
        actor = self.server.spawn(bp, transform, attach_to)
        if actor is None:
            raise RuntimeError("Spawn failed because of collision at spawn position")
        return actor

    def try_spawn_actor(
        self, bp: Blueprint, transform: Transform, attach_to: Any = None
    ) -> Actor | None:
        self.server.check("try_spawn_actor")
        return self.server.spawn(bp, transform, attach_to)

    def tick(self, seconds: float | None = None) -> int:
        """Without ``seconds`` the wait is bounded by the client's time-out (recorded)."""
        self.server.check("world.tick")
        timeout = self.client.timeout_s if seconds is None else seconds
        self.server.tick_timeouts.append(timeout)
        return self.server.tick(timeout)


class Client:
    def __init__(self, server: FakeServer, host: str, port: int) -> None:
        if host not in server.hosts:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        server.check("Client")
        self.server, self.host, self.port = server, host, port
        self.timeout_s: float = 5.0  # the real client's default

    def set_timeout(self, seconds: float) -> None:
        self.timeout_s = seconds

    def get_client_version(self) -> str:
        return self.server.client_version

    def get_server_version(self) -> str:
        if not self.server.reachable:
            raise RuntimeError(f"time-out of {self.timeout_s}s while waiting for the simulator")
        return self.server.version

    def get_world(self) -> World:
        return World(self.server, self)

    def load_world(self, town: str) -> World:
        self.server.check("load_world")
        self.server.town = town
        self.server.loads.append(town)
        self.server.settings = WorldSettings()  # loading a map resets the settings
        return World(self.server, self)

    def get_trafficmanager(self, port: int = 8000) -> TrafficManager:
        return TrafficManager(self.server, port)

    def apply_batch_sync(self, commands: list[_Command], do_tick: bool = False) -> list[Response]:
        """One response per command, in command order, like the real client."""
        responses = []
        destroyed: list[int] = []
        for c in commands:
            if isinstance(c, DestroyActor):
                destroyed.append(c.args[0])
                self.server.actors.pop(c.args[0], None)
                responses.append(Response(c.args[0]))
            else:
                responses.append(self.server.run_spawn(c))
        if destroyed:
            self.server.destroy_batches.append(destroyed)
        if do_tick:
            self.server.tick(self.timeout_s)
        return responses

    def apply_batch(self, commands: list[_Command]) -> None:
        ids = [c.args[0] for c in commands if isinstance(c, DestroyActor)]
        self.server.destroy_batches.append(ids)
        for actor_id in ids:
            self.server.actors.pop(actor_id, None)


class FakeServer:
    """State of one fake CARLA server; tests configure and inspect its attributes.

    Failure injection: ``fail_on[name] = exc`` raises ``exc`` from the fake call
    ``name`` (``"Client"``, ``"load_world"``, ``"spawn_actor"``, ``"tick"``, ...);
    ``fail_at_tick`` fails ticks from that count on; ``hang_ticks`` makes ticks
    wait out their time-out and raise like a server that stopped answering.
    """

    def __init__(self, version: str = "0.9.16", client_version: str | None = None) -> None:
        self.version = version
        self.client_version = client_version or version
        self.reachable = True
        self.hosts = {"localhost", "127.0.0.1"}
        self.town = "Town10HD_Opt"
        self.loads: list[str] = []
        self.settings = WorldSettings(synchronous_mode=False, fixed_delta_seconds=None)
        self.tm_sync: dict[int, bool] = {}
        self.tm_seed: int | None = None
        self.actors: dict[int, Actor] = {}
        self.destroy_batches: list[list[int]] = []
        self.frame = 1000
        self.ticks = 0
        self.tick_timeouts: list[float] = []
        self.spawn_points = [Transform(Location(30.0 * i, 0.0, 0.3)) for i in range(6)]
        self.road_half_width_m = 7.0
        self.road_end_x_m = math.inf
        self.scene: list[SceneObject] = default_scene(64, 32)
        self.delivery: dict[str, str] = {}
        self.late_s = 0.05
        self.fail_on: dict[str, BaseException] = {}
        self.fail_at_tick: int | None = None
        self.hang_ticks = False
        self.on_tick: list[Callable[[int], None]] = []
        self.pending_collisions: list[str] = []
        self.pending_lane_invasions = 0
        self._next_id = 1

    def module(self) -> types.SimpleNamespace:
        """The stand-in for ``import carla``; its Client connects to this server."""
        server = self
        return types.SimpleNamespace(
            Client=lambda host, port, worker_threads=0: Client(server, host, port),
            Location=Location,
            Rotation=Rotation,
            Transform=Transform,
            Vector3D=Vector3D,
            VehicleControl=VehicleControl,
            WorldSettings=WorldSettings,
            LaneType=LaneType,
            command=types.SimpleNamespace(
                SpawnActor=SpawnActor,
                SetAutopilot=SetAutopilot,
                DestroyActor=DestroyActor,
                FutureActor=FutureActor,
            ),
        )

    def check(self, call: str) -> None:
        """Raise the exception injected for ``call``, if any (it stays injected)."""
        exc = self.fail_on.get(call)
        if exc is not None:
            raise exc

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def vehicles(self) -> list[Actor]:
        return [a for a in self.actors.values() if a.type_id.startswith("vehicle.")]

    def spawn(self, bp: Blueprint, transform: Transform, parent: Any) -> Actor | None:
        if parent is None and bp.id.startswith("vehicle."):
            loc = transform.location
            for other in self.vehicles():
                o = other.transform.location
                if math.hypot(o.x - loc.x, o.y - loc.y) < 2.0:
                    return None
        actor = Actor(self, bp, transform, parent)
        self.actors[actor.id] = actor
        return actor

    def run_spawn(self, command: _Command) -> Response:
        bp, transform = command.args[:2]
        actor = self.spawn(bp, transform, None)
        if actor is None:
            return Response(error="Spawn failed because of collision at spawn position")
        for chained in command.chained:
            if isinstance(chained, SetAutopilot):
                actor.autopilot_port = chained.args[2]
        return Response(actor_id=actor.id)

    def tick(self, timeout_s: float) -> int:
        self.check("tick")
        if self.hang_ticks:
            threading.Event().wait(timeout_s)  # nobody answers
            raise RuntimeError(
                f"time-out of {int(timeout_s * 1000)}ms while waiting for the simulator, "
                f"make sure the simulator is ready and connected to localhost:2000"
            )
        if self.fail_at_tick is not None and self.ticks >= self.fail_at_tick:
            raise RuntimeError("time-out of 10000ms while waiting for the simulator")
        self.ticks += 1
        self.frame += 1
        self._move_vehicles(self.settings.fixed_delta_seconds or 0.05)
        for hook in self.on_tick:
            hook(self.frame)
        self._deliver(self.frame)
        return self.frame

    def _move_vehicles(self, dt: float) -> None:
        """Our control, or the Traffic Manager's cruise for autopilot vehicles, for ``dt`` s."""
        for actor in self.vehicles():
            if actor.autopilot_port is not None:
                actor.speed_mps = min(AUTOPILOT_SPEED_MPS, actor.speed_mps + 4.0 * dt)
            else:
                c = actor.control
                actor.speed_mps = max(0.0, actor.speed_mps + (4 * c.throttle - 8 * c.brake) * dt)
            yaw = math.radians(actor.transform.rotation.yaw)
            actor.transform.location.x += actor.speed_mps * math.cos(yaw) * dt
            actor.transform.location.y += actor.speed_mps * math.sin(yaw) * dt

    def _deliver(self, frame: int) -> None:
        for sensor in list(self.actors.values()):
            if sensor.callback is None or not sensor.type_id.startswith("sensor."):
                continue
            if sensor.type_id == "sensor.other.collision":
                for other in self.pending_collisions:
                    sensor.callback(FakeEvent(frame, types.SimpleNamespace(type_id=other)))
            elif sensor.type_id == "sensor.other.lane_invasion":
                for _ in range(self.pending_lane_invasions):
                    sensor.callback(FakeEvent(frame))
            else:
                self._deliver_image(sensor, frame)
        self.pending_collisions, self.pending_lane_invasions = [], 0

    def _deliver_image(self, sensor: Actor, frame: int) -> None:
        mode = self.delivery.get(sensor.type_id, "ok")
        callback = sensor.callback
        if mode == "never" or callback is None:
            return
        if mode == "stale_first":
            callback(self.render(sensor, frame - 1, stale=True))
        image = self.render(sensor, frame)
        if mode == "late":
            # Like a real client, a stopped sensor no longer calls back.
            timer = threading.Timer(self.late_s, lambda: sensor.callback and sensor.callback(image))
            timer.daemon = True
            timer.start()
        else:
            callback(image)

    def render(self, sensor: Actor, frame: int, stale: bool = False) -> FakeImage:
        """What the camera ``sensor`` sees at ``frame`` (a stale image is all STALE_TAG)."""
        w, h = int(sensor.attributes["image_size_x"]), int(sensor.attributes["image_size_y"])
        scene = [] if stale else self.scene
        return render_camera(sensor.type_id, w, h, scene, frame, self.version, stale)
