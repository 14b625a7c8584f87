"""Validation scores of driving-policy checkpoints on the same seeds, side by side.

  PYTHONPATH=. python benchmarks/validate_policy.py runs/policy/best.pt runs/policy_more/best.pt \
      [--seeds 900 901 902 903 904] [--out benchmarks/results/policy_validation.json]
  PYTHONPATH=. python benchmarks/validate_policy.py runs/policy_ppo/best.pt --frame-step 1 10 \
      --scenarios racetrack roundabout --seeds 900 901 902 903 904 905 906 907 908 909 \
      --out benchmarks/results/policy_validation_frame_step.json

Each checkpoint's deterministic policy drives every scenario it was trained on with ground truth
(``sim.agent.train.validate``, the function that picks ``best.pt`` during training) on
``--seeds``: validation seeds, below the training worlds' range and apart from the 1000+ test
seeds of the drive reports. This is how a checkpoint is chosen for shipping; the drive reports
then measure the chosen one on seeds never used for choosing. ``--frame-step`` drives each
checkpoint with its stacked frames that many steps apart instead of as trained (the same
network, a different input: ``ObservationConfig.frame_step``); ``--scenarios`` picks some of
the checkpoint's scenarios.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
from pathlib import Path

import torch

from edgepilot.runtime.host import cpu_model
from edgepilot.runtime.outputs import write_text_atomic
from edgepilot.sim.agent.train import load_policy, validate

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--seeds", nargs="+", type=int, default=[900, 901, 902, 903, 904])
    p.add_argument("--frame-step", nargs="+", type=int, default=[],
                   help="drive with the stacked frames this many steps apart (each value in turn); default: as trained")
    p.add_argument("--scenarios", nargs="+", default=[], help="only these scenarios; default: those it was trained on")
    p.add_argument("--out", type=Path, default=RESULTS / "policy_validation.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = {}
    for path in args.checkpoints:
        model, trained = load_policy(path)
        if args.scenarios:
            trained = dataclasses.replace(trained, scenarios=tuple(args.scenarios))
        for step in args.frame_step or [None]:
            cfg = trained if step is None else dataclasses.replace(trained, frame_step=step)
            name = str(path) if step is None else f"{path} (frame_step {step})"
            result = validate(model.policy, cfg, seeds=tuple(args.seeds))
            rows[name] = {"driving_score": round(result["driving_score"], 4),
                          "per_scenario": {k: round(v, 4) for k, v in result["per_scenario"].items()}}
            print(f"{name}: {result['driving_score']:.3f} "
                  + " ".join(f"{k} {v:.3f}" for k, v in result["per_scenario"].items()), flush=True)
    report = {"benchmark": "policy_validation", "seeds": args.seeds, "checkpoints": rows, "cpu": cpu_model(),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(report, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
