"""Score the privileged scripted driver: 20 seeded episodes per scenario, no camera.

  PYTHONPATH=. python benchmarks/eval_driver.py
  PYTHONPATH=. python benchmarks/eval_driver.py --first-seed 2000 --episodes 40 --scenarios highway merge \
      --time-gap 1.0 --out benchmarks/results/dev/driver_gap1.0_2000.json
Writes benchmarks/results/baseline_driver.json (per-episode and mean scores). ``--time-gap S``:
the driver keeps S seconds to the car ahead (``DriverConfig.time_gap_s``; the baseline's 1.5 s),
as the expert of ``configs/train/policy_tg.yaml`` does.
"""

from __future__ import annotations

import argparse
import datetime
import json
from importlib import metadata
from pathlib import Path

from edgepilot.runtime.outputs import write_text_atomic
from edgepilot.sim.builtin.world import BuiltinSimulator
from edgepilot.sim.driver import DriverConfig, ScriptedDriver
from edgepilot.sim.metrics import EpisodeMeter, EpisodeScore, summarise

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("highway", "racetrack", "roundabout", "merge")


def run_episode(sim: BuiltinSimulator, driver: ScriptedDriver, seed: int) -> dict:
    obs = sim.reset(seed)
    driver.reset(seed)
    meter = EpisodeMeter()
    while not (obs.info["terminated"] or obs.info["truncated"]):
        obs = sim.step(driver.act(sim.privileged(), obs.ego))
        meter.update(obs)
    return {"seed": seed, **meter.score().to_dict()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    p.add_argument("--first-seed", type=int, default=1000)
    p.add_argument("--time-gap", type=float, default=DriverConfig().time_gap_s, metavar="S",
                   help="seconds kept to the car ahead (default: the baseline's %(default)s)")
    p.add_argument("--out", type=Path, default=RESULTS / "baseline_driver.json")
    args = p.parse_args()
    if args.time_gap <= 0:
        p.error(f"--time-gap {args.time_gap}: seconds > 0, please")
    config = DriverConfig(time_gap_s=args.time_gap)
    report: dict = {
        "driver": "edgepilot.sim.driver.ScriptedDriver (privileged, pure pursuit + gap keeping, no noise)",
        "time_gap_s": config.time_gap_s,
        "episodes_per_scenario": args.episodes,
        "seeds": [args.first_seed, args.first_seed + args.episodes - 1],
        "versions": {"highway-env": metadata.version("highway-env")},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "scenarios": {},
    }
    driver = ScriptedDriver(config)
    for name in args.scenarios:
        with BuiltinSimulator(name, render=False) as sim:
            rows = [run_episode(sim, driver, args.first_seed + i) for i in range(args.episodes)]
        summary = summarise([EpisodeScore(**{k: v for k, v in r.items() if k != "seed"}) for r in rows])
        report["scenarios"][name] = {"mean": summary, "episodes": rows}
        print(f"{name}: driving score {summary['driving_score']:.3f}, route completion "
              f"{summary['route_completion']:.3f}, collisions/km {summary['collisions_per_km']:.2f}, "
              f"off-road {summary['off_road_share']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
