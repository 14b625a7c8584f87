"""``edgepilot eval``: accuracy of a trained perception checkpoint on datagen folders."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgepilot.commands.common import int_in

NAME = "eval"
HELP = "measure mIoU (seg) or vehicle AP (det) of a checkpoint on datagen folders"
DESCRIPTION = """\
Evaluate a checkpoint (OUT/best.pt or OUT/last.pt of `edgepilot train`) on one or
more datagen folders. Segmentation: mIoU over the classes present in the data, at the
dataset's label resolution, and per-class IoU. Detection: vehicle AP@0.5 and
AP@0.5:0.95 from pycocotools, per class. Prints the JSON and writes it to --out.

Evaluate on data never used in training: other seeds (datagen --seed 1) or the val
split (other episodes of the same datagen runs).

examples:
  edgepilot eval seg runs/seg/best.pt --data data/seg-heldout/highway data/seg-heldout/merge --split all
  edgepilot eval det runs/det/best.pt --data data/det/highway --out det_eval.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", choices=("seg", "det"), help="seg or det")
    p.add_argument("model", metavar="CHECKPOINT", help="a checkpoint written by edgepilot train (best.pt, last.pt)")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR", help="datagen folders to evaluate on")
    p.add_argument("--split", choices=("train", "val", "all"), default="val",
                   help="which split of the folders (default: val; 'all' for held-out seeds)")
    p.add_argument("--limit", type=int_in(0, 10_000_000), default=0, help="evaluate the first N frames only (0: all)")
    p.add_argument("--out", metavar="FILE", help="write the JSON here")


def main(args: argparse.Namespace) -> int:
    from edgepilot.runtime.errors import EdgepilotError, require
    from edgepilot.runtime.outputs import check_outputs, write_text_atomic

    check_outputs({"--out": args.out}, inputs={"CHECKPOINT": args.model})
    if not Path(args.model).is_file():
        raise EdgepilotError(f"checkpoint {args.model} does not exist; train one with edgepilot train {args.task}",
                             exit_code=2)
    require("torch", "train", "evaluation")
    if args.task == "seg":
        from edgepilot.perception.train.seg import evaluate_seg

        scores = evaluate_seg(args.model, args.data, args.split, limit=args.limit)
    else:
        from edgepilot.perception.train.det import evaluate_det

        scores = evaluate_det(args.model, args.data, args.split, limit=args.limit)
    result = {"task": args.task, "checkpoint": args.model, "data": args.data, "split": args.split, **scores}
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        write_text_atomic(args.out, text + "\n")
    return 0
