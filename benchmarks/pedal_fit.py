"""How well a driving-policy checkpoint's actions match the scripted driver's on states it has not
been fitted on, and how much a fit on more such states helps (a data-or-fitting check for the
DAgger warm start).

  PYTHONPATH=. python benchmarks/pedal_fit.py --checkpoint runs/policy_fsb/best.pt \
      --scenario merge --states 8000 --out benchmarks/results/pedal_fit_merge_stage9.json
  PYTHONPATH=. python benchmarks/pedal_fit.py --checkpoint runs/policy_fsc/best.pt \
      --scenario merge --states 8000 --out benchmarks/results/pedal_fit_merge_stage10.json

1. ``--states`` states of ``--scenario`` driven by the checkpoint's deterministic policy (fresh
   training-range worlds, ``--seed``), each labelled by the scripted driver, as one DAgger round
   collects them (``sim.agent.train.collect``, beta 0).
2. The checkpoint's error on them per pedal-label band (full brake, brake, light brake, coast,
   throttle): mean prediction, mean label, mean absolute error.
3. The first ``--train-share`` of them (whole stretches of driving, in collection order) fitted
   for ``--epochs`` epochs in ``--every``-epoch steps with the checkpoint's own training settings
   (``sim.agent.train.fit``); after each step the pedal mse on the fitted states and on the rest,
   and the mean prediction where the label is a full brake.

A large fitted-vs-rest gap means the fit is short of data; a rest error that a fit barely moves
means the observation does not hold what the label depends on. Writes JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

BANDS = (("full brake", -1.01, -0.95), ("brake", -0.95, -0.5), ("light brake", -0.5, -0.1),
         ("coast", -0.1, 0.1), ("throttle", 0.1, 1.01))


def bands(pred: np.ndarray, label: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    for name, lo, hi in BANDS:
        m = (label > lo) & (label <= hi)
        if m.any():
            rows.append({"band": name, "label_range": [lo, hi], "states": int(m.sum()), "share": float(m.mean()),
                         "mean_pred": float(pred[m].mean()), "mean_label": float(label[m].mean()),
                         "mean_abs_error": float(np.abs(pred[m] - label[m]).mean())})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a driving-policy checkpoint (best.pt)")
    p.add_argument("--scenario", default="merge")
    p.add_argument("--states", type=int, default=8000)
    p.add_argument("--seed", type=int, default=4242, help="env seed for the fresh worlds (training range)")
    p.add_argument("--train-share", type=float, default=0.75)
    p.add_argument("--epochs", type=int, default=9)
    p.add_argument("--every", type=int, default=3)
    p.add_argument("--out", default="", help="write the result as JSON here")
    args = p.parse_args()

    import torch

    from edgepilot.sim.agent.train import collect, fit, load_policy, make_vec_env

    torch.manual_seed(0)
    model, cfg = load_policy(args.checkpoint)
    cfg = dataclasses.replace(cfg, n_envs=1, scenarios=(args.scenario,), anchor_scenarios=(), seed=args.seed)
    venv = make_vec_env(cfg)
    try:
        data = collect(venv, model.policy, args.states, 0.0, 0.0, cfg.gamma, np.random.default_rng(0))
    finally:
        venv.close()

    def predict(part: dict[str, np.ndarray]) -> np.ndarray:
        out, _ = model.policy.predict({"view": part["view"], "vector": part["vector"]}, deterministic=True)
        return np.asarray(out)

    def errors(part: dict[str, np.ndarray]) -> dict[str, Any]:
        pred = predict(part)
        e = pred - part["label"]
        full = part["label"][:, 1] <= -0.95
        return {"steer_mse": float(np.mean(e[:, 0] ** 2)), "pedal_mse": float(np.mean(e[:, 1] ** 2)),
                "full_brake_mean_pred": float(pred[full, 1].mean()) if full.any() else None,
                "full_brake_states": int(full.sum())}

    pred = predict(data)
    result: dict[str, Any] = {
        "benchmark": "pedal_fit", "checkpoint": args.checkpoint, "scenario": args.scenario,
        "states": int(len(data["label"])), "seed": args.seed,
        "bands": bands(pred[:, 1], data["label"][:, 1]),
    }
    cut = int(len(data["label"]) * args.train_share)
    keys = ("view", "vector", "label", "return")
    fitted = {k: data[k][:cut] for k in keys}
    rest = {k: data[k][cut:] for k in keys}
    steps = [{"epochs": 0, "fitted": errors(fitted), "rest": errors(rest)}]
    rng = np.random.default_rng(0)
    for done in range(args.every, args.epochs + 1, args.every):
        fit(model.policy, fitted, cfg, rng, args.every)
        steps.append({"epochs": done, "fitted": errors(fitted), "rest": errors(rest)})
    result["fit"] = {"train_share": args.train_share, "bc_brake_weight": cfg.bc_brake_weight, "steps": steps}
    for row in result["bands"]:
        print(f"{row['band']:12s} {row['states']:5d} states ({row['share']:.1%}): pred {row['mean_pred']:+.2f} "
              f"label {row['mean_label']:+.2f} |err| {row['mean_abs_error']:.2f}")
    for s in steps:
        full = s["rest"]["full_brake_mean_pred"]
        print(f"after {s['epochs']} epochs: pedal mse fitted {s['fitted']['pedal_mse']:.4f} rest "
              f"{s['rest']['pedal_mse']:.4f}; full brake predicted on the rest "
              f"{'-' if full is None else f'{full:+.2f}'}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"-> {args.out}")


if __name__ == "__main__":
    main()
