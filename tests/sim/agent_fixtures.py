"""A tiny trained driving policy, made once per session (import the fixture into a test module:
``from tests.sim.agent_fixtures import tiny_policy_bundle  # noqa: F401``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# a few DAgger and PPO steps on one highway env: seconds, not minutes
TINY_TRAIN: dict[str, Any] = {
    "n_envs": 1, "bc_rounds": 1, "bc_steps": 64, "bc_epochs": 1, "timesteps": 64, "n_steps": 32,
    "batch_size": 32, "n_epochs": 1, "val_seeds": (900,), "max_steps": 40, "scenarios": ("highway",),
    "progress": False, "val_every": 10**9, "frame_step": 3,
}


@dataclass(frozen=True)
class TinyPolicy:
    run: Path  # the training folder (best.pt, last.pt, history.json, ...)
    summary: dict[str, Any]  # what train_policy returned
    bundle: Path  # export_policy(best.pt)


_MADE: dict[str, TinyPolicy] = {}  # one training per session, though each importing module has its own fixture


def tiny_config(out: Path, **overrides: Any) -> Any:
    from edgepilot.sim.agent.train import load_policy_config

    return load_policy_config(None, **{**TINY_TRAIN, "out": str(out), **overrides})


@pytest.fixture(scope="session")
def tiny_policy_bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyPolicy:
    """Train a tiny policy (1 DAgger round of 64 states, 64 PPO steps) and export it as a bundle."""
    if "policy" in _MADE:
        return _MADE["policy"]
    pytest.importorskip("stable_baselines3", reason="the [train] extra (stable-baselines3) is not installed")
    pytest.importorskip("onnxruntime")
    from edgepilot.export.policy import export_policy
    from edgepilot.sim.agent.train import train_policy

    root = tmp_path_factory.mktemp("tiny_policy")
    summary = train_policy(tiny_config(root / "run"))
    bundle = export_policy(summary["best"], root / "policy", parity_steps=20)
    _MADE["policy"] = TinyPolicy(root / "run", summary, bundle)
    return _MADE["policy"]
