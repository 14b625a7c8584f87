"""A fleet of fake CARLA servers for the scale-out tests, picklable into Ray workers.

``FakeFleet`` stands in for ``import carla`` (``CarlaSimulator(carla_module=...)``); it travels to
each worker inside the drive options, and there ``Client(host, port)`` connects to that worker
process's own ``FakeServer`` for the port. The servers on ``silent_ports`` stop answering after
``answer_ticks`` ticks: every later tick waits out its time-out and fails, as a hung server does.
"""

from __future__ import annotations

from typing import Any

from tests.sim import fake_carla
from tests.sim.fake_carla import FakeServer


class FakeFleet:
    def __init__(self, silent_ports: frozenset[int] = frozenset(), answer_ticks: int = 6) -> None:
        self.silent_ports, self.answer_ticks = silent_ports, answer_ticks
        self.servers: dict[int, FakeServer] = {}  # made in the worker process that connects
        template = FakeServer().module()
        for name in ("Location", "Rotation", "Transform", "Vector3D", "VehicleControl", "WorldSettings",
                     "LaneType", "command"):
            setattr(self, name, getattr(template, name))

    def Client(self, host: str, port: int, worker_threads: int = 0) -> Any:  # noqa: N802 (carla's name)
        server = self.servers.get(port)
        if server is None:
            server = self.servers[port] = FakeServer()
            if port in self.silent_ports:
                server.on_tick.append(lambda _frame, s=server: self._maybe_hang(s))
        return fake_carla.Client(server, host, port)

    def _maybe_hang(self, server: FakeServer) -> None:
        if server.ticks >= self.answer_ticks:
            server.hang_ticks = True
