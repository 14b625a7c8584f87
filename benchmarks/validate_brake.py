"""The emergency brake on seeds it may be tuned on (never the held-out 1000-1019): the shipped
policy without the brake and with each brake variant, privileged and with the segmentation
bundle in the loop (INT8, ORT; no detector: it does not feed the policy or the brake).

  PYTHONPATH=. python benchmarks/validate_brake.py [--seed 900] [--episodes 10] [--mode privileged perception]
      [--policy BUNDLE]
  PYTHONPATH=. python benchmarks/validate_brake.py --seed 2000 --episodes 40 --mode privileged \\
      --variant default:assist_pedal=-1 --variant assist:assist_pedal=-0.3 --workers 2 \\
      --out benchmarks/results/brake_dev.json

A variant is ``NAME[:KEY=VALUE,...]``, ``sim.agent.safety.BrakeConfig`` fields over its defaults
(default: one variant, ``brake``, the defaults). Writes a JSON with, per mode, each run's
per-scenario driving score, collisions and the episodes where a variant differs from the policy
alone or acted (its ``brake_ticks``). The validation seeds are 900-909 (``brake_validation.json``);
2000+ are a development set (never trained on: training draws >= 100000). The held-out run is
``eval_drive.py --only privileged privileged_nobrake --episodes 20 --workers 2 --out benchmarks/results/drive20``
(the brake is on by default since 2026-12-07).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from edgepilot.commands.drive import default_bundles
from edgepilot.sim.agent.drive import DriveOptions, drive
from edgepilot.sim.agent.safety import BrakeConfig
from edgepilot.sim.builtin.scenario import available_scenarios
from edgepilot.sim.scale import ScaleOptions

RESULTS = Path(__file__).resolve().parent / "results"
HELD_OUT = set(range(1000, 1020)) | set(range(4000, 4020))  # the reports' seeds


def parse_variant(text: str) -> tuple[str, BrakeConfig]:
    """``NAME[:KEY=VALUE,...]`` -> (name, BrakeConfig with those fields over its defaults)."""
    name, _, rest = text.partition(":")
    try:
        return name, BrakeConfig.from_overrides([i for i in rest.split(",") if i])
    except ValueError as e:
        raise SystemExit(f"--variant {text!r}: {e}") from None


def summary(report: dict[str, Any]) -> dict[str, Any]:
    eps = report["episodes"]
    return {"per_scenario": {s: v["driving_score"] for s, v in report["scores"]["per_scenario"].items()},
            "overall": report["scores"]["overall"]["driving_score"],
            "collisions": sum(e["ended"] == "collision" for e in eps)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=900)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--scenarios", nargs="+", choices=available_scenarios(), default=None, help="default: all four")
    p.add_argument("--mode", nargs="+", choices=("privileged", "perception"), default=["privileged", "perception"])
    p.add_argument("--variant", action="append", default=None, metavar="NAME[:KEY=VALUE,...]")
    p.add_argument("--workers", type=int, default=1, help="Ray workers (episodes in parallel)")
    p.add_argument("--policy", type=Path, default=None, metavar="BUNDLE",
                   help="policy bundle (default: the shipped models/policy)")
    p.add_argument("--out", type=Path, default=RESULTS / "brake_validation.json")
    args = p.parse_args()
    if set(range(args.seed, args.seed + args.episodes)) & HELD_OUT:
        raise SystemExit(f"seeds {args.seed}-{args.seed + args.episodes - 1} overlap the held-out 1000-1019 or "
                         "4000-4019: tune on 900-909 or 2000-2999")
    variants = dict(parse_variant(v) for v in (args.variant or ["brake"]))
    shipped = default_bundles()
    policy = args.policy or shipped["policy"]
    if policy is None or not (Path(policy) / "meta.json").is_file():
        raise SystemExit(f"--policy {policy}: not a policy bundle (no meta.json); export one with "
                         "`edgepilot export CHECKPOINT --task policy --out DIR`")
    scenarios = tuple(args.scenarios) if args.scenarios else DriveOptions().scenarios
    out: dict = {"benchmark": "brake_validation", "seeds": [args.seed, args.seed + args.episodes - 1],
                 "scenarios": list(scenarios), "policy": str(policy), "variants": {k: dataclasses.asdict(v) for k, v in variants.items()},
                 "modes": {}}
    report: dict[str, Any] = {}
    for mode in args.mode:
        runs = {}
        for name, cfg in [("policy", None), *variants.items()]:
            opts = DriveOptions(scenarios=scenarios, episodes=args.episodes, seed=args.seed,
                                policy=str(policy), privileged=mode == "privileged",
                                emergency_brake=cfg is not None, brake_config=cfg, progress=False,
                                perception=(str(shipped["seg"]),) if mode == "perception" else (),
                                scale=ScaleOptions(workers=args.workers))
            report = drive(opts)
            runs[name] = report
            print(f"{mode} {name}: {summary(report)}", flush=True)
        res: dict[str, Any] = {name: summary(r) for name, r in runs.items()}
        for name in variants:
            res[name]["episodes_that_differ"] = [
                {"scenario": a["scenario"], "seed": a["seed"], "policy": a["driving_score"], "ended": a["ended"],
                 "with_brake": b["driving_score"], "ended_with_brake": b["ended"], "brake_ticks": b["brake_ticks"]}
                for a, b in zip(runs["policy"]["episodes"], runs[name]["episodes"], strict=True)
                if b["brake_ticks"] or abs(a["driving_score"] - b["driving_score"]) > 1e-9]
        out["modes"][mode] = res
    out["date"], out["host"] = report["date"], report["host"]
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
