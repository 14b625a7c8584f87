"""The simulator interface: what every backend (builtin, carla) returns and accepts.

Agent code sees only these records; it never knows which backend it drives.
Units: metres, seconds, radians, metres per second. Images are HxWx3 uint8 RGB;
label images are HxW uint8 CARLA 0.9.14+ tag ids (see ``sim.tags``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, slots=True)
class Control:
    """Vehicle command. steer in [-1, 1] (positive = right), throttle and brake in [0, 1]."""

    steer: float = 0.0
    throttle: float = 0.0
    brake: float = 0.0

    def clipped(self) -> Control:
        return Control(
            float(np.clip(self.steer, -1.0, 1.0)),
            float(np.clip(self.throttle, 0.0, 1.0)),
            float(np.clip(self.brake, 0.0, 1.0)),
        )


@dataclass(frozen=True, slots=True)
class Box2D:
    """A 2D box in image pixels (x2, y2 exclusive), with its CARLA tag id."""

    tag: int
    x1: float
    y1: float
    x2: float
    y2: float
    actor_id: int = -1


@dataclass(frozen=True, slots=True)
class EgoState:
    """Ego pose in the world frame: x forward-east, y north (right-handed), heading ccw from +x."""

    x_m: float
    y_m: float
    heading_rad: float
    speed_mps: float


@dataclass(frozen=True, slots=True)
class Events:
    """What happened during the last step."""

    collision: bool = False
    collision_with: str = ""  # "vehicle", "static", "pedestrian" or ""
    lane_invasion: bool = False
    off_road: bool = False


@dataclass(frozen=True, slots=True)
class Observation:
    """One synchronised snapshot: the camera image and ground truth from the same tick."""

    image: np.ndarray  # HxWx3 uint8 RGB
    labels: np.ndarray | None  # HxW uint8 CARLA tag ids, None when the backend has none
    boxes: tuple[Box2D, ...]
    ego: EgoState
    events: Events
    sim_time_s: float
    frame: int
    info: dict = field(default_factory=dict)


class Simulator(ABC):
    """reset(seed) -> Observation, step(Control) -> Observation, close(); a context manager.

    ``close`` must be idempotent and must release everything the backend created
    (actors, sensors, threads, server settings), also after an exception.
    """

    name: str = "abstract"

    @abstractmethod
    def reset(self, seed: int | None = None) -> Observation: ...

    @abstractmethod
    def step(self, control: Control) -> Observation: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Simulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@runtime_checkable
class Autopilot(Protocol):
    """A simulator whose own autopilot can drive the ego (CARLA's Traffic Manager).

    ``set_autopilot(True)`` holds for later resets too; while it is on, ``step``
    ignores the control it is given.
    """

    def set_autopilot(self, enabled: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class CameraConfig:
    """Front camera on the ego, defaults like CARLA's usual front RGB camera.

    x_m is forward of the ego centre, z_m the mount height above the road,
    pitch_deg positive looks down.
    """

    width: int = 512
    height: int = 256
    fov_deg: float = 90.0
    x_m: float = 1.5
    z_m: float = 1.6
    pitch_deg: float = 0.0
