"""``edgepilot run``: a model on a video, camera, stream or synthetic source, with a latency report."""

from __future__ import annotations

import argparse
import contextlib
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any

from edgepilot.commands.common import add_engine_arguments, float_in, int_in
from edgepilot.runtime.source_timeouts import (
    DEFAULT_OPEN_TIMEOUT_S,
    DEFAULT_READ_TIMEOUT_S,
    Backoff,
    give_up_after_s,
)

# Per-backend defaults for a file read as fast as it decodes (see DESCRIPTION).
FILE_DEFAULTS = {"openvino": {"hint": "throughput"}, "ort": {"hint": "throughput"}}

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
  edgepilot run clip.mp4 --model yolov8n.onnx          # a bare Ultralytics ONNX, no meta.json needed

Defaults: --backend auto (on a CPU the installed backend measured fastest for the bundle).
A file without --realtime is processed for throughput: the openvino and ort
backends then default to hint=throughput (on a CPU, several frames in flight at
once, overlapping decode and preprocessing: OpenVINO's streams, or one
onnxruntime run per core, the frame handed over as uint8 and normalised by the
model's first ops: preprocess=graph); live sources and --realtime keep
hint=latency. Give --engine-opt hint=... (or preprocess=host) to choose yourself.
The report's engine section records backend, threads, streams, hint and
preprocess; its extra.cpu_ms_per_frame the CPU time each loop thread spent a frame.

Exit codes: 0 done, 1 runtime failure (camera died, NaN outputs), 2 bad input, 130 Ctrl-C.
The report is written even when the run fails or is interrupted.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="video path, camera index, URL, GStreamer pipeline "
                   "or synthetic:WxH@FPS[:N] (see above)")
    p.add_argument("--model", required=True, metavar="BUNDLE",
                   help="model bundle folder (meta.json + model.onnx), or a YOLOv8/YOLO11 detection .onnx "
                        "exported by Ultralytics (read from its metadata)")
    add_engine_arguments(p, backend="auto")
    p.add_argument("--out", metavar="VIDEO", help="write annotated frames to a video (.mp4 mp4v, .avi MJPG)")
    p.add_argument("--jsonl", metavar="FILE", help="write one JSON record per frame (timings and outputs)")
    p.add_argument("--report", metavar="FILE", help="write the latency report as JSON")
    p.add_argument("--show", action="store_true", help="show annotated frames in a window (needs a display)")
    p.add_argument("--realtime", action="store_true",
                   help="pace a video file at its native FPS, dropping frames the loop cannot keep up with")
    p.add_argument("--max-frames", type=int_in(1, 2**62), metavar="N", help="stop after N results")
    g = p.add_argument_group("live sources (cameras, streams, pipelines)", _live_help())
    g.add_argument("--open-timeout", type=float_in(0, 3600, low_open=True), default=DEFAULT_OPEN_TIMEOUT_S,
                   metavar="S", help=f"give up opening (or reopening) after S seconds (default: {DEFAULT_OPEN_TIMEOUT_S:g})")
    g.add_argument("--read-timeout", type=float_in(0, 3600, low_open=True), default=DEFAULT_READ_TIMEOUT_S,
                   metavar="S", help=f"a read that has not returned after S seconds is a stall (default: "
                                     f"{DEFAULT_READ_TIMEOUT_S:g})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (or summary line) on stderr")


def _live_help() -> str:
    backoff = Backoff()
    return textwrap.fill(f"A live source that stalls or fails is reopened up to {backoff.attempts} times with backoff "
            f"{backoff.delay_s(0):g}..{backoff.delay_s(backoff.attempts - 1):g} s, then the run fails (exit 1); "
            f"with the defaults it gives up at most {give_up_after_s():.0f} s after its last frame. "
            "Ctrl-C ends the run within a second, even during a stall.", width=78)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What ``edgepilot run`` does, as a value: built from the CLI or by another command (demo)."""

    source: str
    model: str
    backend: str = "auto"
    precision: str = "fp32"
    device: str = "cpu"
    shape: tuple[int, int] | None = None
    engine_options: dict[str, Any] = field(default_factory=dict)
    out: str | None = None
    jsonl: str | None = None
    report: str | None = None
    show: bool = False
    realtime: bool = False
    max_frames: int | None = None
    progress: bool = True
    open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S


def main(args: argparse.Namespace) -> int:
    return run(RunOptions(
        source=args.source, model=args.model, backend=args.backend, precision=args.precision,
        device=args.device, shape=args.shape, engine_options=dict(args.engine_opt), out=args.out,
        jsonl=args.jsonl, report=args.report, show=args.show, realtime=args.realtime,
        max_frames=args.max_frames, progress=not args.no_progress, open_timeout_s=args.open_timeout,
        read_timeout_s=args.read_timeout))


def run(opts: RunOptions) -> int:
    """Run a bundle on a source; print the latency table; write the report even on failure.

    Returns the exit code (0 done, 130 interrupted); raises EdgepilotError for the rest.
    """
    from edgepilot.runtime.bundle import load_bundle
    from edgepilot.runtime.bundle_check import IMAGE_TASKS
    from edgepilot.runtime.draw import Annotator
    from edgepilot.runtime.engines import load_engine
    from edgepilot.runtime.errors import BundleError, SourceError
    from edgepilot.runtime.outputs import check_outputs, write_text_atomic
    from edgepilot.runtime.pipeline import run_loop
    from edgepilot.runtime.processor import dry_run
    from edgepilot.runtime.sinks import video_fourcc
    from edgepilot.runtime.sources import every_frame, open_source

    check_outputs({"--out": opts.out, "--jsonl": opts.jsonl, "--report": opts.report},
                  inputs={"SOURCE": opts.source})
    if opts.out:
        video_fourcc(opts.out)
    bundle = load_bundle(opts.model)
    if bundle.task not in IMAGE_TASKS:
        raise BundleError(
            f"{opts.model} is a {bundle.task} bundle: it acts on the driving agent's observations, not on "
            "camera frames, so `edgepilot run` cannot feed it; the driving agent runs it (`edgepilot drive "
            f"--policy`, not in this release yet); time it with `edgepilot bench --model {opts.model}`")
    with contextlib.ExitStack() as stack:
        engine = stack.enter_context(load_engine(bundle, opts.backend, opts.precision, opts.device, opts.shape,
                                                 defaults=FILE_DEFAULTS if every_frame(opts.source, opts.realtime)
                                                 else None, **opts.engine_options))
        processor = engine.make_processor()
        engine.warmup(3)
        dry_run(processor)
        source = stack.enter_context(open_source(opts.source, realtime=opts.realtime,
                                                 open_timeout_s=opts.open_timeout_s,
                                                 read_timeout_s=opts.read_timeout_s))
        sinks = _open_sinks(opts, bundle.classes, source.fps, stack)
        bar = _progress(source, opts, stack)
        report, error = run_loop(
            source, processor, sinks=sinks, annotator=Annotator(bundle.classes, bundle.palette),
            engine_info=engine.describe(), max_frames=opts.max_frames,
            on_result=(lambda _r: bar.update()) if bar is not None else None)
    print(report.table())
    if opts.report:
        write_text_atomic(opts.report, report.to_json() + "\n")
    if error is not None:
        raise error
    if report.stopped == "interrupted":
        print("interrupted", file=sys.stderr)
        return 130
    if report.frames == 0 and not source.live:
        raise SourceError(f"{opts.source}: no frame could be decoded; is it a video?")
    return 0


def _open_sinks(opts: RunOptions, classes: list[str], fps: float, stack: contextlib.ExitStack) -> list[Any]:
    """The sinks asked for; each is closed by the stack even if a later one fails to open."""
    from edgepilot.runtime.sinks import JsonlSink, VideoSink, WindowSink

    sinks: list[Any] = []

    def keep(sink: Any) -> None:
        sinks.append(sink)
        stack.callback(sink.close)

    if opts.out:
        keep(VideoSink(opts.out, fps))
    if opts.jsonl:
        keep(JsonlSink(opts.jsonl, classes))
    if opts.show:
        keep(WindowSink())
    return sinks


def _progress(source: Any, opts: RunOptions, stack: contextlib.ExitStack) -> Any:
    """Progress on stderr for files with a known frame count (runtime.progress), else None."""
    if source.live or source.frame_count is None or not opts.progress:
        return None
    from edgepilot.runtime.progress import progress

    total = source.frame_count if opts.max_frames is None else min(source.frame_count, opts.max_frames)
    bar = progress(total, "run", "frame")
    stack.callback(bar.close)
    return bar
