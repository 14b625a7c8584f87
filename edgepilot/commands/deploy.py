"""``edgepilot deploy jetson``: the folder to copy to a Jetson (bundle, engine build script, camera run script)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgepilot.commands.common import int_in

NAME = "deploy"
HELP = "write a folder to copy to a device: deploy jetson BUNDLE --out DIR"
DESCRIPTION = """\
Write what a device needs to run a bundle. One target so far:

  edgepilot deploy jetson BUNDLE --out DIR   a Jetson with a CSI camera (see deploy jetson --help)
"""
JETSON_DESCRIPTION = """\
Write DIR, the folder to copy to a Jetson:

  DIR/model/           the bundle: meta.json and its ONNX graphs (no engines: they are built there)
  DIR/build_engine.sh  builds the TensorRT engine for --precision on the Jetson: edgepilot build
                       where edgepilot and TensorRT's Python import, else trtexec (strongly typed;
                       detects TensorRT 10 or 11 when it runs; --trtexec forces it)
  DIR/run.sh           edgepilot run on the CSI camera (nvarguscamerasrc GStreamer pipeline,
                       appsink drop=true max-buffers=1) with --backend trt --precision P --device cuda:0
  DIR/README.md        JetPack set-up (TensorRT from JetPack, torch and onnxruntime-gpu from
                       NVIDIA's Jetson AI Lab index, OpenCV with GStreamer) and the two steps
  DIR/deploy.json      what was written and from what

Nothing is built or run here. Bad input (not a bundle, the precision's graph
missing from it, a non-empty DIR without --force) is one error line, exit 2,
and leaves nothing behind: DIR is written to a staging folder and renamed.
With --force, only a folder an earlier deploy wrote (it has deploy.json) is
replaced.

examples:
  edgepilot deploy jetson models/seg --out jetson-seg
  edgepilot deploy jetson models/det --out jetson-det --precision int8 --camera-width 1280 \\
      --camera-height 720 --fps 60
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True, parser_class=type(p))
    j = targets.add_parser("jetson", help="a Jetson with a CSI camera", description=JETSON_DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    j.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    j.add_argument("bundle", type=Path, metavar="BUNDLE", help="model bundle folder (meta.json + model.onnx)")
    j.add_argument("--out", type=Path, required=True, metavar="DIR", help="the folder to write (new or empty)")
    j.add_argument("--precision", default="fp16", choices=("fp16", "int8", "fp32"),
                   help="the TensorRT engine run.sh uses; the bundle must hold its graph (default: fp16)")
    j.add_argument("--camera-width", type=int_in(32, 8192), default=1920, metavar="W",
                   help="CSI capture width in pixels (default: 1920)")
    j.add_argument("--camera-height", type=int_in(32, 8192), default=1080, metavar="H",
                   help="CSI capture height in pixels (default: 1080)")
    j.add_argument("--fps", type=int_in(1, 240), default=30, help="CSI capture frame rate (default: 30)")
    j.add_argument("--sensor-id", type=int_in(0, 15), default=0, help="nvarguscamerasrc sensor-id (default: 0)")
    j.add_argument("--workspace-mb", type=int_in(16, 1 << 20), default=1024, metavar="N",
                   help="TensorRT builder workspace limit in MB (default: 1024)")
    j.add_argument("--shape", "--shapes", dest="shape", metavar="HxW",
                   help="model input size for bundles with dynamic H, W, e.g. 256x512")
    j.add_argument("--force", action="store_true", help="replace DIR when an earlier deploy wrote it")


def main(args: argparse.Namespace) -> int:
    from edgepilot.export.jetson import CsiCamera, JetsonDeploy, write_jetson_folder
    from edgepilot.runtime.options import parse_shape

    deploy = JetsonDeploy(args.precision, CsiCamera(args.camera_width, args.camera_height, args.fps, args.sensor_id),
                          args.workspace_mb, parse_shape(args.shape))
    out = write_jetson_folder(args.bundle, args.out, deploy, force=args.force)
    print(f"wrote {out} for a Jetson ({deploy.precision}, CSI camera {deploy.camera.width}x{deploy.camera.height}"
          f" at {deploy.camera.fps} FPS): copy it over, set it up as {out / 'README.md'} says, then run "
          "./build_engine.sh and ./run.sh there")
    return 0
