"""``edgepilot run``: a model on a video, camera, stream or synthetic source, with a latency report."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

NAME = "run"
HELP = "run a model bundle on a video file, camera, stream or synthetic source"
DESCRIPTION = """\
Run a model bundle on a source; capture, inference and output overlap in their
own threads. Prints a latency table (p50/p90/p99/max per stage and capture to
result / output, FPS, frames dropped by the source).

SOURCE is one of:
  video.mp4                      a file, processed in full (or paced with --realtime)
  0                              a camera index (live: only the newest frame is kept)
  rtsp://host/stream, http(s)://  a network stream (live; RTSP over TCP by default)
  "v4l2src ! videoconvert ! appsink"  a GStreamer pipeline (needs OpenCV with GStreamer)
  synthetic:640x480@30[:300]     a generated moving pattern at 30 FPS (300 frames or endless)

examples:
  edgepilot run clip.mp4 --model models/seg --out annotated.mp4 --jsonl results.jsonl
  edgepilot run 0 --model models/det --backend trt --precision fp16 --device cuda:0 --show
  edgepilot run synthetic:640x480@30:300 --model models/seg --backend null --engine-opt delay_ms=5
  edgepilot run clip.mp4 --model models/seg --realtime --report report.json

Exit codes: 0 done, 1 runtime failure (camera died, NaN outputs), 2 bad input, 130 Ctrl-C.
The report is written even when the run fails or is interrupted.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="video path, camera index, URL, GStreamer pipeline "
                   "or synthetic:WxH@FPS[:N] (see above)")
    p.add_argument("--model", required=True, metavar="BUNDLE", help="model bundle folder (meta.json + model.onnx)")
    p.add_argument("--backend", default="ort", choices=("ort", "null", "torch", "trt"),
                   help="inference backend (default: ort; null runs no model, for testing the loop)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"), help="default: fp32")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--shape", "--shapes", dest="shape", metavar="HxW", help="model input size for bundles with dynamic H, W, e.g. 256x512")
    p.add_argument("--out", metavar="VIDEO", help="write annotated frames to a video (.mp4 mp4v, .avi MJPG)")
    p.add_argument("--jsonl", metavar="FILE", help="write one JSON record per frame (timings and outputs)")
    p.add_argument("--report", metavar="FILE", help="write the latency report as JSON")
    p.add_argument("--show", action="store_true", help="show annotated frames in a window (needs a display)")
    p.add_argument("--realtime", action="store_true",
                   help="pace a video file at its native FPS, dropping frames the loop cannot keep up with")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N results")
    p.add_argument("--engine-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, repeatable, e.g. --engine-opt threads=2 --engine-opt delay_ms=5")


def main(args: argparse.Namespace) -> int:
    from edgepilot.runtime.bundle import load_bundle
    from edgepilot.runtime.draw import Annotator
    from edgepilot.runtime.engines import load_engine
    from edgepilot.runtime.errors import SourceError
    from edgepilot.runtime.options import parse_engine_opts, parse_shape
    from edgepilot.runtime.pipeline import run_loop
    from edgepilot.runtime.sources import open_source

    bundle = load_bundle(args.model)
    with contextlib.ExitStack() as stack:
        engine = stack.enter_context(load_engine(bundle, args.backend, args.precision, args.device,
                                                 parse_shape(args.shape), **parse_engine_opts(args.engine_opt)))
        processor = engine.make_processor()
        engine.warmup(3)
        source = stack.enter_context(open_source(args.source, realtime=args.realtime))
        sinks = _open_sinks(args, bundle.classes, source.fps, stack)
        progress = _progress(source, args.max_frames, stack)
        report, error = run_loop(
            source, processor, sinks=sinks, annotator=Annotator(bundle.classes, bundle.palette),
            engine_info=engine.describe(), max_frames=args.max_frames,
            on_result=(lambda _r: progress.update()) if progress is not None else None)
    print(report.table())
    if args.report:
        Path(args.report).write_text(report.to_json() + "\n", encoding="utf-8")
    if error is not None:
        raise error
    if report.stopped == "interrupted":
        print("interrupted", file=sys.stderr)
        return 130
    if report.frames == 0 and not source.live:
        raise SourceError(f"{args.source}: no frame could be decoded; is it a video?")
    return 0


def _open_sinks(args: argparse.Namespace, classes: list[str], fps: float,
                stack: contextlib.ExitStack) -> list[Any]:
    """The sinks asked for; each is closed by the stack even if a later one fails to open."""
    from edgepilot.runtime.sinks import JsonlSink, VideoSink, WindowSink

    wanted = [(args.out, lambda: VideoSink(args.out, fps)), (args.jsonl, lambda: JsonlSink(args.jsonl, classes)),
              (args.show, WindowSink)]
    sinks: list[Any] = []
    for asked, make in wanted:
        if asked:
            sinks.append(make())
            stack.callback(sinks[-1].close)
    return sinks


def _progress(source: Any, max_frames: int | None, stack: contextlib.ExitStack) -> Any:
    """A tqdm bar on stderr for files with a known frame count, else None."""
    if source.live or source.frame_count is None:
        return None
    from tqdm import tqdm

    total = source.frame_count if max_frames is None else min(source.frame_count, max_frames)
    return stack.enter_context(tqdm(total=total, unit="frame", leave=False, file=sys.stderr))
