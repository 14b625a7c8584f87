"""Trace one privileged episode tick by tick: speed, the curvature the scripted driver slows for
(and how far ahead it is), the speed cap it implies, and the nearest other vehicle.

  PYTHONPATH=. python benchmarks/trace_episode.py --scenario roundabout --seed 1001 [--every 15]
  PYTHONPATH=. python benchmarks/trace_episode.py --scenario roundabout --seed 1001 \
      --checkpoint runs/policy_more3/best.pt

Without ``--checkpoint`` the scripted driver drives; with one, that policy checkpoint's
deterministic action drives (``sim.agent.train.load_policy``, ground-truth view, as in
validation). The curvature is ``Privileged.curvature_ahead_1pm`` (the sharpest over the 60 m
path ahead, what ``sim.driver.ScriptedDriver`` caps its speed by: sqrt(max_lat_accel / |k|)).
Prints a line every ``--every`` ticks (with the pedal that drives and the scripted driver's pedal
for the same state), a line when another vehicle crashes (highway-env's
``crashed``: it stops where it is for the rest of the episode), the ego's collision tick if any,
and the episode's score.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from edgepilot.sim.agent.action import Action
from edgepilot.sim.driver import DriverConfig, ScriptedDriver


def _sharpest_at_m(path_xy: np.ndarray) -> float:
    """Metres along the path to its sharpest heading change (the path's points are 2 m apart)."""
    if len(path_xy) < 3:
        return math.nan
    step = np.diff(path_xy, axis=0)
    turn = np.abs(np.diff(np.unwrap(np.arctan2(step[:, 1], step[:, 0]))))
    return float(np.linalg.norm(step[: int(np.argmax(turn)) + 1], axis=1).sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="roundabout")
    p.add_argument("--seed", type=int, default=1001)
    p.add_argument("--checkpoint", default="", help="a driving-policy checkpoint (best.pt); default: scripted")
    p.add_argument("--every", type=int, default=15, help="print every N ticks")
    args = p.parse_args()

    from edgepilot.sim.agent.env import DriveEnv
    from edgepilot.sim.agent.train import env_kwargs, load_policy

    model, cfg = load_policy(args.checkpoint) if args.checkpoint else (None, None)
    env = DriveEnv(**({**env_kwargs(cfg), "max_steps": 0} if cfg else {}))
    driver = ScriptedDriver()
    driver.reset(args.seed)
    max_lat = DriverConfig().max_lat_accel_mps2
    obs, _ = env.reset(seed=args.seed, options={"scenario": args.scenario, "sim_seed": args.seed})
    print("tick  lane            speed m/s  curvature 1/m  at m  cap m/s  nearest car m (its m/s)  pedal  "
          "scripted pedal")
    done, tick = False, 0
    info: dict = {}
    crashed: set[int] = set()  # other vehicles already reported as crashed into each other
    try:
        while not done:
            sim = env.unwrapped.simulator
            view = sim.privileged()
            ego = sim.ego
            for v in ego.road.vehicles:
                if v is not ego and getattr(v, "crashed", False) and id(v) not in crashed:
                    crashed.add(id(v))
                    print(f"{tick:4d}  other vehicle crashed: lane {v.lane_index}, at ({v.position[0]:.1f}, "
                          f"{v.position[1]:.1f}), {v.speed:.1f} m/s, {np.linalg.norm(v.position - ego.position):.1f} m "
                          "from the ego")
            # the scripted driver's action for this state: what drives without --checkpoint, and
            # the label a DAgger round would give the policy's state with one
            scripted = Action.from_control(driver.act(view, env.unwrapped.sim_observation.ego)).to_array()
            if model is not None:
                action, _ = model.predict(obs, deterministic=True)
            else:
                action = scripted
            if tick % args.every == 0:
                k = view.curvature_ahead_1pm
                cap = math.sqrt(max_lat / abs(k)) if abs(k) > 1e-4 else math.inf
                others = [v for v in ego.road.vehicles if v is not ego]
                near = min(others, key=lambda v: np.linalg.norm(v.position - ego.position), default=None)
                near_text = (f"{np.linalg.norm(near.position - ego.position):6.1f} ({near.speed:4.1f})"
                             if near is not None else "-")
                print(f"{tick:4d}  {str(ego.lane_index):14s}  {ego.speed:9.1f}  {k:13.3f}  "
                      f"{_sharpest_at_m(view.path_xy):4.0f}  {cap:7.1f}  {near_text:13s}  {float(action[1]):+5.2f}  "
                      f"{float(scripted[1]):+5.2f}")
            obs, _, terminated, truncated, info = env.step(action)
            if env.unwrapped.sim_observation.events.collision:
                print(f"collision at tick {tick} ({env.unwrapped.sim_observation.events.collision_with})")
            done = terminated or truncated
            tick += 1
    finally:
        env.close()
    print({k: v for k, v in info.get("score", {}).items() if k in ("driving_score", "route_completion", "collisions")})


if __name__ == "__main__":
    main()
