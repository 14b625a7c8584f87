"""Builtin simulator throughput: rendered steps per second (RGB + labels + boxes).

Run pinned to one core, e.g.
  PYTHONPATH=. taskset -c 0 python benchmarks/bench_sim.py --scenario highway --size 256x512
Writes benchmarks/results/sim_builtin.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from edgepilot.runtime.host import cpu_model
from edgepilot.runtime.outputs import write_text_atomic
from edgepilot.sim.builtin.world import BuiltinSimulator
from edgepilot.sim.driver import ScriptedDriver
from edgepilot.sim.types import CameraConfig

RESULTS = Path(__file__).resolve().parent / "results"


def measure(scenario: str, height: int, width: int, steps: int, seed: int) -> dict:
    """Drive the baseline for ``steps`` rendered steps (resetting when an episode ends)."""
    driver = ScriptedDriver()
    with BuiltinSimulator(scenario, CameraConfig(width=width, height=height), seed=seed) as sim:
        obs = sim.reset(seed)
        driver.reset(seed)
        for _ in range(20):  # warm-up
            obs = sim.step(driver.act(sim.privileged(), obs.ego))
        resets, t0 = 0, time.perf_counter()
        for _ in range(steps):
            obs = sim.step(driver.act(sim.privileged(), obs.ego))
            if obs.info["terminated"] or obs.info["truncated"]:
                obs = sim.reset()
                resets += 1
        elapsed = time.perf_counter() - t0
    return {"steps": steps, "seconds": elapsed, "steps_per_s": steps / elapsed, "resets": resets}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="highway")
    p.add_argument("--size", default="256x512", help="HxW")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS / "sim_builtin.json")
    args = p.parse_args()
    cv2.setNumThreads(1)
    h, w = (int(v) for v in args.size.split("x"))
    result = measure(args.scenario, h, w, args.steps, args.seed)
    record = {
        "benchmark": "sim_builtin",
        "scenario": args.scenario,
        "height": h,
        "width": w,
        **result,
        "includes": "highway-env step + privileged driver + render (RGB, labels, boxes)",
        "cpu": cpu_model(),
        "cpu_affinity": sorted(__import__("os").sched_getaffinity(0)),
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "opencv": cv2.__version__, "highway-env": metadata.version("highway-env")},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(record, indent=1) + "\n")
    print(f"{args.scenario} {h}x{w}: {record['steps_per_s']:.1f} steps/s on {record['cpu']} -> {args.out}")


if __name__ == "__main__":
    main()
