"""Driving-policy checkpoint -> a policy bundle every backend runs, with parity checked.

``export_policy("runs/policy/best.pt", "models/policy")`` writes ``model.onnx`` (opset 17,
inputs ``view`` uint8 ``[1, C, h, w]`` and ``vector`` float32 ``[1, D]``, output ``action``
float32 ``[1, 2]``: the Gaussian's mean clipped to [-1, 1], the deterministic action head),
``model.pt2`` (the torch backend) and ``meta.json`` (task ``policy``, the ``action`` decoder
with names and bounds, and the ``observation`` and ``camera`` the policy was trained on, so
a driver builds the same input). Parity: observations of a few episodes driven by the policy
itself (ground-truth view, validation seeds) go through PyTorch and through every installed
CPU backend; each must agree within ``TOLERANCE`` (exit 1 with the numbers when one does not).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgepilot.export.outdir import prepare_out
from edgepilot.export.torch_export import state_dict_sha256
from edgepilot.runtime.bundle import file_sha256, load_bundle, write_meta
from edgepilot.runtime.errors import EdgepilotError, EngineError, MissingExtraError
from edgepilot.sim.agent.action import ACTION_HIGH, ACTION_LOW
from edgepilot.sim.agent.env import DriveEnv
from edgepilot.sim.agent.policy_net import INPUT_NAMES, OUTPUT_NAMES, DeterministicActor
from edgepilot.sim.agent.train import PolicyConfig, env_kwargs, load_policy

TOLERANCE = 1e-4  # max abs action difference from PyTorch (actions are in [-1, 1])
PARITY_BACKENDS = ("ort", "openvino", "torch")
ACTION_NAMES = ("steer", "pedal")


def parity_observations(model: Any, cfg: PolicyConfig, steps: int = 200, seed: int = 900
                        ) -> dict[str, np.ndarray]:
    """``steps`` observations per scenario from the policy's own deterministic drive."""
    scenarios = tuple(dict.fromkeys(cfg.scenarios))  # a scenario listed twice (trained on more) once
    env = DriveEnv(**{**env_kwargs(cfg), "max_steps": 0})
    views, vectors = [], []
    try:
        for scenario in scenarios:
            obs, _ = env.reset(seed=seed, options={"scenario": scenario, "sim_seed": seed})
            for _ in range(steps):
                views.append(obs["view"])
                vectors.append(obs["vector"])
                action, _ = model.policy.predict(obs, deterministic=True)
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    obs, _ = env.reset(seed=seed + 1, options={"scenario": scenario, "sim_seed": seed + 1})
    finally:
        env.close()
    return {"view": np.stack(views), "vector": np.stack(vectors)}


def _reference(actor: torch.nn.Module, obs: dict[str, np.ndarray]) -> np.ndarray:
    with torch.inference_mode():
        return actor(torch.as_tensor(obs["view"]), torch.as_tensor(obs["vector"])).numpy()


def _backend_actions(bundle_dir: Path, backend: str, obs: dict[str, np.ndarray]) -> np.ndarray | None:
    """Every observation through ``backend`` one at a time (as a driver calls it); None when
    the backend is not installed here."""
    from edgepilot.runtime.engines import load_engine

    try:
        engine = load_engine(bundle_dir, backend=backend)
    except MissingExtraError:
        return None
    with engine:
        # copied: an engine's outputs may be its own buffers, reused by the next call
        out = [np.array(engine.infer({"view": obs["view"][i:i + 1], "vector": obs["vector"][i:i + 1]})[OUTPUT_NAMES[0]])
               for i in range(len(obs["view"]))]
    return np.concatenate(out).reshape(-1, len(ACTION_NAMES))


def export_policy(ckpt: str | Path, out: str | Path, *, force: bool = False, parity_steps: int = 200,
                  threads: int = 1) -> Path:
    """Write the policy bundle of ``ckpt`` into ``out`` (see the module docstring); the folder."""
    torch.set_num_threads(max(threads, 1))
    out = Path(out)
    prepare_out(out, force)
    model, cfg = load_policy(ckpt)
    actor = DeterministicActor(model.policy).eval()
    env = DriveEnv(**{**env_kwargs(cfg), "max_steps": 0})
    view_shape = env.observation_space["view"].shape
    vector_size = env.observation_space["vector"].shape[0]
    env_config = env.config
    env.close()
    example = (torch.zeros((1, *view_shape), dtype=torch.uint8), torch.zeros((1, vector_size)))
    torch.onnx.export(actor, example, str(out / "model.onnx"), dynamo=False, input_names=list(INPUT_NAMES),
                      output_names=list(OUTPUT_NAMES), opset_version=17)
    torch.export.save(torch.export.export(actor, example), str(out / "model.pt2"))
    meta: dict[str, Any] = {
        "format": "edgepilot-bundle", "version": 1, "name": "drive-policy", "task": "policy", "opset": 17,
        "inputs": [{"name": "view", "shape": [1, *view_shape], "dtype": "uint8"},
                   {"name": "vector", "shape": [1, vector_size], "dtype": "float32"}],
        "outputs": [{"name": "action", "shape": [1, len(ACTION_NAMES)], "dtype": "float32"}],
        "decoder": {"type": "action", "output": "action", "names": list(ACTION_NAMES),
                    "low": [ACTION_LOW] * len(ACTION_NAMES), "high": [ACTION_HIGH] * len(ACTION_NAMES)},
        "files": {"fp32": "model.onnx", "torch": "model.pt2"},
        "observation": dataclasses.asdict(env_config.observation),
        "camera": dataclasses.asdict(env_config.camera),
        "source": {"trained": True, "checkpoint": str(ckpt), "checkpoint_sha256": file_sha256(Path(ckpt)),
                   "state_dict_sha256": state_dict_sha256(actor), "env": "edgepilot/Drive-v0",
                   "scenarios": list(dict.fromkeys(cfg.scenarios)), "train_config": dataclasses.asdict(cfg)},
    }
    write_meta(out, meta)
    obs = parity_observations(model, cfg, parity_steps // max(len(cfg.scenarios), 1) or 1)
    reference = _reference(actor, obs)
    parity: dict[str, Any] = {}
    for backend in PARITY_BACKENDS:
        try:
            got = _backend_actions(out, backend, obs)
        except EngineError as exc:
            parity[backend] = {"ran": False, "why": str(exc)}
            continue
        if got is None:
            parity[backend] = {"ran": False, "why": "not installed here"}
            continue
        err = float(np.abs(got - reference).max())
        parity[backend] = {"ran": True, "observations": len(reference), "max_abs_error": err,
                           "tolerance": TOLERANCE, "passed": err <= TOLERANCE}
    meta["parity"] = {"fp32": parity["ort"] if parity["ort"].get("ran") else {}, "backends": parity}
    write_meta(out, meta)
    failed = {b: p["max_abs_error"] for b, p in parity.items() if p.get("ran") and not p["passed"]}
    if failed:
        raise EdgepilotError(f"policy parity with PyTorch failed in {out}: max abs action error "
                             f"{json.dumps(failed)} > {TOLERANCE}", exit_code=1)
    load_bundle(out)  # the written bundle passes the runtime's own checks
    return out
