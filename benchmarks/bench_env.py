"""Driving env throughput: ``edgepilot/Drive-v0`` steps per second, per scenario, on one core.

  PYTHONPATH=. OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_env.py
Writes benchmarks/results/env_steps.json. The clock counts only the env (reset and step,
with the observation the policy uses, read from the policy bundle's meta (``--policy``): the labels-only world, the semantic view, reward);
the actions' own cost (the scripted driver's privileged view) is left out.
Two action sources: ``scripted`` (the baseline driver, long episodes, like a policy that
drives) and ``random`` (uniform actions, short episodes, so resets weigh more, like PPO's
first updates). Each is run ``--repeats`` times; the best run is reported (others are
slowed by whatever else runs on the machine) with the median next to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.host import cpu_model
from edgepilot.runtime.outputs import write_text_atomic
from edgepilot.sim.agent.action import Action
from edgepilot.sim.agent.env import SCENARIOS, DriveConfig, DriveEnv
from edgepilot.sim.agent.observation import ObservationConfig
from edgepilot.sim.agent.policy import observation_config
from edgepilot.sim.driver import ScriptedDriver

RESULTS = Path(__file__).resolve().parent / "results"


def run_once(env: DriveEnv, actions: str, steps: int, seed: int) -> dict:
    """``steps`` env steps (resetting at episode ends); seconds spent inside the env only."""
    driver, rng = ScriptedDriver(), np.random.default_rng(seed)
    env_s = cpu_s = 0.0
    t, c = time.perf_counter(), time.process_time()
    env.reset(seed=seed)
    env_s, cpu_s = env_s + time.perf_counter() - t, cpu_s + time.process_time() - c
    resets = 0
    for _ in range(steps):
        sim, obs = env.simulator, env.sim_observation
        assert sim is not None and obs is not None
        if actions == "scripted":
            action = Action.from_control(driver.act(sim.privileged(), obs.ego)).to_array()
        else:
            action = rng.uniform(-1.0, 1.0, 2).astype(np.float32)
        t, c = time.perf_counter(), time.process_time()
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
            resets += 1
        env_s, cpu_s = env_s + time.perf_counter() - t, cpu_s + time.process_time() - c
    return {"steps": steps, "resets": resets, "seconds": env_s, "cpu_seconds": cpu_s,
            "steps_per_s": steps / env_s, "steps_per_cpu_s": steps / cpu_s}


def measure(scenario: str, actions: str, steps: int, repeats: int, seed: int,
            observation: ObservationConfig) -> dict:
    env = DriveEnv(scenarios=(scenario,), observation=observation)
    try:
        run_once(env, actions, 50, seed)  # warm-up: builds the world, fills caches
        runs = [run_once(env, actions, steps, seed + 1 + r) for r in range(repeats)]
    finally:
        env.close()
    rates = [r["steps_per_s"] for r in runs]
    return {"steps_per_s": max(rates), "steps_per_s_median": statistics.median(rates),
            "steps_per_cpu_s": max(r["steps_per_cpu_s"] for r in runs),
            "resets_per_run": [r["resets"] for r in runs], "steps_per_run": steps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--policy", type=Path, default=Path("models/policy"),
                   help="the observation is the one this policy bundle was trained on (default: the shipped one)")
    p.add_argument("--note", default="")
    p.add_argument("--out", type=Path, default=RESULTS / "env_steps.json")
    args = p.parse_args()
    cv2.setNumThreads(1)
    observation = observation_config(load_bundle(args.policy))
    cfg = DriveConfig(observation=observation)
    report: dict = {
        "benchmark": "env_steps",
        "env": "edgepilot/Drive-v0 (edgepilot.sim.agent.env.DriveEnv)",
        "settings": {
            "camera": dataclasses.asdict(cfg.camera), "observation": dataclasses.asdict(cfg.observation),
            "policy": str(args.policy), "far_m": cfg.far_m, "render": "labels only (BuiltinSimulator(rgb=False))",
            "steps": args.steps, "repeats": args.repeats, "seed": args.seed,
            "reported": "best of the repeats; the median next to it",
        },
        "env_steps_per_s": {}, "env_steps_per_s_random": {}, "scenarios": {},
        "note": args.note,
        "cpu": cpu_model(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
                     "highway-env": metadata.version("highway-env"), "gymnasium": metadata.version("gymnasium")},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    for name in args.scenarios:
        scripted = measure(name, "scripted", args.steps, args.repeats, args.seed, observation)
        random = measure(name, "random", args.steps, args.repeats, args.seed, observation)
        report["env_steps_per_s"][name] = round(scripted["steps_per_s"], 1)
        report["env_steps_per_s_random"][name] = round(random["steps_per_s"], 1)
        report["scenarios"][name] = {"scripted": scripted, "random": random}
        print(f"{name}: {scripted['steps_per_s']:.1f} env steps/s scripted (median "
              f"{scripted['steps_per_s_median']:.1f}), {random['steps_per_s']:.1f} random "
              f"({sum(random['resets_per_run'])} resets)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(report, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
