"""The driving reports: the shipped agent (policy + emergency brake) privileged, with
perception in the loop (and latency-aware), the policy alone, and the scripted baseline, on
held-out seeds of all four builtin scenarios.

  PYTHONPATH=. python benchmarks/eval_drive.py [--episodes 5] [--seed 1000] [--only NAME ...]
      [--workers K] [--out DIR]

Runs ``edgepilot drive``'s library call (the same as the commands below) and writes
DIR/drive_<name>.json (default benchmarks/results/), then prints one table over them:

  baseline    edgepilot drive --driver scripted                        --report drive_baseline.json
  overtaking  edgepilot drive --driver overtaking                      --report drive_overtaking.json
  privileged  edgepilot drive --privileged                             --report drive_privileged.json
  perception  edgepilot drive --latency-aware  (models/seg,models/det INT8, ORT CPU) --report drive_perception.json
  slow4x      edgepilot drive --latency-aware --latency-scale 4        --report drive_perception_x4.json
  privileged_nobrake  edgepilot drive --privileged --no-emergency-brake --report drive_privileged_nobrake.json
  perception_nobrake  edgepilot drive --no-emergency-brake (models/seg,models/det INT8) --report drive_perception_nobrake.json

(all with ``--episodes N --seed S``; the emergency brake is on unless the name says nobrake, as
in ``edgepilot drive``). The policy trained on seeds >= 100000 and was validated on 900-909;
the agent was chosen on 3000-3039 (benchmarks/results/valb/README.md); the default 1000+ are
held out, and so are 4000+. Run it on a quiet machine: the perception report's latency (and,
with --latency-aware, its score) depends on what else runs, so ``--workers`` (episodes on K Ray
workers) is for the privileged and baseline runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgepilot.commands.drive import default_bundles
from edgepilot.sim.agent.drive import DriveOptions, drive, score_table, write_report
from edgepilot.sim.scale import ScaleOptions

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = ("baseline", "overtaking", "privileged", "perception", "slow4x", "privileged_nobrake", "perception_nobrake")


def options(name: str, episodes: int, seed: int, workers: int = 1) -> DriveOptions:
    shipped = default_bundles()
    policy = str(shipped["policy"]) if shipped["policy"] else ""
    perception = tuple(str(shipped[k]) for k in ("seg", "det") if shipped[k] is not None)
    common = {"episodes": episodes, "seed": seed, "policy": policy, "scale": ScaleOptions(workers=workers)}
    if name in ("baseline", "overtaking"):
        return DriveOptions(driver="scripted" if name == "baseline" else "overtaking", **common)
    if name == "privileged":
        return DriveOptions(privileged=True, **common)
    if name == "privileged_nobrake":
        return DriveOptions(privileged=True, emergency_brake=False, **common)
    if name == "perception_nobrake":
        return DriveOptions(perception=perception, emergency_brake=False, **common)
    if name == "perception":
        return DriveOptions(perception=perception, latency_aware=True, **common)
    return DriveOptions(perception=perception, latency_aware=True, latency_scale=4.0, **common)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--only", nargs="+", choices=RUNS, default=list(RUNS))
    p.add_argument("--workers", type=int, default=1, help="Ray workers (episodes in parallel; default 1)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        report = drive(options(name, args.episodes, args.seed, args.workers))
        path = args.out / ("drive_perception_x4.json" if name == "slow4x" else f"drive_{name}.json")
        write_report(report, path)
        print(f"== {name} -> {path}")
        print(score_table(report))


if __name__ == "__main__":
    main()
