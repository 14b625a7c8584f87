"""The emergency brake on the validation seeds (900-909, never the held-out 1000+): the shipped
policy with and without ``--emergency-brake``, privileged and with the segmentation bundle in the
loop (INT8, ORT; no detector: it does not feed the policy or the brake).

  PYTHONPATH=. python benchmarks/validate_brake.py [--seed 900] [--episodes 10] [--mode privileged perception]

Writes benchmarks/results/brake_validation.json: per mode, each run's per-scenario driving score
and the episodes where the two differ or the brake acted (its ``brake_ticks``). The brake's
settings (``sim.agent.safety.BrakeConfig``) were chosen on these seeds; the held-out run is
``eval_drive.py --only privileged_brake --episodes 20 --out benchmarks/results/drive20``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgepilot.commands.drive import default_bundles
from edgepilot.sim.agent.drive import DriveOptions, drive

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=900)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--mode", nargs="+", choices=("privileged", "perception"), default=["privileged", "perception"])
    p.add_argument("--out", type=Path, default=RESULTS / "brake_validation.json")
    args = p.parse_args()
    shipped = default_bundles()
    out: dict = {"benchmark": "brake_validation", "seeds": [args.seed, args.seed + args.episodes - 1], "modes": {}}
    for mode in args.mode:
        runs = {}
        for brake in (False, True):
            opts = DriveOptions(episodes=args.episodes, seed=args.seed, policy=str(shipped["policy"]),
                                privileged=mode == "privileged", emergency_brake=brake,
                                perception=(str(shipped["seg"]),) if mode == "perception" else ())
            report = drive(opts)
            runs["brake" if brake else "policy"] = report
        out["brake_config"] = runs["brake"]["agent"]["brake"]
        plain, guarded = runs["policy"], runs["brake"]
        differ = [{"scenario": a["scenario"], "seed": a["seed"], "policy": a["driving_score"], "ended": a["ended"],
                   "with_brake": b["driving_score"], "ended_with_brake": b["ended"], "brake_ticks": b["brake_ticks"]}
                  for a, b in zip(plain["episodes"], guarded["episodes"], strict=True)
                  if b["brake_ticks"] or abs(a["driving_score"] - b["driving_score"]) > 1e-9]
        out["modes"][mode] = {
            name: {"per_scenario": {s: v["driving_score"] for s, v in r["scores"]["per_scenario"].items()},
                   "overall": r["scores"]["overall"]["driving_score"]} for name, r in runs.items()}
        out["modes"][mode]["episodes_that_differ"] = differ
        print(f"{mode}: policy {out['modes'][mode]['policy']} / with brake {out['modes'][mode]['brake']}")
    out["date"], out["host"] = guarded["date"], guarded["host"]
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
