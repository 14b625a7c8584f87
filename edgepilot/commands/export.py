"""``edgepilot export``: a training checkpoint -> a checked model bundle (FP32, FP16, INT8)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgepilot.commands.common import int_in

NAME = "export"
HELP = "export a checkpoint to a model bundle (ONNX FP32/FP16/INT8, parity and accuracy checked)"
DESCRIPTION = """\
Export a seg or det checkpoint (best.pt / last.pt) to a model bundle folder:
model.onnx (opset 17, cleaned by onnxslim), model.fp16.onnx, model.pt2 for the
torch backend and meta.json, plus with --int8 a Q/DQ model.int8.onnx
(symmetric int8, per-channel weights: what TensorRT consumes) calibrated on the
real frames of --calib and chosen among MinMax, Entropy and Percentile by
accuracy on --val, with calibration.json recording the frames' SHA-256.

ONNX Runtime must agree with PyTorch on the --val frames (exit 1 with the
numbers when it does not). Accuracy per precision (mIoU or AP50) and parity
are written to meta.json and printed. A non-empty BUNDLE is refused unless
--force. `edgepilot info --model BUNDLE` reads the result.

examples:
  edgepilot export runs/seg/best.pt --task seg --out models/seg --val data/val/highway
  edgepilot export runs/det/best.pt --task det --out models/det --int8 \\
      --calib data/det/highway --val data/val/highway
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, metavar="CKPT", help="best.pt or last.pt from edgepilot train")
    p.add_argument("--task", choices=("seg", "det"), required=True, help="what the checkpoint was trained for")
    p.add_argument("--out", type=Path, required=True, metavar="BUNDLE", help="bundle folder to write")
    p.add_argument("--val", nargs="+", metavar="DIR", help="datagen folders for parity and accuracy (all frames)")
    p.add_argument("--int8", action="store_true", help="also write model.int8.onnx (needs --calib and --val)")
    p.add_argument("--calib", nargs="+", metavar="DIR", help="datagen folders whose frames calibrate INT8")
    p.add_argument("--methods", default="MinMax,Entropy,Percentile",
                   help="calibration methods to compare (comma list; default all three)")
    p.add_argument("--threads", type=int_in(1, 256), default=1, help="CPU threads for torch and onnxruntime")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty BUNDLE")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (or summary line) on stderr")


def _row(task: str, precision: str, acc: dict[str, Any], par: dict[str, Any]) -> str:
    if task == "segmentation":
        score = f"mIoU {100 * acc['miou']:6.2f}" if acc else "mIoU      -"
        share = f"argmax agree {par.get('argmax_agreement', 0.0):.4f}"
    else:
        score = f"AP50 {100 * acc['map50']:6.2f}  AP50:95 {100 * acc['map50_95']:6.2f}" if acc else "AP50      -"
        share = f"boxes matched {par.get('boxes_matched', 0.0):.4f}"
    return f"  {precision:<5} {score}  max abs err {par.get('max_abs_error', 0.0):9.3g}  {share}"


def main(args: argparse.Namespace) -> int:
    from edgepilot.export.bundle import export_checkpoint
    from edgepilot.export.quantize import METHODS
    from edgepilot.runtime.errors import EdgepilotError

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise EdgepilotError(f"--methods {args.methods!r}: choose from {', '.join(METHODS)}", exit_code=2)
    out = export_checkpoint(args.checkpoint, args.task, args.out, calib=args.calib, int8=args.int8,
                            val_data=args.val, force=args.force, methods=methods,
                            show_progress=not args.no_progress, threads=args.threads)
    meta = json.loads((out / "meta.json").read_text())
    print(f"wrote {out} ({meta['task']}, opset {meta['opset']})")
    for precision, par in meta["parity"].items():
        print(_row(meta["task"], precision, meta.get("accuracy", {}).get(precision, {}), par))
    if "calibration" in meta:
        c = meta["calibration"]
        print(f"  int8 calibration: {c['method']} on {c['frames']} frames; {c['why']}")
    return 0
