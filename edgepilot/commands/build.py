"""``edgepilot build``: a bundle's TensorRT engines, built into its fingerprinted engine cache."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgepilot.commands.common import int_in
from edgepilot.runtime.bundle import PRECISIONS

NAME = "build"
HELP = "build a bundle's TensorRT engines (strongly typed, per precision) into its engine cache"
NO_TENSORRT = 3  # exit code: TensorRT is not importable here, trtexec.sh was written instead
DESCRIPTION = f"""\
Build a model bundle's TensorRT engine for each precision asked, on this
machine's GPU, into the bundle's engine cache (BUNDLE/engines/<key>.engine with
its fingerprint .json): the engine `edgepilot run --backend trt` then loads
without building. An engine that is already there and up to date is kept.

The network is strongly typed and its precision comes from the graph: fp32
builds model.onnx, fp16 model.fp16.onnx (converted from model.onnx when
missing), int8 the Q/DQ model.int8.onnx. No precision flag and no calibrator
are set, so TensorRT 10 and 11 build alike. --precision all (the default)
builds fp32, fp16 and, where the bundle has a Q/DQ graph, int8.

Where TensorRT is not installed nothing is built: the equivalent trtexec
commands are written to BUNDLE/engines/trtexec/trtexec.sh (it detects
TensorRT 10 or 11 when it runs), a one-line note says so, and the exit code
is {NO_TENSORRT}, so a script that goes on to use the engine stops. Run
trtexec.sh on the machine with the GPU, or install TensorRT there
(pip install 'edgepilot[trt]'; on a Jetson it comes with JetPack).

Exit codes: 0 engines built or up to date; {NO_TENSORRT} no TensorRT here (trtexec.sh
written instead); 2 bad input (not a bundle, no int8 graph, no CUDA device,
a dynamic bundle without --shape); 1 the TensorRT build failed.

examples:
  edgepilot build models/seg --precision fp16
  edgepilot build models/det --workspace-mb 2048 --timing-cache ~/.cache/edgepilot/orin.timing
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="model bundle folder (meta.json + model.onnx)")
    p.add_argument("--precision", default="all", choices=(*PRECISIONS, "all"),
                   help="the engine to build, or all the bundle has graphs for (default: all)")
    p.add_argument("--workspace-mb", type=int_in(16, 1 << 20), default=1024, metavar="N",
                   help="TensorRT builder workspace limit in MB (default: 1024)")
    p.add_argument("--timing-cache", type=Path, metavar="FILE",
                   help="timing cache file to read and update, which speeds up rebuilds (default: "
                        "BUNDLE/engines/timing.cache; in trtexec.sh: engines/trtexec/timing.cache)")
    p.add_argument("--device", default="cuda", help="the CUDA device to build for: cuda or cuda:N (default: cuda)")
    p.add_argument("--shape", "--shapes", dest="shape", metavar="HxW",
                   help="model input size for bundles with dynamic H, W, e.g. 256x512")


def run_build(bundle_path: str | Path, precision: str = "all", *, workspace_mb: int = 1024,
              timing_cache: Path | None = None, device: str = "cuda", shape: str | None = None) -> int:
    """Build (or write trtexec.sh for) a bundle's engines and print the outcome; the exit code.

    Also what ``edgepilot export --engine`` calls once the bundle is written.
    """
    from edgepilot.export.engine import BuildOptions, build_or_script
    from edgepilot.runtime.bundle import load_bundle
    from edgepilot.runtime.engines.base import parse_device
    from edgepilot.runtime.options import parse_shape

    options = BuildOptions(device=str(parse_device(device)), hw=parse_shape(shape), workspace_mb=workspace_mb,
                           timing_cache=timing_cache)
    result = build_or_script(load_bundle(bundle_path), precision, options)
    if result.script is not None:
        print(f"TensorRT is not installed here (import tensorrt: {result.missing}), so no engine was built: wrote the "
              f"trtexec commands for {', '.join(result.precisions)} to {result.script}; run it on the GPU "
              "machine, or pip install 'edgepilot[trt]'", file=sys.stderr)
        return NO_TENSORRT
    for engine in result.engines:
        state = "built" if engine.built else "up to date, kept"
        print(f"  {engine.fingerprint.precision:<5} {engine.path} ({state}; TensorRT "
              f"{engine.fingerprint.tensorrt_version}, {engine.fingerprint.gpu_name})")
    return 0


def main(args: argparse.Namespace) -> int:
    return run_build(args.bundle, args.precision, workspace_mb=args.workspace_mb, timing_cache=args.timing_cache,
                     device=args.device, shape=args.shape)
