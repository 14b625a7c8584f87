"""The warm start's fit: what it learns is what ``policy.predict`` (and so PPO and the export) sees."""

from __future__ import annotations

import numpy as np
import pytest


def test_behaviour_cloning_fits_the_labels_as_predict_sees_them():
    """Labels that depend only on the view must be learnt through the view as predict scales it
    (a fit that scaled the uint8 view twice would learn from a blank image and miss them)."""
    pytest.importorskip("stable_baselines3")
    import torch

    from edgepilot.sim.agent.env import DriveEnv
    from edgepilot.sim.agent.train import build_model, fit, load_policy_config

    torch.manual_seed(0)
    cfg = load_policy_config(None, n_envs=1, bc_lr=3e-3, bc_batch_size=32, scenarios=("highway",))
    env = DriveEnv(scenarios=("highway",))
    model = build_model(cfg, env)
    rng = np.random.default_rng(0)
    n = 64
    view = np.zeros((n, *env.observation_space["view"].shape), np.uint8)
    bright = rng.random(n) < 0.5
    view[bright] = 255  # the only difference between the two halves: the picture
    label = np.where(bright[:, None], [0.5, -0.5], [-0.5, 0.5]).astype(np.float32)
    data = {"view": view, "vector": np.zeros((n, env.observation_space["vector"].shape[0]), np.float32),
            "label": label, "return": np.zeros(n, np.float32)}
    fit(model.policy, data, cfg, rng, epochs=25)
    predicted, _ = model.policy.predict({"view": view, "vector": data["vector"]}, deterministic=True)
    env.close()
    assert np.abs(predicted - label).max() < 0.15
