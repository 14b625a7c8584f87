"""``edgepilot train``: train a perception model from a config (defaults in code, YAML overrides)."""

from __future__ import annotations

import argparse
import json
from typing import Any

NAME = "train"
HELP = "train the segmentation, detection or driving-policy model from a config (resumable, seeded)"
DESCRIPTION = """\
Train a perception model on datagen folders, or the driving policy in the
builtin world (policy: a DAgger warm start from the scripted driver, then
stable-baselines3 PPO; edgepilot.sim.agent.train says how). The config is a typed dataclass
with defaults in code (edgepilot.perception.train.config); the YAML file only
overrides it, and unknown keys are refused. Training is seeded, shows progress
with loss and ETA, writes weights-only checkpoints (OUT/last.pt every few minutes
and at each epoch end, OUT/best.pt by the validation metric), history.json and
curves.png, and resumes from OUT/last.pt when it exists.

The shipped configs say which datagen commands make their data and how long a
run takes on a 2-core CPU (configs/train/seg.yaml, configs/train/det.yaml).

examples:
  edgepilot train seg --config configs/train/seg.yaml
  edgepilot train det --config configs/train/det.yaml --set epochs=2 --set out=runs/det-try
  edgepilot train policy --config configs/train/policy.yaml
"""


def _override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--set {text!r}: write it as KEY=VALUE, e.g. epochs=2")
    import yaml

    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"--set {text!r}: the value is not YAML") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", choices=("seg", "det", "policy"),
                   help="seg: Fast-SCNN segmentation; det: CenterNet vehicles; policy: the RL driving policy")
    p.add_argument("--config", metavar="YAML", help="config file overriding the defaults in code")
    p.add_argument("--set", type=_override, action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one config field after the file, repeatable (values are YAML)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (or summary line) on stderr")


def main(args: argparse.Namespace) -> int:
    from edgepilot.perception.train.config import DetConfig, SegConfig, load_config
    from edgepilot.runtime.errors import require

    require("torch", "train", "training")
    overrides = dict(args.overrides)
    if args.no_progress:
        overrides["progress"] = False
    if args.task == "policy":
        from edgepilot.sim.agent.train import load_policy_config, train_policy

        print(json.dumps(train_policy(load_policy_config(args.config, **overrides)), indent=2, default=str))
        return 0
    cfg = load_config(args.task, args.config, **overrides)
    if isinstance(cfg, SegConfig):
        from edgepilot.perception.train.seg import train_seg

        summary = train_seg(cfg)
    else:
        from edgepilot.perception.train.det import train_det

        assert isinstance(cfg, DetConfig)
        summary = train_det(cfg)
    shown = {k: v for k, v in summary.items() if k != "history"}
    print(json.dumps(shown, indent=2, default=str))
    return 0
