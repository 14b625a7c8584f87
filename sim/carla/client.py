"""``CarlaSimulator``: the ``Simulator`` interface on a CARLA server (0.9.16; older remapped).

The harness steps live in ``sim.carla.harness``; this class orders them,
turns each tick into an ``Observation`` and guarantees cleanup: any exception
during ``reset``/``step`` (a dead server, a silent sensor, Ctrl-C) closes the
session before it propagates, so the server is left with no actors of ours and
its original (asynchronous) settings. Client errors come out as
``SimulatorError`` naming the harness step that failed.
"""

from __future__ import annotations

import atexit
import logging
import math
import random
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import numpy as np

from edgepilot.runtime.errors import EdgepilotError, SimulatorError, require
from edgepilot.sim.carla import harness
from edgepilot.sim.carla.decode import (
    bgra_to_rgb,
    collision_kind,
    ego_state,
    semantic_labels,
    uses_legacy_tags,
    vehicle_boxes,
)
from edgepilot.sim.carla.harness import FIXED_DELTA_S, Session, client_step
from edgepilot.sim.carla.route import route_points
from edgepilot.sim.carla.scenarios import resolve_scenario
from edgepilot.sim.route import RouteProgress
from edgepilot.sim.types import CameraConfig, Control, Events, Observation, Simulator

log = logging.getLogger("edgepilot.sim.carla")
T = TypeVar("T")


class CarlaSimulator(Simulator):
    """A CARLA episode: ego with front RGB + semantic cameras, NPC traffic on autopilot.

    ``timeout_s`` bounds every client call (long: loading a town takes tens of
    seconds); ``tick_timeout_s`` bounds one ``world.tick`` (short: a dead server
    is noticed within seconds); ``sensor_timeout_s`` bounds the wait for one
    camera image per tick. ``autopilot`` hands the ego to the Traffic Manager
    (also ``set_autopilot``). ``carla_module`` replaces ``import carla`` (tests
    pass a fake).
    """

    name = "carla"

    def __init__(
        self,
        scenario: str,
        camera: CameraConfig,
        host: str = "localhost",
        port: int = 2000,
        tm_port: int = 8000,
        town: str | None = None,
        n_vehicles: int | None = None,
        timeout_s: float = 60.0,
        tick_timeout_s: float = 5.0,
        sensor_timeout_s: float = 2.0,
        warmup_ticks: int = 10,
        seed: int | None = None,
        autopilot: bool = False,
        carla_module: Any = None,
    ) -> None:
        if min(timeout_s, tick_timeout_s, sensor_timeout_s) <= 0 or warmup_ticks < 0:
            raise EdgepilotError(
                "CARLA timeouts must be > 0 s and warmup_ticks >= 0, got "
                f"timeout_s={timeout_s}, tick_timeout_s={tick_timeout_s}, "
                f"sensor_timeout_s={sensor_timeout_s}, warmup_ticks={warmup_ticks}",
                exit_code=2,
            )
        self.scenario = resolve_scenario(scenario)
        self.town = town or self.scenario.town
        self.n_vehicles = self.scenario.n_vehicles if n_vehicles is None else n_vehicles
        self.camera = camera
        self.host, self.port, self.tm_port = host, port, tm_port
        self.timeout_s, self.tick_timeout_s = timeout_s, tick_timeout_s
        self.sensor_timeout_s = sensor_timeout_s
        self.warmup_ticks, self.seed = warmup_ticks, seed
        self.autopilot = autopilot
        self._carla = carla_module
        self._session: Session | None = None
        self._legacy_tags = False
        self._route: RouteProgress | None = None
        self._last_xy: tuple[float, float] | None = None
        self._distance_m = 0.0
        self._ticks = 0
        self._previous_sigint: Any = None
        self._sigint_installed = False

    # -- Simulator interface ---------------------------------------------------------

    def reset(self, seed: int | None = None) -> Observation:
        """Start (or restart) an episode; returns the first synchronised observation."""
        return self._guarded("reset", lambda: self._reset(self.seed if seed is None else seed))

    def step(self, control: Control) -> Observation:
        """Apply ``control``, advance the server by 0.05 s, return that tick's observation.

        While the autopilot drives, ``control`` is ignored: the Traffic Manager
        sets the ego's control each tick, and ours would fight it.
        """
        if self._session is None or self._session.ego is None:
            raise SimulatorError("CarlaSimulator.step before reset (or after close): call reset()")
        return self._guarded("step", lambda: self._step(control))

    @property
    def route_points_m(self) -> np.ndarray:
        """The episode's route, (N, 2) metres in EgoState's right-handed frame (CARLA's y flipped)."""
        if self._route is None:
            raise SimulatorError("CarlaSimulator.route_points_m before reset: call reset() first")
        return self._route.points_m * np.array([1.0, -1.0])

    @property
    def target_speed_mps(self) -> float:
        return float(self.scenario.target_speed_mps)

    @property
    def max_steps(self) -> int:
        return int(round(self.scenario.duration_s / FIXED_DELTA_S))

    def set_autopilot(self, enabled: bool) -> None:
        """Let CARLA's Traffic Manager drive the ego (now, and after every reset)."""
        self.autopilot = enabled
        session = self._session
        if session is not None and session.ego is not None:
            self._guarded("set autopilot", lambda: harness.set_autopilot(session, enabled))

    def close(self) -> None:
        """Destroy our actors and restore the server; idempotent, Ctrl-C ignored while it runs."""
        session, self._session = self._session, None
        atexit.unregister(self.close)
        if session is None:
            self._restore_sigint()
            return
        if self._sigint_installed and _in_main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup
        try:
            harness.teardown(session)
            log.info("CARLA session closed: actors destroyed, settings restored")
        finally:
            self._restore_sigint()

    # -- episode ---------------------------------------------------------------------

    def _reset(self, seed: int | None) -> Observation:
        if self._session is None:
            self._open()
        else:
            harness.destroy_episode(self._session)
        session = self._session
        assert session is not None
        with client_step("read spawn points", session.address):
            if seed is not None:
                session.tm.set_random_device_seed(seed)  # NPC behaviour repeats with the seed
            spawn_points = list(session.map.get_spawn_points())
        rng = random.Random(seed)
        rng.shuffle(spawn_points)
        ego_point, self._route = self._pick_start(session, spawn_points)
        npc_points = [p for p in spawn_points if p is not ego_point]
        harness.spawn_npcs(session, npc_points, self.n_vehicles, rng)
        harness.spawn_ego(session, ego_point)
        if self.autopilot:
            harness.set_autopilot(session, True)
        harness.attach_sensors(session, self.camera)
        harness.warm_up(session, self.warmup_ticks)
        self._ticks, self._distance_m, self._last_xy = 0, 0.0, None
        return self._step(Control(brake=1.0))

    def _open(self) -> None:
        carla = self._carla or require("carla", "carla", "the carla simulator")
        self._install_sigint()
        # A Ctrl-C between our calls unwinds through user code; if nothing closes us
        # on the way out, the interpreter's exit still does.
        atexit.register(self.close)
        self._session = harness.connect(
            carla, self.host, self.port, self.timeout_s, self.tick_timeout_s
        )
        self._legacy_tags = uses_legacy_tags(self._session.server_version)
        harness.load_town(self._session, self.town)
        harness.enter_synchronous_mode(self._session, self.tm_port)

    def _pick_start(self, session: Session, spawn_points: list[Any]) -> tuple[Any, RouteProgress]:
        """The first spawn point with a lane ahead of it, and the route from there."""
        length_m, step_m = self.scenario.route_length_m, self.scenario.route_step_m
        with client_step("plan the route", session.address):
            for point in spawn_points:
                points = route_points(session.map.get_waypoint(point.location), length_m, step_m)
                if len(points) >= 2:
                    return point, RouteProgress(points)
                log.debug("spawn point %s is a dead end: no route from it", point)
        raise SimulatorError(
            f"none of the {len(spawn_points)} spawn points of {self.town} has a lane ahead "
            f"to route along: choose another town or scenario"
        )

    def _step(self, control: Control) -> Observation:
        session = self._session
        assert session is not None
        if not self.autopilot:
            c = control.clipped()
            with client_step("apply control", session.address):
                session.ego.apply_control(
                    session.carla.VehicleControl(throttle=c.throttle, steer=c.steer, brake=c.brake)
                )
        frame = harness.tick(session)
        self._ticks += 1
        return self._observe(session, frame)

    def _observe(self, session: Session, frame: int) -> Observation:
        rgb = session.queues["rgb"].get(frame, self.sensor_timeout_s)
        sem = session.queues["semantic"].get(frame, self.sensor_timeout_s)
        image = bgra_to_rgb(rgb.raw_data, rgb.width, rgb.height)  # (H, W, 3) RGB
        labels = semantic_labels(sem.raw_data, sem.width, sem.height, self._legacy_tags)  # (H, W)
        with client_step("read the ego state", session.address):
            transform = session.ego.get_transform()
            loc, velocity = transform.location, session.ego.get_velocity()
            events = self._events(session, loc)
        ego = ego_state(loc.x, loc.y, transform.rotation.yaw, (velocity.x, velocity.y, velocity.z))
        return Observation(
            image=image,
            labels=labels,
            boxes=vehicle_boxes(labels),
            ego=ego,
            events=events,
            sim_time_s=self._ticks * FIXED_DELTA_S,
            frame=int(frame),
            info=self._info(session, loc.x, loc.y),
        )

    def _info(self, session: Session, x_m: float, y_m: float) -> dict[str, Any]:
        """Route progress (``sim.route``), odometer and session facts; metres, CARLA frame."""
        assert self._route is not None
        if self._last_xy is not None:
            self._distance_m += math.hypot(x_m - self._last_xy[0], y_m - self._last_xy[1])
        self._last_xy = (x_m, y_m)
        return {
            "route_completion": self._route.update(x_m, y_m),
            "progress_m": self._route.progress_m,
            "route_length_m": self._route.length_m,
            "distance_m": self._distance_m,
            "stale_frames_dropped": session.queues["rgb"].dropped
            + session.queues["semantic"].dropped,
            "town": self.town,
            "server_version": session.server_version,
        }

    def _events(self, session: Session, location: Any) -> Events:
        collisions = session.queues["collision"].drain()
        lane_invasions = session.queues["lane"].drain()
        # Not on a driving lane <=> no Driving waypoint under the ego without projection.
        waypoint = session.map.get_waypoint(
            location, project_to_road=False, lane_type=session.carla.LaneType.Driving
        )
        return Events(
            collision=bool(collisions),
            collision_with=collision_kind(collisions[0].other_actor.type_id) if collisions else "",
            lane_invasion=bool(lane_invasions),
            off_road=waypoint is None,
        )

    # -- cleanup guarantees ----------------------------------------------------------

    def _guarded(self, what: str, action: Callable[[], T]) -> T:
        """Run ``action``; on any exception close the session first, then re-raise.

        Client errors outside a named harness step are wrapped here, named ``what``.
        """
        try:
            return action()
        except BaseException as exc:
            self.close()
            if isinstance(exc, SimulatorError) or not harness.is_client_error(exc):
                raise
            raise SimulatorError(
                f"CARLA {what} failed on {self.host}:{self.port}: {type(exc).__name__}: {exc}; "
                f"the session was closed"
            ) from exc

    def _install_sigint(self) -> None:
        # Some hosts (e.g. an embedding app) swallow SIGINT; we need Ctrl-C to unwind
        # through _guarded so the server is cleaned. Only the main thread may set handlers.
        if self._sigint_installed or not _in_main_thread():
            return
        self._previous_sigint = signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
        self._sigint_installed = True

    def _restore_sigint(self) -> None:
        # Handlers can only be changed from the main thread; a close() from another
        # thread leaves ours in place, and it only raises KeyboardInterrupt.
        if self._sigint_installed and _in_main_thread():
            # None means the old handler was not set from Python; the default is the best guess.
            previous = self._previous_sigint
            signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
            self._sigint_installed = False
            self._previous_sigint = None


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum} during a CARLA session")
