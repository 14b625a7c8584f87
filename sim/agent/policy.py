"""A policy bundle in the closed loop: an ``Engine`` plus the observation builder it was trained with.

``DrivingPolicy.load("models/policy", backend="ort")`` reads the bundle's ``observation``
(``ObservationConfig`` as stored by ``export --task policy``) so the input is built exactly as in
training; ``act(class_ids, ego, progress_m, target_speed_mps)`` builds the observation from a
class-id map (ground truth or predicted: one path) and returns the deterministic ``Action``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.runtime.bundle import Bundle, load_bundle
from edgepilot.runtime.errors import BundleError
from edgepilot.runtime.postprocess.policy import ActionDecoder
from edgepilot.sim.agent.action import Action
from edgepilot.sim.agent.observation import ObservationBuilder, ObservationConfig
from edgepilot.sim.types import EgoState


def observation_config(bundle: Bundle) -> ObservationConfig:
    """The ``ObservationConfig`` a policy bundle was trained on (meta.json ``observation``)."""
    stored = bundle.meta.get("observation")
    if not isinstance(stored, dict):
        raise BundleError(f"{bundle.path}: a policy bundle needs the 'observation' it was trained on in "
                          "meta.json; re-export it with `edgepilot export CKPT --task policy`")
    data = dict(stored)
    data["channels"] = tuple((str(n), tuple(str(c) for c in cls)) for n, cls in data.get("channels", ()))
    data["lookaheads_m"] = tuple(float(v) for v in data.get("lookaheads_m", ()))
    try:
        config = ObservationConfig(**data)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{bundle.path}: meta.json 'observation' is not an ObservationConfig: {exc}") from exc
    view = next((s for s in bundle.inputs if s.name == "view"), None)
    if view is None or tuple(view.shape[1:]) != config.view_shape:
        raise BundleError(f"{bundle.path}: input 'view' {view.shape if view else None} does not match the "
                          f"observation's view {config.view_shape}")
    return config


class DrivingPolicy:
    """Engine + observation builder. ``reset(route_points_m)`` per episode, ``act(...)`` per tick."""

    def __init__(self, bundle: Bundle, engine: Any) -> None:
        if bundle.task != "policy":
            raise BundleError(f"{bundle.path} is a {bundle.task} bundle, not a driving policy (task 'policy')")
        self.bundle, self.engine = bundle, engine
        self.config = observation_config(bundle)
        self.builder = ObservationBuilder(self.config)
        self.decode = ActionDecoder(bundle)
        self.previous = Action()
        self.last_observation: dict[str, np.ndarray] | None = None
        self.last_ms = {"observation": float("nan"), "policy": float("nan")}

    @classmethod
    def load(cls, path: str | Path, backend: str = "ort", precision: str = "fp32", **options: Any) -> DrivingPolicy:
        from edgepilot.runtime.engines import load_engine

        bundle = load_bundle(path)
        if bundle.task != "policy":
            raise BundleError(f"--policy {path} is a {bundle.task} bundle, not a driving policy (task 'policy')")
        return cls(bundle, load_engine(bundle, backend=backend, precision=precision, **options))

    def reset(self, route_points_m: np.ndarray) -> None:
        self.builder.reset(route_points_m)
        self.previous = Action()

    def act(self, class_ids: np.ndarray, ego: EgoState, progress_m: float, target_speed_mps: float) -> Action:
        """One action from a class-id map (any resolution) and the ego state; times both halves."""
        t0 = time.perf_counter()
        obs = self.builder.build(class_ids, ego, progress_m, target_speed_mps, self.previous)
        t1 = time.perf_counter()
        outputs = self.engine.infer({"view": obs["view"][None], "vector": obs["vector"][None]})
        action = Action.from_array(self.decode(outputs, None, (0, 0)).values)  # type: ignore[arg-type]
        t2 = time.perf_counter()
        self.last_ms = {"observation": (t1 - t0) * 1e3, "policy": (t2 - t1) * 1e3}
        self.last_observation = obs
        self.previous = action
        return action

    def applied(self, action: Action) -> None:
        """Tell the builder which action was really applied (with actuation delay it is not the last one)."""
        self.previous = action

    def describe(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle.path), "engine": self.engine.describe()}

    def close(self) -> None:
        self.engine.close()
