"""The CARLA harness, one function per step of the design (docs/carla.md).

Each setup step records what it creates in a ``Session`` *before* the next
thing can fail, so ``teardown`` can undo exactly what exists after a crash at
any point. ``carla`` is the client module (or the test fake), passed in so
this file never imports it. Every step turns the client's own exceptions into
a ``SimulatorError`` naming the step (``client_step``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from edgepilot.runtime.errors import SimulatorError
from edgepilot.sim.carla.decode import parse_version
from edgepilot.sim.carla.sensors import SensorQueue
from edgepilot.sim.types import CameraConfig

log = logging.getLogger("edgepilot.sim.carla")

# 20 Hz like the Leaderboard; physics breaks with steps over 0.1 s.
FIXED_DELTA_S = 0.05
EGO_BLUEPRINT = "vehicle.tesla.model3"
CAMERAS = {"rgb": "sensor.camera.rgb", "semantic": "sensor.camera.semantic_segmentation"}
EVENT_SENSORS = {"collision": "sensor.other.collision", "lane": "sensor.other.lane_invasion"}

# What the carla client raises when a call fails: RuntimeError (time-outs, lost connection),
# ValueError / IndexError / OverflowError (data it cannot convert, e.g. a mismatched server's
# blueprints, an unknown blueprint id), OSError (a host that does not resolve), and
# Boost.Python's ArgumentError (wrong argument types), matched by name: it cannot be imported.
CLIENT_ERRORS = (RuntimeError, ValueError, IndexError, OverflowError, OSError)
STEP_HINTS = {
    "connect": "check the host name and port, and that a CARLA server runs there (docs/carla.md)",
    "tick": "the server stopped answering: check that it is alive (its log), or raise "
    "tick_timeout_s if it is only slow",
}


@dataclass
class Session:
    """Everything one connection created on the server, in creation order (mutable on purpose).

    ``address`` is ``host:port`` for messages; ``tick_timeout_s`` bounds each tick.
    """

    carla: Any
    client: Any
    address: str = ""
    tick_timeout_s: float = 5.0
    world: Any = None
    map: Any = None  # cached: world.get_map() transfers and parses the OpenDRIVE file
    server_version: str = ""
    original_settings: Any = None
    tm: Any = None
    npc_ids: list[int] = field(default_factory=list)
    ego: Any = None
    sensors: list[Any] = field(default_factory=list)
    queues: dict[str, SensorQueue] = field(default_factory=dict)


def is_client_error(exc: BaseException) -> bool:
    """True for the exceptions a failing carla client call raises (see CLIENT_ERRORS)."""
    return isinstance(exc, CLIENT_ERRORS) or any(
        cls.__name__ == "ArgumentError" for cls in type(exc).__mro__
    )


@contextmanager
def client_step(step: str, address: str) -> Iterator[None]:
    """Run a harness step; a client error becomes SimulatorError naming ``step``, cause kept.

    Our own SimulatorErrors (a silent sensor, a version mismatch) and anything
    that is not a client error (a bug, KeyboardInterrupt) pass through unchanged.
    """
    try:
        yield
    except SimulatorError:
        raise
    except Exception as exc:
        if not is_client_error(exc):
            raise
        hint = STEP_HINTS.get(step, "check the server log; the session was closed (docs/carla.md)")
        raise SimulatorError(
            f"CARLA {step} failed on {address}: {type(exc).__name__}: {exc}; {hint}"
        ) from exc


def connect(carla: Any, host: str, port: int, timeout_s: float, tick_timeout_s: float) -> Session:
    """Step 1: client with a long timeout; a client/server version mismatch is an error."""
    address = f"{host}:{port}"
    with client_step("connect", address):
        client = carla.Client(host, port)
        client.set_timeout(timeout_s)
        try:
            server_version = client.get_server_version()
        except RuntimeError as exc:
            raise SimulatorError(
                f"no CARLA server at {address} ({exc}); start one as in docs/carla.md "
                f"or pass host=/port="
            ) from exc
        check_versions(client.get_client_version(), server_version)
    return Session(
        carla=carla, client=client, address=address, tick_timeout_s=tick_timeout_s,
        server_version=server_version,
    )


def check_versions(client_version: str, server_version: str) -> None:
    """Raise SimulatorError unless the client package and the server have one version.

    The two are not wire-compatible across releases (a 0.9.16 client cannot read
    0.9.15 blueprints), so a mismatch fails later in odd places; fail here instead.
    """
    client, server = parse_version(client_version), parse_version(server_version)
    if client == server:
        return
    raise SimulatorError(
        f"CARLA client {client_version} does not match server {server_version}: install the "
        f"matching client (pip install carla=={'.'.join(map(str, server))}) or run a "
        f"{'.'.join(map(str, client))} server (docs/carla.md)"
    )


def load_town(session: Session, town: str) -> None:
    """Step 2a: load the town unless it is already loaded (loading takes seconds)."""
    with client_step("load town", session.address):
        world = session.client.get_world()
        if world.get_map().name.split("/")[-1] != town:
            log.info("loading %s", town)
            world = session.client.load_world(town)
        session.world = world
        session.map = world.get_map()


def enter_synchronous_mode(session: Session, tm_port: int) -> None:
    """Steps 2b-4: save the settings, then server and Traffic Manager in lockstep."""
    with client_step("enter synchronous mode", session.address):
        session.original_settings = session.world.get_settings()
        settings = session.world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = FIXED_DELTA_S
        session.world.apply_settings(settings)  # ticks once: synchronous with a fixed step
        session.tm = session.client.get_trafficmanager(tm_port)
        session.tm.set_synchronous_mode(True)


def spawn_npcs(session: Session, spawn_points: list[Any], n: int, rng: random.Random) -> None:
    """Step 5: spawn up to ``n`` autopilot vehicles in one synchronous batch."""
    with client_step("spawn NPCs", session.address):
        cmd = session.carla.command
        blueprints = session.world.get_blueprint_library().filter("vehicle.*")
        batch = []
        for transform in spawn_points[:n]:
            bp = rng.choice(blueprints)
            if bp.has_attribute("role_name"):
                bp.set_attribute("role_name", "autopilot")
            autopilot = cmd.SetAutopilot(cmd.FutureActor, True, session.tm.get_port())
            batch.append(cmd.SpawnActor(bp, transform).then(autopilot))
        for response in session.client.apply_batch_sync(batch, True):
            if response.error:
                log.debug("NPC not spawned: %s", response.error)
            else:
                session.npc_ids.append(response.actor_id)
    log.info("spawned %d of %d NPC vehicles", len(session.npc_ids), len(batch))


def spawn_ego(session: Session, spawn_point: Any) -> None:
    """Spawn the ego vehicle (role ``hero``) at ``spawn_point``."""
    with client_step("spawn ego", session.address):
        library = session.world.get_blueprint_library()
        found = library.filter(EGO_BLUEPRINT) or library.filter("vehicle.*")
        bp = found[0]
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", "hero")
        session.ego = session.world.try_spawn_actor(bp, spawn_point)
    if session.ego is None:
        raise SimulatorError(f"could not spawn the ego at {spawn_point}: spawn point occupied")


def set_autopilot(session: Session, enabled: bool) -> None:
    """Hand the ego to the Traffic Manager (``enabled``) or take it back."""
    with client_step("set the ego's autopilot", session.address):
        session.ego.set_autopilot(enabled, session.tm.get_port())


def attach_sensors(session: Session, camera: CameraConfig) -> None:
    """Step 6: RGB, semantic, collision and lane-invasion sensors on the ego, each feeding a queue."""
    carla = session.carla
    with client_step("attach sensors", session.address):
        library = session.world.get_blueprint_library()
        # CARLA's pitch is positive looking up; CameraConfig's is positive looking down.
        mount = carla.Transform(
            carla.Location(x=camera.x_m, z=camera.z_m), carla.Rotation(pitch=-camera.pitch_deg)
        )
        for name, blueprint_id in CAMERAS.items():
            bp = library.find(blueprint_id)
            bp.set_attribute("image_size_x", str(camera.width))
            bp.set_attribute("image_size_y", str(camera.height))
            bp.set_attribute("fov", str(camera.fov_deg))
            _listen(session, name, session.world.spawn_actor(bp, mount, attach_to=session.ego))
        for name, blueprint_id in EVENT_SENSORS.items():
            bp = library.find(blueprint_id)
            actor = session.world.spawn_actor(bp, carla.Transform(), attach_to=session.ego)
            _listen(session, name, actor)


def _listen(session: Session, name: str, sensor: Any) -> None:
    session.sensors.append(sensor)  # recorded first so teardown destroys it even if listen fails
    session.queues[name] = SensorQueue(name)
    sensor.listen(session.queues[name].put)


def tick(session: Session, step: str = "tick") -> int:
    """Advance the server one fixed step; returns its frame id.

    Waits at most ``session.tick_timeout_s``, not the long client time-out, so
    a dead server is noticed within seconds.
    """
    with client_step(step, session.address):
        return int(session.world.tick(session.tick_timeout_s))


def warm_up(session: Session, ticks: int) -> None:
    """Step 7: tick with data discarded; sensors miss the first ticks after spawning."""
    for _ in range(ticks):
        tick(session, "warm-up tick")
    for q in session.queues.values():
        q.drain()


def destroy_episode(session: Session) -> None:
    """Stop and destroy the sensors, then the ego and NPCs in one batch."""
    for sensor in session.sensors:
        _attempt("stop a sensor", sensor.stop)
        _attempt("destroy a sensor", sensor.destroy)
    session.sensors.clear()
    session.queues.clear()
    ids = list(session.npc_ids) + ([session.ego.id] if session.ego is not None else [])
    if ids:
        destroy = session.carla.command.DestroyActor
        # synchronous and ticked, so the spawn points are free before a reset respawns
        _attempt("destroy actors", lambda: session.client.apply_batch_sync([destroy(i) for i in ids], True))
    session.npc_ids.clear()
    session.ego = None


def teardown(session: Session) -> None:
    """Step 9: undo everything; each part runs even when an earlier one fails.

    Cleanup calls wait at most ``tick_timeout_s`` each: on a dead server they
    fail in seconds instead of one long client time-out apiece.
    """
    _attempt("shorten the client time-out", lambda: session.client.set_timeout(session.tick_timeout_s))
    destroy_episode(session)
    if session.tm is not None:
        _attempt(
            "set the Traffic Manager asynchronous", lambda: session.tm.set_synchronous_mode(False)
        )
    if session.original_settings is not None:
        _attempt(
            "restore the world settings",
            lambda: session.world.apply_settings(session.original_settings),
        )
        session.original_settings = None
    if session.world is not None:
        _attempt("tick after restoring settings", lambda: session.world.tick(session.tick_timeout_s))


def _attempt(what: str, action: Callable[[], object]) -> None:
    # Cleanup must go on after one failure (e.g. the server died): log and continue.
    try:
        action()
    except Exception as exc:
        log.warning("CARLA cleanup could not %s: %s", what, exc)
