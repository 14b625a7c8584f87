"""Simulators by name: ``make_simulator("builtin" | "carla", scenario=..., camera=..., **options)``.

Backends are imported lazily so ``sim`` imports without highway-env or carla.
"""

from __future__ import annotations

import importlib
from typing import Any

from edgepilot.runtime.errors import EdgepilotError
from edgepilot.sim.types import CameraConfig, Simulator

BACKENDS = {
    "builtin": "edgepilot.sim.builtin.world:BuiltinSimulator",
    "carla": "edgepilot.sim.carla.client:CarlaSimulator",
}


def make_simulator(
    name: str, scenario: str, camera: CameraConfig | None = None, **options: Any
) -> Simulator:
    """Build a simulator; raises EdgepilotError (exit 2) for an unknown name."""
    if name not in BACKENDS:
        raise EdgepilotError(
            f"unknown simulator {name!r}: choose one of {', '.join(BACKENDS)}", exit_code=2
        )
    module, cls = BACKENDS[name].split(":")
    klass = getattr(importlib.import_module(module), cls)
    return klass(scenario=scenario, camera=camera or CameraConfig(), **options)
