"""Episodes on Ray: ``drive`` and ``datagen`` with ``--workers K [--ray ADDRESS] [--servers FILE]``.

``run_jobs(make_worker, jobs, options, ...)`` starts ``K`` Ray actors, each holding one worker
(``make_worker(server)``: its own simulator, for CARLA bound to one server of the servers
file), hands them the jobs (episodes) as they become free, and returns the results in job
order whatever order they finished in, so a run's results equal the serial run's for the same
seeds. ``make_worker`` and the jobs must pickle (module-level classes, ``functools.partial``).

Faults, each listed in ``ScaleRun.retries`` (job, attempt, worker, error) and never lost nor
counted twice (a job's result is kept once, from the attempt that finished):

- a worker process that dies (crash, OOM kill, a lost node): its job goes back to the queue
  for another worker and a fresh actor takes the dead one's place;
- a worker bound to a CARLA server whose episode raises ``SimulatorError`` (the server stopped
  answering): the server is reported in ``ScaleRun.servers_down`` by name, its worker retired
  (replaced by an unused server of the file, if any), its job moved to the other servers;
- a job is tried at most ``1 + retries`` times; any other error of a job is the run's error.

Ray is imported here only, when ``run_jobs`` runs; without ``address`` a local Ray with
``K`` CPUs is started and shut down afterwards, its session files (logs, sockets) in a temporary
folder that is removed with it (not ``/tmp/ray``); with one it joins that cluster (and leaves it
running). A Ray already initialised by the caller is used as is.

Test hook: ``EDGEPILOT_SCALE_CRASH="<job label>[;<job label>]"`` makes the worker process
running that job exit (``os._exit``) on its first attempt.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgepilot.runtime.errors import EdgepilotError, SimulatorError, require
from edgepilot.runtime.progress import Progress

CRASH_ENV = "EDGEPILOT_SCALE_CRASH"
SERVER_KEYS = ("name", "host", "port", "tm_port")
CLOSE_TIMEOUT_S = 30.0  # a worker's close (CARLA: restore the server) before it is killed


@dataclass(frozen=True, slots=True)
class Server:
    """One CARLA server of a servers file; ``tm_port``: its Traffic Manager (default port + 6000)."""

    name: str
    host: str
    port: int
    tm_port: int

    def sim_options(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "tm_port": self.tm_port}


@dataclass(frozen=True, slots=True)
class ScaleOptions:
    """How many workers, where (``address``: a Ray cluster; None: a local Ray), retries, servers."""

    workers: int = 1
    address: str | None = None
    retries: int = 2
    servers: tuple[Server, ...] = ()
    servers_file: str = ""  # named in messages

    def check(self, sim: str) -> None:
        """Refuse combinations that cannot run (exit 2), before any work."""
        where = self.servers_file or "the servers file"
        if self.workers < 1 or self.retries < 0:
            raise EdgepilotError(f"--workers {self.workers} / --retries {self.retries}: give workers >= 1 "
                                 "and retries >= 0", exit_code=2)
        if self.servers and sim != "carla":
            raise EdgepilotError(f"--servers {where} lists CARLA servers: use it with --sim carla", exit_code=2)
        if sim == "carla" and self.workers > 1 and not self.servers:
            raise EdgepilotError(f"--workers {self.workers} with --sim carla needs --servers FILE "
                                 "(one CARLA server per worker)", exit_code=2)
        if self.servers and self.workers > len(self.servers):
            raise EdgepilotError(f"--workers {self.workers}, but {where} lists {len(self.servers)} "
                                 "server(s): one CARLA server per worker", exit_code=2)
        if self.address and self.workers < 2:
            raise EdgepilotError(f"--ray {self.address} needs --workers 2 or more "
                                 "(--workers 1 runs the episodes here, one after another)", exit_code=2)


def load_servers(path: str | Path) -> tuple[Server, ...]:
    """The servers of a YAML file: a list (or ``servers:`` list) of ``{name, host, port[, tm_port]}``.

    Raises EdgepilotError (exit 2) naming the file, the entry and what is wrong.
    """
    import yaml

    where = f"--servers {path}"
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise EdgepilotError(f"{where}: cannot read it ({exc.strerror or exc})", exit_code=2) from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EdgepilotError(f"{where}: not valid YAML ({first})", exit_code=2) from None
    if isinstance(data, dict) and set(data) == {"servers"}:
        data = data["servers"]
    if not isinstance(data, list) or not data:
        raise EdgepilotError(f"{where}: give a non-empty list of servers, each {{name, host, port}}, "
                             "e.g. '- {name: a, host: 10.0.0.5, port: 2000}'", exit_code=2)
    servers = tuple(_server(entry, i, where) for i, entry in enumerate(data, 1))
    for kind, values in (("name", [s.name for s in servers]),
                         ("host:port", [f"{s.host}:{s.port}" for s in servers])):
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise EdgepilotError(f"{where}: {kind} {', '.join(twice)} listed twice", exit_code=2)
    return servers


def _server(entry: Any, i: int, where: str) -> Server:
    if not isinstance(entry, dict):
        raise EdgepilotError(f"{where}: entry {i} is not a mapping {{name, host, port}}", exit_code=2)
    unknown = sorted(set(map(str, entry)) - set(SERVER_KEYS))
    missing = [k for k in ("name", "host", "port") if k not in entry]
    if unknown or missing:
        what = "; ".join(p for p in (f"unknown key(s) {', '.join(unknown)}" if unknown else "",
                                     f"missing {', '.join(missing)}" if missing else "") if p)
        raise EdgepilotError(f"{where}: entry {i}: {what} (keys: {', '.join(SERVER_KEYS)})", exit_code=2)
    for key in ("name", "host"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise EdgepilotError(f"{where}: entry {i}: {key} must be a non-empty string", exit_code=2)
    port = entry["port"]
    tm_port = entry.get("tm_port", port + 6000 if isinstance(port, int) else None)
    for key, value in (("port", port), ("tm_port", tm_port)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise EdgepilotError(f"{where}: entry {i} ({entry['name']}): {key} {value!r} is not a port "
                                 "number in 1..65535", exit_code=2)
    assert isinstance(tm_port, int)
    return Server(entry["name"].strip(), entry["host"].strip(), port, tm_port)


class Worker(Protocol):
    """What a Ray actor holds: one simulator's worth of state, one job at a time."""

    def run(self, job: Any) -> Any: ...

    def close(self) -> None: ...


class _Host:
    """The Ray actor around a ``Worker`` (the crash hook lives here, outside the worker).

    The worker is made on the first job, not in the actor's constructor, so an error making
    it (a bad bundle, a server that does not answer) reaches the driver as that job's error.
    """

    def __init__(self, make_worker: Callable[[Server | None], Worker], server: Server | None) -> None:
        self.make_worker, self.server = make_worker, server
        self.worker: Worker | None = None

    def run(self, job: Any, crash: bool) -> Any:
        if crash:
            os._exit(3)  # the test hook: this worker process dies mid-job
        if self.worker is None:
            self.worker = self.make_worker(self.server)
        return self.worker.run(job)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


@dataclass
class _Task:
    index: int
    job: Any
    key: dict[str, Any]  # what identifies the job in the report (e.g. scenario, seed)
    attempts: int = 0
    avoid: str | None = None  # the worker it last failed on

    @property
    def label(self) -> str:
        return " ".join(f"{k} {v}" for k, v in self.key.items())


@dataclass
class _Slot:
    name: str
    server: Server | None
    actor: Any
    t0: float = field(default_factory=time.perf_counter)
    done: int = 0
    task: _Task | None = None
    ref: Any = None


@dataclass
class ScaleRun:
    """What ``run_jobs`` did: results in job order, retries, servers lost, who ran what."""

    results: list[Any]
    workers: int
    address: str | None
    retries: list[dict[str, Any]]
    servers_down: list[dict[str, Any]]
    placement: list[dict[str, Any]]  # per job in order: key, worker, attempts
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"workers": self.workers, "ray": self.address or "local", "retries": self.retries,
                "servers_down": self.servers_down, "placement": self.placement, "wall_s": self.wall_s}


def run_jobs(make_worker: Callable[[Server | None], Worker], jobs: Iterable[Any], options: ScaleOptions, *,
             key: Callable[[Any], dict[str, Any]], bar: Progress,
             more: Callable[[Mapping[int, Any], int], bool] | None = None,
             keep: Callable[[Any], Any] | None = None) -> ScaleRun:
    """Run every job on ``options.workers`` Ray actors; see the module docstring.

    ``key(job)`` names a job in the report; ``more(done, pending)`` (optional) is asked before
    each new job is taken from ``jobs`` (``done``: results so far by job index; ``pending``:
    jobs taken and not yet done), so a caller can stop early (datagen: enough frames).
    ``keep(result)`` (optional) runs here on each result as it arrives, once per job, and
    what it returns is kept instead (datagen: writes the frames a worker sent, keeps the rest).
    """
    t0 = time.perf_counter()
    with ray_session(options) as ray:
        pool = _Pool(ray, make_worker, options, bar, keep)
        try:
            done = pool.drain(iter(jobs), key, more or (lambda _done, _pending: True))
        finally:
            pool.close()
    order = sorted(done)
    return ScaleRun([done[i] for i in order], options.workers, options.address, pool.retries,
                    pool.servers_down, [pool.placement[i] for i in order], time.perf_counter() - t0)


@contextlib.contextmanager
def ray_session(options: ScaleOptions) -> Iterator[Any]:
    """Ray, initialised for ``options`` (and shut down after, if we started it)."""
    import logging

    ray = require("ray", "scale", "--workers")
    if ray.is_initialized():
        yield ray
        return
    temp = None
    if options.address:
        where: dict[str, Any] = {"address": options.address}
    else:  # a local Ray keeps its sessions' logs and sockets in a folder of ours, removed after
        temp = ray_temp_dir()
        where = {"num_cpus": options.workers, "include_dashboard": False, "_temp_dir": temp}
    try:
        ray.init(**where, log_to_driver=False, logging_level=logging.ERROR)
        try:
            yield ray
        finally:
            ray.shutdown()
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


# Ray's longest socket path below its temp folder ("/session_<date>_<time>_<us>_<pid>/sockets/
# plasma_store", about 62 characters), and the most an AF_UNIX socket path may hold
_RAY_SOCKET_TAIL, _AF_UNIX_MAX = 64, 107


def ray_temp_dir() -> str:
    """A new folder for a local Ray's session files, in the temp folder (``TMPDIR``) when Ray's
    socket paths fit below it, else in ``/tmp`` (a long ``TMPDIR`` would fail ``ray.init``)."""
    base = tempfile.gettempdir()
    if len(os.path.join(base, "edgepilot-ray-xxxxxxxx")) + _RAY_SOCKET_TAIL > _AF_UNIX_MAX and os.access("/tmp", os.W_OK):
        base = "/tmp"
    return tempfile.mkdtemp(prefix="edgepilot-ray-", dir=base)


class _Pool:
    """The actors, the queue and the bookkeeping of one ``run_jobs``."""

    def __init__(self, ray: Any, make_worker: Callable[[Server | None], Worker], options: ScaleOptions,
                 bar: Progress, keep: Callable[[Any], Any] | None = None) -> None:
        from ray import exceptions

        self.ray, self.make_worker, self.options, self.bar = ray, make_worker, options, bar
        self.keep = keep or (lambda result: result)
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < options.workers:  # the actors would wait for CPUs forever
            raise EdgepilotError(f"--workers {options.workers}: the Ray cluster at {options.address or 'local'} "
                                 f"has {cpus:g} CPU(s); give --workers {int(cpus)} or fewer", exit_code=2)
        self.died = (exceptions.RayActorError, exceptions.WorkerCrashedError, exceptions.NodeDiedError)
        self.actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_Host)
        self.crash = {s.strip() for s in os.environ.get(CRASH_ENV, "").split(";") if s.strip()}
        self.spare = list(options.servers[options.workers:])
        self.slots = [self._start(f"w{i}" if not options.servers else options.servers[i].name,
                                  options.servers[i] if options.servers else None)
                      for i in range(options.workers)]
        self.queue: collections.deque[_Task] = collections.deque()
        self.done: dict[int, Any] = {}
        self.retries: list[dict[str, Any]] = []
        self.servers_down: list[dict[str, Any]] = []
        self.placement: dict[int, dict[str, Any]] = {}

    def _start(self, name: str, server: Server | None) -> _Slot:
        return _Slot(name, server, self.actor_class.remote(self.make_worker, server))

    def drain(self, jobs: Iterator[Any], key: Callable[[Any], dict[str, Any]],
              more: Callable[[Mapping[int, Any], int], bool]) -> dict[int, Any]:
        taken, exhausted = 0, False
        while True:
            idle = [s for s in self.slots if s.task is None]
            free = sum(t.avoid is None for t in self.queue)  # a retried job may not suit an idle worker
            while not exhausted and free < len(idle) and more(self.done, taken - len(self.done)):
                job = next(jobs, _END)
                if job is _END:
                    exhausted = True
                    break
                self.queue.append(_Task(taken, job, key(job)))
                taken, free = taken + 1, free + 1
            self._dispatch(idle)
            busy = [s.ref for s in self.slots if s.task is not None]
            if not busy:
                if self.queue:
                    raise EdgepilotError(f"no worker left to run {self.queue[0].label} "
                                         f"(servers down: {', '.join(d['name'] for d in self.servers_down)})")
                return self.done
            ready, _ = self.ray.wait(busy, num_returns=1)
            self._collect(next(s for s in self.slots if s.ref == ready[0]))

    def _dispatch(self, idle: list[_Slot]) -> None:
        for slot in idle:
            task = self._pick(slot)
            if task is None:
                continue
            task.attempts += 1
            crash = task.attempts == 1 and task.label in self.crash
            slot.task, slot.ref = task, slot.actor.run.remote(task.job, crash)

    def _pick(self, slot: _Slot) -> _Task | None:
        """The first queued job that did not last fail on ``slot`` (unless no other worker is left)."""
        alone = len(self.slots) == 1
        for task in self.queue:
            if task.avoid != slot.name or alone:
                self.queue.remove(task)
                return task
        return None

    def _collect(self, slot: _Slot) -> None:
        task, ref = slot.task, slot.ref
        assert task is not None
        slot.task = slot.ref = None
        try:
            result = self.ray.get(ref)
        except self.died as exc:
            self._retry(task, slot, f"worker process died{_pid(exc)}: {_first_line(exc)}")
            with contextlib.suppress(Exception):
                self.ray.kill(slot.actor)
            slot.actor, slot.t0, slot.done = self._start(slot.name, slot.server).actor, time.perf_counter(), 0
            return
        except Exception as exc:  # the job raised: Ray wraps it, the cause is ours
            cause = getattr(exc, "cause", None) or exc
            if slot.server is None or not isinstance(cause, SimulatorError):
                if isinstance(cause, EdgepilotError):
                    raise cause from None
                raise
            self._server_down(slot, str(cause))
            self._retry(task, slot, str(cause))
            return
        self.done[task.index] = self.keep(result)
        self.placement[task.index] = {**task.key, "worker": slot.name, "attempts": task.attempts}
        slot.done += 1
        self.bar.update(1)
        self.bar.set_postfix_str(self._rates())

    def _retry(self, task: _Task, slot: _Slot, error: str) -> None:
        self.retries.append({**task.key, "attempt": task.attempts, "worker": slot.name, "error": error})
        if task.attempts > self.options.retries:
            raise EdgepilotError(f"{task.label} failed {task.attempts} times (--retries {self.options.retries}); "
                                 f"last on {slot.name}: {error}")
        task.avoid = slot.name
        self.queue.appendleft(task)

    def _server_down(self, slot: _Slot, error: str) -> None:
        assert slot.server is not None
        s = slot.server
        self.servers_down.append({"name": s.name, "host": s.host, "port": s.port, "error": error})
        self._close_actors([slot])
        self.slots.remove(slot)
        if self.spare:
            server = self.spare.pop(0)
            self.slots.append(self._start(server.name, server))

    def _rates(self) -> str:
        now = time.perf_counter()
        return " ".join(f"{s.name} {s.done / max(now - s.t0, 1e-9):.2f}/s" for s in self.slots)

    def close(self) -> None:
        self._close_actors(self.slots)

    def _close_actors(self, slots: list[_Slot]) -> None:
        """Let each worker close its simulator (bounded), then end its process."""
        refs = [s.actor.close.remote() for s in slots]
        with contextlib.suppress(Exception):
            self.ray.wait(refs, num_returns=len(refs), timeout=CLOSE_TIMEOUT_S)
        for s in slots:
            with contextlib.suppress(Exception):
                self.ray.kill(s.actor)


_END = object()


def _pid(exc: BaseException) -> str:
    found = re.search(r"\bpid[:=]\s*(\d+)", str(exc))
    return f" (pid {found.group(1)})" if found else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
