"""Scenario name -> CARLA town and episode options.

Defaults live here in code; ``configs/sim/carla_scenarios.yaml`` overrides or
adds entries. A scenario name that is itself a town (``Town07``) loads that town
with default options.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from edgepilot.runtime.errors import EdgepilotError

SCENARIO_FILE = Path(__file__).resolve().parents[2] / "configs" / "sim" / "carla_scenarios.yaml"


@dataclass(frozen=True, slots=True)
class CarlaScenario:
    """What one CARLA episode looks like: town, traffic density, route length (m)."""

    town: str
    n_vehicles: int = 30
    route_length_m: float = 300.0
    route_step_m: float = 2.0
    target_speed_mps: float = 8.0  # what a policy drives at (towns: ~30 km/h)
    duration_s: float = 120.0  # an agent's episode ends after this much simulated time


DEFAULT_SCENARIOS: dict[str, CarlaScenario] = {
    "town01": CarlaScenario("Town01"),
    "town02": CarlaScenario("Town02", n_vehicles=20, route_length_m=200.0),
    "town03": CarlaScenario("Town03", n_vehicles=40),
    "town04": CarlaScenario("Town04", n_vehicles=40, route_length_m=500.0),
    "town05": CarlaScenario("Town05", n_vehicles=40, route_length_m=400.0),
    "town10": CarlaScenario("Town10HD_Opt"),
}


def load_scenarios(path: Path = SCENARIO_FILE) -> dict[str, CarlaScenario]:
    """Defaults merged with the YAML file at ``path`` (missing file: defaults only).

    Names are case-insensitive, so the table is keyed by lower-case name; two
    YAML entries that differ only in case are an error.
    """
    table = dict(DEFAULT_SCENARIOS)
    if not path.exists():
        return table
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        seen: dict[str, str] = {}
        for name, fields in raw.items():
            key = str(name).lower()
            if key in seen:
                raise ValueError(f"{seen[key]!r} and {name!r} name one scenario (case-insensitive)")
            seen[key] = str(name)
            base = table[key] if key in table else CarlaScenario(town=fields["town"])
            table[key] = replace(base, **fields)
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise EdgepilotError(
            f"bad CARLA scenario file {path}: {exc}; each entry needs a town and "
            f"only the fields of CarlaScenario",
            exit_code=2,
        ) from exc
    return table


def resolve_scenario(name: str, path: Path = SCENARIO_FILE) -> CarlaScenario:
    """Look a scenario up by name (case-insensitive) or treat ``TownNN`` as a town."""
    table = load_scenarios(path)
    if name.lower() in table:
        return table[name.lower()]
    if name.startswith("Town"):
        return CarlaScenario(town=name)
    raise EdgepilotError(
        f"unknown CARLA scenario {name!r}: choose one of {', '.join(sorted(table))} "
        f"or a town name such as Town07 (table: {path})",
        exit_code=2,
    )
