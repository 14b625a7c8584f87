"""``edgepilot export``: a training checkpoint (or a YOLO ONNX) -> a checked model bundle (FP32, FP16, INT8)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgepilot.commands.common import int_in

NAME = "export"
HELP = ("export a checkpoint (or a YOLO ONNX, --from-onnx) to a model bundle (ONNX FP32/FP16/INT8, checked); "
        "export triton BUNDLE --out REPO: a Triton model repository")
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

--from-onnx MODEL.onnx instead of a checkpoint: a detection ONNX exported by
Ultralytics (YOLOv8 / YOLO11, nms=False) becomes a bundle from the class names,
input size and task in its metadata (--names / --imgsz supply or override them):
model.onnx (copied), meta.json (letterbox, RGB, 1/255, the yolo decoder) and
model.fp16.onnx (unless --no-fp16). No torch needed.

triton BUNDLE --out REPO instead of a checkpoint: serve a bundle with Triton
Inference Server. Writes REPO/<name>/config.pbtxt (platform onnxruntime_onnx;
inputs and outputs from the graph; instance_group of --instances on --kind;
with --kind gpu the TensorRT accelerator at the precision) and
REPO/<name>/1/model.onnx + meta.json. --precision picks the graph: fp32
model.onnx; fp16 model.fp16.onnx on cpu, model.onnx + TensorRT FP16 on gpu;
int8 the Q/DQ graph (TensorRT INT8, no calibration table). --max-batch B > 1
makes the batch dynamic (checked with ONNX Runtime), with dynamic batching
and a --queue-delay-us wait; 0 or 1: no batching. Then run the bundle against
the server: edgepilot run SOURCE --model REPO/<name>/1 --backend triton
--engine-opt url=HOST:8001. A non-empty REPO/<name> is refused unless --force
(other models in REPO are left alone).

examples:
  edgepilot export runs/seg-dense/best.pt --task seg --out models/seg --val data/val/highway
  edgepilot export runs/det/best.pt --task det --out models/det --int8 \\
      --calib data/det/highway --val data/val/highway
  edgepilot export runs/policy/best.pt --task policy --out models/policy
  edgepilot export --from-onnx yolov8n.onnx --out models/yolov8n
  edgepilot export --from-onnx detector.onnx --names car,truck,bus --imgsz 384x640 --out models/mine
  edgepilot export triton models/det --out triton-repo
  edgepilot export triton models/det --out triton-repo --kind gpu --precision fp16 --max-batch 8 \\
      --instances 2
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", metavar="CKPT",
                   help="best.pt or last.pt from edgepilot train (or give --from-onnx instead); the word "
                        "triton: export BUNDLE as a Triton model repository")
    p.add_argument("bundle", type=Path, nargs="?", metavar="BUNDLE",
                   help="with triton: the model bundle folder to serve")
    p.add_argument("--task", choices=("seg", "det", "policy"),
                   help="what the checkpoint was trained for (needed with CKPT); policy: a driving policy "
                        "from `edgepilot train policy` (no --val/--int8: parity runs on its own drive)")
    p.add_argument("--out", type=Path, required=True, metavar="OUT",
                   help="bundle folder to write (with triton: the model repository REPO)")
    p.add_argument("--val", nargs="+", metavar="DIR", help="datagen folders for parity and accuracy (all frames)")
    p.add_argument("--int8", action="store_true", help="also write model.int8.onnx (needs --calib and --val)")
    p.add_argument("--calib", nargs="+", metavar="DIR", help="datagen folders whose frames calibrate INT8")
    p.add_argument("--methods", default="MinMax,Entropy,Percentile",
                   help="calibration methods to compare (comma list; default all three)")
    p.add_argument("--threads", type=int_in(1, 256), default=1, help="CPU threads for torch and onnxruntime")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty BUNDLE")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (or summary line) on stderr")
    p.add_argument("--engine", action="store_true", help="then build its TensorRT engines as `edgepilot build` "
                   "does (where TensorRT is missing: trtexec.sh written instead, exit 3)")
    g = p.add_argument_group("from an ONNX (instead of CKPT)")
    g.add_argument("--from-onnx", type=Path, metavar="MODEL.onnx",
                   help="a detection ONNX with Ultralytics metadata (YOLOv8/YOLO11 [1, 4+nc, N] output)")
    g.add_argument("--names", metavar="NAMES", help="class names: a comma list, a text file (one per line) or "
                   "a YAML/JSON with 'names' (an Ultralytics data.yaml); overrides the metadata")
    g.add_argument("--imgsz", type=_imgsz, metavar="HxW", help="input size, e.g. 640 or 384x640; overrides the metadata")
    g.add_argument("--no-fp16", action="store_true", help="do not write model.fp16.onnx")
    t = p.add_argument_group("triton BUNDLE --out REPO (a Triton model repository)")
    t.add_argument("--precision", choices=("fp32", "fp16", "int8"), help="the graph to serve (default: fp32)")
    t.add_argument("--max-batch", type=int_in(0, 4096), metavar="B",
                   help="frames per batch with dynamic batching; 0 or 1: none (default: 1)")
    t.add_argument("--instances", type=int_in(1, 64), metavar="N", help="model instances (default: 1)")
    t.add_argument("--kind", choices=("cpu", "gpu"),
                   help="where instances run: cpu (ONNX Runtime) or gpu (+ TensorRT accelerator) (default: cpu)")
    t.add_argument("--name", help="model name in REPO (default: the bundle's name)")
    t.add_argument("--queue-delay-us", type=int_in(0, 10_000_000), metavar="US",
                   help="dynamic batching's max queue delay in microseconds (default: 100)")
    t.add_argument("--workspace-mb", type=int_in(16, 1 << 20), metavar="MB",
                   help="TensorRT accelerator workspace in MB (default: 1024)")


def _imgsz(text: str) -> tuple[int, int]:
    from edgepilot.runtime.errors import EdgepilotError
    from edgepilot.runtime.options import parse_shape

    try:
        hw = parse_shape(f"{text}x{text}" if text.strip().isdigit() else text)
    except EdgepilotError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if hw is None:
        raise argparse.ArgumentTypeError(f"--imgsz {text!r}: give a size, e.g. 640 or 384x640")
    return hw


def _row(task: str, precision: str, acc: dict[str, Any], par: dict[str, Any]) -> str:
    if task == "segmentation":
        score = f"mIoU {100 * acc['miou']:6.2f}" if acc else "mIoU      -"
        share = f"argmax agree {par.get('argmax_agreement', 0.0):.4f}"
    else:
        score = f"AP50 {100 * acc['map50']:6.2f}  AP50:95 {100 * acc['map50_95']:6.2f}" if acc else "AP50      -"
        share = f"boxes matched {par.get('boxes_matched', 0.0):.4f}"
    return f"  {precision:<5} {score}  max abs err {par.get('max_abs_error', 0.0):9.3g}  {share}"


TRITON_FLAGS = (("--precision", "precision"), ("--max-batch", "max_batch"), ("--instances", "instances"),
                ("--kind", "kind"), ("--name", "name"), ("--queue-delay-us", "queue_delay_us"),
                ("--workspace-mb", "workspace_mb"))


def _triton(args: argparse.Namespace) -> int:
    """``export triton BUNDLE --out REPO``: refuse the checkpoint options, then write the model folder."""
    from edgepilot.export.triton import TritonModel, summary, write_triton_model
    from edgepilot.runtime.errors import EdgepilotError

    if args.bundle is None:
        raise EdgepilotError("give the bundle to serve: edgepilot export triton BUNDLE --out REPO", exit_code=2)
    used = [flag for flag, on in (("--task", args.task), ("--val", args.val), ("--int8", args.int8),
                                  ("--calib", args.calib), ("--from-onnx", args.from_onnx), ("--names", args.names),
                                  ("--imgsz", args.imgsz), ("--no-fp16", args.no_fp16), ("--engine", args.engine))
            if on]
    if used:
        raise EdgepilotError(f"{', '.join(used)} do not apply to export triton (it serves a bundle as it is)",
                             exit_code=2)
    given = {key: getattr(args, key) for _, key in TRITON_FLAGS if getattr(args, key) is not None}
    model = TritonModel(**given)
    folder = write_triton_model(args.bundle, args.out, model, force=args.force)
    print(summary(folder, model))
    return 0


def _engine(args: argparse.Namespace, out: Path) -> int:
    """``--engine``: the written bundle's TensorRT engines, as ``edgepilot build`` builds them (its exit code)."""
    if not args.engine:
        return 0
    from edgepilot.commands.build import run_build

    return run_build(out)


def _from_onnx(args: argparse.Namespace) -> int:
    """``--from-onnx``: refuse the checkpoint-only options, then write the bundle."""
    from edgepilot.export.from_onnx import export_from_onnx, read_names, summary
    from edgepilot.runtime.errors import EdgepilotError

    if args.checkpoint is not None:
        raise EdgepilotError(f"give a checkpoint ({args.checkpoint}) or --from-onnx ({args.from_onnx}), not both",
                             exit_code=2)
    used = [flag for flag, on in (("--task", args.task == "seg"), ("--val", args.val), ("--int8", args.int8),
                                  ("--calib", args.calib)) if on]
    if used:
        raise EdgepilotError(f"{', '.join(used)} apply to checkpoints, not to --from-onnx (a detection ONNX "
                             "is copied, not re-exported)", exit_code=2)
    names = read_names(args.names) if args.names else None
    out = export_from_onnx(args.from_onnx, args.out, names=names, imgsz=args.imgsz, fp16=not args.no_fp16,
                           force=args.force)
    print(summary(out))
    return _engine(args, out)


def _policy(args: argparse.Namespace) -> int:
    """``--task policy``: the deterministic action head as a bundle, parity on every installed CPU backend."""
    from edgepilot.runtime.errors import EdgepilotError

    used = [flag for flag, on in (("--val", args.val), ("--int8", args.int8), ("--calib", args.calib),
                                  ("--names", args.names), ("--imgsz", args.imgsz)) if on]
    if used:
        raise EdgepilotError(f"{', '.join(used)} do not apply to --task policy (an fp32 policy bundle; parity "
                             "runs on observations of its own drive)", exit_code=2)
    from edgepilot.export.policy import export_policy

    out = export_policy(args.checkpoint, args.out, force=args.force, threads=args.threads)
    meta = json.loads((out / "meta.json").read_text())
    inputs = ", ".join(f"{i['name']} {i['shape']} {i['dtype']}" for i in meta["inputs"])
    print(f"wrote {out} (policy, opset {meta['opset']}, inputs {inputs})")
    for backend, par in meta["parity"]["backends"].items():
        if par.get("ran"):
            print(f"  {backend:<9} max abs action error {par['max_abs_error']:.3g} over {par['observations']} "
                  f"observations (tolerance {par['tolerance']:g}): {'ok' if par['passed'] else 'FAILED'}")
        else:
            print(f"  {backend:<9} not run: {par['why']}")
    return _engine(args, out)


def main(args: argparse.Namespace) -> int:
    from edgepilot.runtime.errors import EdgepilotError

    if args.checkpoint == "triton":
        return _triton(args)
    extra = [flag for flag, key in TRITON_FLAGS if getattr(args, key) is not None]
    if args.bundle is not None or extra:
        what = f"{', '.join(extra)} apply" if extra else f"a second argument ({args.bundle}) applies"
        raise EdgepilotError(f"{what} to export triton BUNDLE --out REPO only", exit_code=2)
    if args.from_onnx is not None:
        return _from_onnx(args)  # before export.bundle is imported: no torch needed
    from edgepilot.export.bundle import export_checkpoint
    from edgepilot.export.quantize import METHODS

    if args.checkpoint is None:
        raise EdgepilotError("give a checkpoint to export (CKPT) or a detection ONNX (--from-onnx MODEL.onnx)",
                             exit_code=2)
    if args.task is None:
        raise EdgepilotError(f"--task seg|det|policy is needed to export checkpoint {args.checkpoint}", exit_code=2)
    if args.task == "policy":
        return _policy(args)
    ignored = [flag for flag, on in (("--names", args.names), ("--imgsz", args.imgsz), ("--no-fp16", args.no_fp16))
               if on]
    if ignored:
        raise EdgepilotError(f"{', '.join(ignored)} apply to --from-onnx, not to a checkpoint", exit_code=2)
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
    return _engine(args, out)
