"""``CarlaSimulator``: the ``Simulator`` interface on a CARLA server (0.9.14+; older remapped).

The harness steps live in ``sim.carla.harness``; this class orders them,
turns each tick into an ``Observation`` and guarantees cleanup: any exception
during ``reset``/``step`` (a dead server, a silent sensor, Ctrl-C) closes the
session before it propagates, so the server is left with no actors of ours and
its original (asynchronous) settings.
"""

from __future__ import annotations

import atexit
import logging
import random
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

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
from edgepilot.sim.carla.harness import FIXED_DELTA_S, Session
from edgepilot.sim.carla.route import Route, route_points
from edgepilot.sim.carla.scenarios import resolve_scenario
from edgepilot.sim.types import CameraConfig, Control, Events, Observation, Simulator

log = logging.getLogger("edgepilot.sim.carla")
T = TypeVar("T")


class CarlaSimulator(Simulator):
    """A CARLA episode: ego with front RGB + semantic cameras, NPC traffic on autopilot.

    ``timeout_s`` bounds every client call (long: loading a town takes tens of
    seconds); ``sensor_timeout_s`` bounds the wait for one camera image per tick.
    ``carla_module`` replaces ``import carla`` (tests pass a fake).
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
        sensor_timeout_s: float = 2.0,
        warmup_ticks: int = 10,
        seed: int | None = None,
        carla_module: Any = None,
    ) -> None:
        if sensor_timeout_s <= 0 or timeout_s <= 0 or warmup_ticks < 0:
            raise EdgepilotError(
                "CARLA timeouts must be > 0 s and warmup_ticks >= 0, got "
                f"timeout_s={timeout_s}, sensor_timeout_s={sensor_timeout_s}, "
                f"warmup_ticks={warmup_ticks}",
                exit_code=2,
            )
        self.scenario = resolve_scenario(scenario)
        self.town = town or self.scenario.town
        self.n_vehicles = self.scenario.n_vehicles if n_vehicles is None else n_vehicles
        self.camera = camera
        self.host, self.port, self.tm_port = host, port, tm_port
        self.timeout_s, self.sensor_timeout_s = timeout_s, sensor_timeout_s
        self.warmup_ticks, self.seed = warmup_ticks, seed
        self._carla = carla_module
        self._session: Session | None = None
        self._legacy_tags = False
        self._route: Route | None = None
        self._ticks = 0
        self._previous_sigint: Any = None
        self._sigint_installed = False

    # -- Simulator interface ---------------------------------------------------------

    def reset(self, seed: int | None = None) -> Observation:
        """Start (or restart) an episode; returns the first synchronised observation."""
        return self._guarded("reset", lambda: self._reset(self.seed if seed is None else seed))

    def step(self, control: Control) -> Observation:
        """Apply ``control``, advance the server by 0.05 s, return that tick's observation."""
        if self._session is None or self._session.ego is None:
            raise SimulatorError("CarlaSimulator.step before reset (or after close): call reset()")
        return self._guarded("step", lambda: self._step(control))

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
        if seed is not None:
            session.tm.set_random_device_seed(seed)  # NPC behaviour repeats with the seed
        rng = random.Random(seed)
        spawn_points = list(session.map.get_spawn_points())
        if not spawn_points:
            raise SimulatorError(f"town {self.town} has no spawn points")
        rng.shuffle(spawn_points)
        ego_point, npc_points = spawn_points[0], spawn_points[1:]
        harness.spawn_npcs(session, npc_points, self.n_vehicles, rng)
        harness.spawn_ego(session, ego_point)
        harness.attach_sensors(session, self.camera)
        self._route = self._plan_route(session, ego_point)
        harness.warm_up(session, self.warmup_ticks)
        self._ticks = 0
        return self._step(Control(brake=1.0))

    def _open(self) -> None:
        carla = self._carla or require("carla", "carla", "the carla simulator")
        self._install_sigint()
        # A Ctrl-C between our calls unwinds through user code; if nothing closes us
        # on the way out, the interpreter's exit still does.
        atexit.register(self.close)
        self._session = harness.connect(carla, self.host, self.port, self.timeout_s)
        self._legacy_tags = uses_legacy_tags(self._session.server_version)
        harness.load_town(self._session, self.town)
        harness.enter_synchronous_mode(self._session, self.tm_port)

    def _plan_route(self, session: Session, start: Any) -> Route:
        waypoint = session.map.get_waypoint(start.location)
        step_m = self.scenario.route_step_m
        return Route(route_points(waypoint, self.scenario.route_length_m, step_m), step_m)

    def _step(self, control: Control) -> Observation:
        session = self._session
        assert session is not None
        c = control.clipped()
        vehicle_control = session.carla.VehicleControl(
            throttle=c.throttle, steer=c.steer, brake=c.brake
        )
        session.ego.apply_control(vehicle_control)
        frame = session.world.tick()
        self._ticks += 1
        return self._observe(session, frame)

    def _observe(self, session: Session, frame: int) -> Observation:
        rgb = session.queues["rgb"].get(frame, self.sensor_timeout_s)
        sem = session.queues["semantic"].get(frame, self.sensor_timeout_s)
        image = bgra_to_rgb(rgb.raw_data, rgb.width, rgb.height)  # (H, W, 3) RGB
        labels = semantic_labels(sem.raw_data, sem.width, sem.height, self._legacy_tags)  # (H, W)
        transform = session.ego.get_transform()
        loc, velocity = transform.location, session.ego.get_velocity()
        ego = ego_state(loc.x, loc.y, transform.rotation.yaw, (velocity.x, velocity.y, velocity.z))
        assert self._route is not None
        self._route.update(loc.x, loc.y)
        return Observation(
            image=image,
            labels=labels,
            boxes=vehicle_boxes(labels),
            ego=ego,
            events=self._events(session, loc),
            sim_time_s=self._ticks * FIXED_DELTA_S,
            frame=int(frame),
            info={
                "route_completion": self._route.completion,
                "distance_m": self._route.distance_m,
                "route_length_m": self._route.length_m,
                "stale_frames_dropped": session.queues["rgb"].dropped
                + session.queues["semantic"].dropped,
                "town": self.town,
                "server_version": session.server_version,
            },
        )

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
        try:
            return action()
        except RuntimeError as exc:
            # The carla client raises RuntimeError for timeouts and lost connections.
            self.close()
            raise SimulatorError(
                f"CARLA {what} failed on {self.host}:{self.port}: {exc}; the session was closed"
            ) from exc
        except BaseException:
            self.close()
            raise

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
