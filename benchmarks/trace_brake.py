"""Trace one episode of the policy with the emergency brake, tick by tick: the ego's speed, the
ground-truth gap to the car ahead in its lane and that car's speed (``Privileged.lead_gap_m``,
``lead_speed_mps``), what the brake read (range, closing speed, the deceleration stopping
would need), whether it is engaged, and the pedal applied.

  PYTHONPATH=. python benchmarks/trace_brake.py --scenario merge --seed 2031 [--every 5]
  PYTHONPATH=. python benchmarks/trace_brake.py --scenario merge --seed 903 --perception
  PYTHONPATH=. python benchmarks/trace_brake.py --scenario merge --seed 2031 --set assist_pedal=-1

Prints a line every ``--every`` ticks and every tick the brake is engaged, then how the episode
ended, its driving score and the brake's ticks. ``--perception``: the observation and the brake
from the shipped segmentation bundle's predicted map (INT8, ORT) instead of the ground truth.
``--set KEY=VALUE``: ``BrakeConfig`` fields over its defaults. Builtin world only (the gap to the
car ahead is its ground truth).
"""

from __future__ import annotations

import argparse
import math

from edgepilot.commands.drive import default_bundles
from edgepilot.sim.agent.drive import DriveOptions, _make_sim, build_agent
from edgepilot.sim.agent.episode import Tick, run_episode
from edgepilot.sim.agent.safety import BrakeConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="merge")
    p.add_argument("--seed", type=int, default=903)
    p.add_argument("--every", type=int, default=5, help="print every N ticks (and every engaged tick)")
    p.add_argument("--perception", action="store_true", help="predicted map from models/seg instead of ground truth")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a BrakeConfig field")
    args = p.parse_args()

    try:
        config = BrakeConfig.from_overrides(args.set)
    except ValueError as e:
        raise SystemExit(f"--set: {e}") from None
    shipped = default_bundles()
    opts = DriveOptions(scenarios=(args.scenario,), episodes=1, seed=args.seed, policy=str(shipped["policy"]),
                        privileged=not args.perception, emergency_brake=True, brake_config=config,
                        perception=(str(shipped["seg"]),) if args.perception else (), progress=False)
    agent = build_agent(opts)
    sim = _make_sim(opts, args.scenario, agent)
    brake = agent.brake
    assert brake is not None
    print("tick  speed m/s  lead gap m  lead m/s  range m  closing m/s  need m/s^2  engaged  pedal")

    def on_tick(t: Tick) -> None:
        if t.index % args.every and not brake.engaged:
            return
        view = sim.privileged()  # type: ignore[attr-defined]
        b = brake.last
        pedal = t.action.pedal if t.action is not None else math.nan
        print(f"{t.index:4d}  {t.observation.ego.speed_mps:9.1f}  {view.lead_gap_m:10.1f}  {view.lead_speed_mps:8.1f}  "
              f"{b.get('range_m', math.nan):7.1f}  {b.get('closing_mps', math.nan):11.1f}  "
              f"{b.get('need_mps2', math.nan):10.1f}  {int(brake.engaged):7d}  {pedal:+.2f}")

    try:
        result = run_episode(sim, agent, args.seed, on_tick=on_tick)
    finally:
        sim.close()
        agent.close()
    print(f"{result.ended} after {result.ticks} ticks: driving score {result.score['driving_score']:.3f}, "
          f"brake engaged {result.brake_ticks} ticks")


if __name__ == "__main__":
    main()
