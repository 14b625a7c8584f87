"""Scenarios of the builtin world: typed defaults in code, YAML files only override them.

A scenario names a highway-env environment, the overrides passed to it, and what
we add on top: episode length, the route the ego is meant to cover, the speed the
baseline driver aims for, and the static scenery placed beside the road.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import MethodType
from typing import Any

import yaml

from edgepilot.runtime.errors import EdgepilotError, require
from edgepilot.sim.builtin.traffic import (
    PRUNE_MIN_LANES,
    act_road,
    all_straight,
    closest_lane_index,
    closest_straight_lane_index,
    neighbour_vehicles,
    step_road,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "sim"
# the traffic's vehicle class (highway-env's IDM/MOBIL, cheaper): a path, so highway-env stays lazy
TRAFFIC_VEHICLE = "edgepilot.sim.builtin.idm.FastIDMVehicle"


@dataclass(frozen=True, slots=True)
class SceneryConfig:
    """Static props beside the road; distances in metres from the road edge."""

    guard_rails: bool = True
    sidewalks: bool = False
    pole_spacing_m: float = 30.0
    building_spacing_m: float = 22.0
    tree_spacing_m: float = 12.0
    extent_m: float = 1500.0  # only scenery this close to the ego start is built


@dataclass(frozen=True, slots=True)
class ScenarioConfig:
    """One builtin scenario; ``env_config`` is merged into highway-env's own config."""

    name: str = "highway"
    env_id: str = "highway-v0"
    env_config: dict[str, Any] = field(default_factory=dict)
    frequency_hz: float = 20.0  # policy and simulation rate, CARLA's 20 Hz
    duration_s: float = 40.0
    route_length_m: float = 900.0
    destination: str = ""  # highway-env node the route ends at; "" follows the road
    target_speed_mps: float = 25.0
    truck_share: float = 0.15
    max_accel_mps2: float = 3.0
    max_decel_mps2: float = 6.0
    scenery: SceneryConfig = field(default_factory=SceneryConfig)

    @classmethod
    def default_config(cls) -> ScenarioConfig:
        return cls()


def available_scenarios() -> list[str]:
    """Names of the built-in world's YAML scenarios shipped in ``configs/sim`` (not CARLA's table)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("carla"))


def load_scenario(name: str, **overrides: Any) -> ScenarioConfig:
    """Load ``configs/sim/<name>.yaml`` (or a YAML path) over the defaults.

    Raises EdgepilotError (exit 2) for an unknown scenario or an unknown key.
    """
    path = Path(name) if name.endswith((".yaml", ".yml")) else CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise EdgepilotError(
            f"unknown scenario {name!r}: choose one of {', '.join(available_scenarios())} "
            f"or give a YAML path",
            exit_code=2,
        )
    data = yaml.safe_load(path.read_text()) or {}
    data.update(overrides)
    data.setdefault("name", path.stem)
    scenery = SceneryConfig(**_checked(SceneryConfig, data.pop("scenery", {}), path))
    return ScenarioConfig(**_checked(ScenarioConfig, data, path), scenery=scenery)


def _checked(cls: type, data: dict, path: Path) -> dict:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise EdgepilotError(
            f"{path}: unknown key(s) {', '.join(unknown)} for {cls.__name__}", exit_code=2
        )
    return data


def make_env(cfg: ScenarioConfig) -> Any:
    """Build the highway-env environment for ``cfg`` without gym wrappers or rendering.

    We bypass ``gym.make`` and the env's ``_info``: its reward terms assume discrete
    actions (roundabout raises on a continuous one) and cost more than our whole frame.
    Each new road uses ``traffic.act_road``, ``traffic.step_road``,
    ``traffic.neighbour_vehicles`` and (on networks of ``PRUNE_MIN_LANES`` lanes or more)
    ``traffic.closest_lane_index``, or on smaller all-straight networks
    ``traffic.closest_straight_lane_index``, and the traffic is ``idm.FastIDMVehicle`` unless the
    scenario's ``env_config`` names another ``other_vehicles_type`` (highway-env's
    results with fewer Python calls).
    """
    require("highway_env", "sim", "the builtin simulator")
    gym = require("gymnasium", "sim", "the builtin simulator")
    module, cls_name = gym.spec(cfg.env_id).entry_point.split(":")
    base = getattr(importlib.import_module(module), cls_name)

    def reset_road(self: Any) -> None:
        base._reset(self)  # builds a new road: give it the vectorised collision and neighbour search
        self.road.act = MethodType(act_road, self.road)
        self.road.step = MethodType(step_road, self.road)
        self.road.neighbour_vehicles = MethodType(neighbour_vehicles, self.road)
        network = self.road.network
        if len(network.lanes_list()) >= PRUNE_MIN_LANES:  # fewer: highway-env's loop is cheaper
            network.get_closest_lane_index = MethodType(closest_lane_index, network)
        elif all_straight(network):  # highway: three straight lanes, measured in plain floats
            network.get_closest_lane_index = MethodType(closest_straight_lane_index, network)

    quiet = type(f"Quiet{cls_name}", (base,), {"_info": lambda self, obs, action=None: {},
                                               "_reset": reset_road})
    hz = int(cfg.frequency_hz)
    accel = max(cfg.max_accel_mps2, cfg.max_decel_mps2)
    env_config = {
        # never read: the cheapest observation (Kinematics builds a pandas frame, ~6 ms a reset)
        "observation": {"type": "AttributesObservation", "attributes": []},
        "action": {
            "type": "ContinuousAction",
            "longitudinal": True,
            "lateral": True,
            "acceleration_range": [-accel, accel],
            "speed_range": [0.0, 40.0],
        },
        "simulation_frequency": hz,
        "policy_frequency": hz,
        "duration": cfg.duration_s,
        "offroad_terminal": False,
        "other_vehicles_type": TRAFFIC_VEHICLE,
        **cfg.env_config,
    }
    return quiet(config=env_config, render_mode=None)
