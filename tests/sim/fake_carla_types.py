"""Plain parts of the fake ``carla`` module: geometry, settings, waypoints, the Traffic
Manager, blueprints, commands.

They are as strict as the real client where the backend could go wrong:
``BlueprintLibrary.find`` of an unknown id raises IndexError,
``Blueprint.set_attribute`` takes strings only (Boost.Python's ArgumentError
otherwise) and rejects unknown attributes (IndexError), and ``then()`` returns
a new command instead of changing the one it is called on.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any


class ArgumentError(TypeError):
    """Stands in for ``Boost.Python.ArgumentError``, which Python code cannot import."""


ArgumentError.__module__ = "Boost.Python"


@dataclass
class Vector3D:
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


class Location(Vector3D):
    pass


@dataclass
class Rotation:
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0


@dataclass
class Transform:
    location: Location = field(default_factory=Location)
    rotation: Rotation = field(default_factory=Rotation)


@dataclass
class WorldSettings:
    synchronous_mode: bool = False
    no_rendering_mode: bool = False
    fixed_delta_seconds: float | None = None


@dataclass
class VehicleControl:
    throttle: float = 0.0
    steer: float = 0.0
    brake: float = 0.0


class LaneType:
    Driving = 2
    Any = -2


@dataclass
class Waypoint:
    """A lane point on the fake road; the road ends (``next`` is ``[]``) at ``end_x``."""

    transform: Transform
    lane_type: int = LaneType.Driving
    end_x: float = math.inf

    def next(self, distance_m: float) -> list[Waypoint]:
        loc = self.transform.location
        if loc.x + distance_m > self.end_x:
            return []
        ahead = Transform(Location(loc.x + distance_m, loc.y, loc.z))
        return [Waypoint(ahead, self.lane_type, self.end_x)]


class TrafficManager:
    def __init__(self, server: Any, port: int) -> None:
        self.server, self.port = server, port

    def get_port(self) -> int:
        return self.port

    def set_synchronous_mode(self, enabled: bool) -> None:
        self.server.tm_sync[self.port] = enabled

    def set_random_device_seed(self, seed: int) -> None:
        self.server.tm_seed = seed


_CAMERA = {"image_size_x": "800", "image_size_y": "600", "fov": "90.0", "sensor_tick": "0.0"}
BLUEPRINTS: dict[str, dict[str, str]] = {
    "vehicle.tesla.model3": {"number_of_wheels": "4", "color": "17,37,103"},
    "vehicle.audi.a2": {"number_of_wheels": "4", "color": "0,0,0"},
    "vehicle.carlamotors.carlacola": {"number_of_wheels": "4"},
    "sensor.camera.rgb": dict(_CAMERA),
    "sensor.camera.semantic_segmentation": dict(_CAMERA),
    "sensor.other.collision": {},
    "sensor.other.lane_invasion": {},
}


class Blueprint:
    def __init__(self, bp_id: str) -> None:
        self.id = bp_id
        self.attributes: dict[str, str] = {"role_name": "", **BLUEPRINTS[bp_id]}

    def has_attribute(self, name: str) -> bool:
        return name in self.attributes

    def set_attribute(self, name: str, value: str) -> None:
        if not isinstance(name, str) or not isinstance(value, str):
            raise ArgumentError(
                "Python argument types in\n    ActorBlueprint.set_attribute(ActorBlueprint, "
                f"{type(name).__name__}, {type(value).__name__})\ndid not match C++ signature:\n"
                "    set_attribute(carla::client::ActorBlueprint {lvalue}, std::string, std::string)"
            )
        if name not in self.attributes:
            raise IndexError(f"attribute '{name}' not found in blueprint '{self.id}'")
        self.attributes[name] = value


class BlueprintLibrary(list):
    def filter(self, pattern: str) -> BlueprintLibrary:
        return BlueprintLibrary(Blueprint(b.id) for b in self if fnmatch.fnmatch(b.id, pattern))

    def find(self, bp_id: str) -> Blueprint:
        for b in self:
            if b.id == bp_id:
                return Blueprint(b.id)
        raise IndexError(f"blueprint '{bp_id}' not found")


@dataclass
class Response:
    actor_id: int = 0
    error: str = ""


class _Command:
    def __init__(self, *args: Any) -> None:
        self.args = args
        self.chained: tuple[_Command, ...] = ()

    def then(self, command: _Command) -> _Command:
        copy = type(self)(*self.args)
        copy.chained = (*self.chained, command)
        return copy


class SpawnActor(_Command):
    pass


class SetAutopilot(_Command):
    pass


class DestroyActor(_Command):
    pass


FutureActor = object()
