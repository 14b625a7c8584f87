"""``edgepilot eval``: accuracy of a perception checkpoint or model bundle on datagen folders."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgepilot.commands.common import add_engine_arguments, int_in

TASKS = {"seg": "segmentation", "det": "detection"}
NAME = "eval"
HELP = "measure mIoU (seg) or vehicle AP (det) of a checkpoint or bundle on datagen folders"
DESCRIPTION = """\
Evaluate a checkpoint (OUT/best.pt or OUT/last.pt of `edgepilot train`, run by
PyTorch) or a model bundle (`edgepilot export`'s folder, run by the runtime's
engine: --backend, --precision, --device, --engine-opt, as for `edgepilot run`) on
one or more datagen folders. Segmentation: mIoU over the classes present in the data,
at the dataset's label resolution, and per-class IoU. Detection: vehicle AP@0.5 and
AP@0.5:0.95 from pycocotools, per class. A bundle's JSON adds backend, precision,
frames and the engine's p50 latency per call (engine_p50_ms). A bundle runs on the
cpu unless --device says otherwise; a checkpoint on CUDA when there is one. Prints
the JSON and writes it to --out.

Evaluate on data never used in training: other seeds (datagen --seed 1) or the val
split (other episodes of the same datagen runs).

examples:
  edgepilot eval seg runs/seg-dense/best.pt --data data/seg-heldout/highway data/seg-heldout/merge --split all
  edgepilot eval det runs/det/best.pt --data data/det/highway --out det_eval.json
  edgepilot eval seg models/seg --data data/seg-heldout/highway --split all --precision int8 --backend openvino
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", choices=("seg", "det"), help="seg or det")
    p.add_argument("model", metavar="MODEL", help="a bundle folder (edgepilot export) or a checkpoint written by "
                   "edgepilot train (best.pt, last.pt)")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR", help="datagen folders to evaluate on")
    p.add_argument("--split", choices=("train", "val", "all"), default="val",
                   help="which split of the folders (default: val; 'all' for held-out seeds)")
    p.add_argument("--limit", type=int_in(0, 10_000_000), default=0, help="evaluate the first N frames only (0: all)")
    p.add_argument("--out", metavar="FILE", help="write the JSON here")
    add_engine_arguments(p)
    p.set_defaults(device=None)  # a bundle runs on cpu unless told; a checkpoint on CUDA when there is one


def _bundle(args: argparse.Namespace) -> dict[str, Any]:
    from edgepilot.runtime.errors import require

    require("torch", "train", "evaluation")  # the metrics are perception's (torch)
    from edgepilot.export.accuracy import evaluate_bundle
    from edgepilot.export.frames import frames
    from edgepilot.runtime.bundle import load_bundle

    bundle = load_bundle(args.model)
    fr = frames(args.data, labels=args.task == "seg", limit=args.limit, split=args.split)
    assert fr is not None  # --data is required
    scores = evaluate_bundle(bundle, fr, backend=args.backend, precision=args.precision, device=args.device or "cpu",
                             hw=args.shape, engine_options=dict(args.engine_opt), task=TASKS[args.task])
    return {"task": args.task, "bundle": args.model, "data": args.data, "split": args.split, **scores}


def _checkpoint(args: argparse.Namespace) -> dict[str, Any]:
    from edgepilot.runtime.errors import EdgepilotError, require

    if not Path(args.model).is_file():
        raise EdgepilotError(f"{args.model} does not exist; give a bundle folder or a checkpoint "
                             f"(train one with edgepilot train {args.task})", exit_code=2)
    engine_flags = [flag for flag, on in (("--backend", args.backend != "ort"), ("--precision", args.precision != "fp32"),
                                          ("--shape", args.shape), ("--engine-opt", args.engine_opt)) if on]
    if engine_flags:
        raise EdgepilotError(f"{', '.join(engine_flags)} apply to bundles; checkpoint {args.model} is evaluated "
                             "by PyTorch (export it to evaluate an engine: edgepilot export)", exit_code=2)
    require("torch", "train", "evaluation")
    if args.task == "seg":
        from edgepilot.perception.train.seg import evaluate_seg

        scores = evaluate_seg(args.model, args.data, args.split, limit=args.limit, device=args.device or "auto")
    else:
        from edgepilot.perception.train.det import evaluate_det

        scores = evaluate_det(args.model, args.data, args.split, limit=args.limit, device=args.device or "auto")
    return {"task": args.task, "checkpoint": args.model, "data": args.data, "split": args.split, **scores}


def main(args: argparse.Namespace) -> int:
    from edgepilot.runtime.onnx_meta import is_onnx_file
    from edgepilot.runtime.outputs import check_outputs, write_text_atomic

    check_outputs({"--out": args.out}, inputs={"MODEL": args.model})
    is_bundle = Path(args.model).is_dir() or is_onnx_file(args.model)
    result = _bundle(args) if is_bundle else _checkpoint(args)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        write_text_atomic(args.out, text + "\n")
    return 0
