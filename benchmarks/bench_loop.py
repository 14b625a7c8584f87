"""Loop benchmark on CPU: does the threaded loop cost anything over the bare engine?

Three measurements, each compared with a target, written to ``benchmarks/results/loop_cpu.json``:

(a) throughput: the loop over a generated video file (not paced, no sinks) vs the
    engine alone (``engine.infer`` back to back on one preprocessed input); target
    loop FPS / engine FPS >= 0.9.
(b) latency: the same file paced at 30 FPS (``realtime``); target p50 capture-to-result
    <= engine p50 + 3 ms, and p99 <= 2 x p50. "Engine p50" is the engine alone paced
    at the same 30 Hz (``runtime.bench.measure.time_engine(rate_hz=30)``): an engine
    that idles between frames runs slower per call than one timed back to back (on
    this machine ~11.5 vs ~9 ms), and that is the CPU, not the loop. The strict
    comparison with the back-to-back p50 is recorded too, marked informational, as
    is the loop's own overhead (capture-to-result p50 minus the in-loop infer p50).
(c) memory: a 10,000-frame run (synthetic frames through file semantics, so none is
    dropped) on the small tiny bundle; target VmRSS growth < 50 MB.

Bundle choice: ``export.tiny.segmentation_bundle(hw=(256, 512), width=48)`` with the
argmax in the graph (``--width`` to change). On the idle 2-core dev machine its engine
time (~10 ms at 1 thread; width 32 is ~5 ms, 64 ~15 ms) is ~15x the host
preprocessing (~0.6 ms for 360x640 -> 256x512) and the decoder is a reshape, so the
ratio in (a) measures the loop rather than pre/post cost; and it stays well inside
the 33 ms frame period of (b) even when other jobs slow the CPU 2x (at width 64 a
loaded machine pushed it to ~30 ms and frames queued behind each other). ORT runs
with ``--threads`` intra-op threads (default 1) in BOTH the engine-only and the loop
measurements, which leaves the second core to video decoding in the capture thread.
(c) uses the default
128x256 width-16 bundle so 10,000 frames take seconds, not minutes.

Run: ``PYTHONPATH=. python benchmarks/bench_loop.py``
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgepilot.runtime.outputs import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "loop_cpu.json"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def engine_only(engine: Any, processor: Any, image: np.ndarray, n: int) -> dict[str, float]:
    """Back-to-back ``engine.infer`` on one preprocessed input: FPS and per-call latency in ms."""
    tensor, _ = processor.pre(image)
    feeds = {processor.spec.name: tensor.copy()}
    engine.warmup(10)
    times = np.empty(n)
    t_start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        engine.infer(feeds)
        times[i] = time.perf_counter() - t0
    wall = time.perf_counter() - t_start
    return {"fps": n / wall, "p50_ms": float(np.percentile(times, 50) * 1e3),
            "p99_ms": float(np.percentile(times, 99) * 1e3)}


def target(name: str, value: float, limit: float, op: str) -> dict[str, Any]:
    ok = value >= limit if op == ">=" else value <= limit
    print(f"{name:<40} {value:10.3f} {op} {limit:10.3f}  {'PASS' if ok else 'FAIL'}")
    return {"name": name, "measured": value, "target": f"{op} {limit:.3f}", "pass": bool(ok)}


def memory_run(bundle: Path, frames: int, threads: int) -> dict[str, float]:
    """RSS growth over a ``frames``-long run after a 500-frame warm-up run, in MB."""
    from edgepilot.runtime.engines import load_engine
    from edgepilot.runtime.pipeline import run_loop
    from edgepilot.runtime.sources import Source, SyntheticCapture

    engine = load_engine(bundle, "ort", threads=threads)
    processor = engine.make_processor()

    def source(n: int) -> Source:  # file semantics: every frame is processed, none dropped
        return Source(lambda: SyntheticCapture(640, 360, 1e6), description="synthetic 640x360", live=False, limit=n)

    run_loop(source(500), processor)
    rss0, peak = rss_mb(), [0.0]

    def sample(result: Any) -> None:
        if result.frame.id % 500 == 0:
            peak[0] = max(peak[0], rss_mb())

    report, _ = run_loop(source(frames), processor, on_result=sample)
    return {"frames": report.frames, "rss_before_mb": rss0, "rss_after_mb": rss_mb(),
            "rss_peak_mb": max(peak[0], rss_mb()), "growth_mb": max(peak[0], rss_mb()) - rss0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads, same for engine and loop")
    parser.add_argument("--width", type=int, default=48, help="tiny bundle channel width (engine cost)")
    parser.add_argument("--frames", type=int, default=300, help="frames in the generated clip")
    parser.add_argument("--memory-frames", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import onnxruntime

    from edgepilot.export import tiny
    from edgepilot.runtime.bench.measure import time_engine
    from edgepilot.runtime.engines import load_engine
    from edgepilot.runtime.pipeline import run_loop
    from edgepilot.runtime.sources import open_source, write_pattern_clip

    tmp = Path(tempfile.mkdtemp(prefix="bench_loop_"))
    bundle = tiny.segmentation_bundle(tmp / "seg", hw=(256, 512), width=args.width)
    clip = write_pattern_clip(tmp / "clip.avi", args.frames, (360, 640), 30.0)  # MJPG: decode cost like a 360p video
    engine = load_engine(bundle, "ort", threads=args.threads)
    processor = engine.make_processor()
    with open_source(str(clip)) as src:
        first = src.read()
    assert first is not None
    eng = engine_only(engine, processor, first.image, args.frames)
    print(f"engine only: {eng['fps']:.1f} FPS, p50 {eng['p50_ms']:.2f} ms")

    loop, _ = run_loop(open_source(str(clip)), processor, engine_info=engine.describe())
    print(loop.table())
    eng_paced = time_engine(engine, iters=args.frames, repeats=1, warmup=5, rate_hz=30.0).samples_ms
    eng_paced_p50 = float(np.percentile(eng_paced, 50))
    print(f"engine only, paced at 30 Hz: p50 {eng_paced_p50:.2f} ms")
    paced, _ = run_loop(open_source(str(clip), realtime=True), processor, engine_info=engine.describe())
    print(paced.table())
    mem = memory_run(tiny.segmentation_bundle(tmp / "small"), args.memory_frames, args.threads)
    print(f"memory: {mem}")

    p50, p99 = paced.capture_to_result_ms["p50"], paced.capture_to_result_ms["p99"]
    targets = [
        target("(a) loop FPS / engine FPS", loop.fps / eng["fps"], 0.9, ">="),
        target("(b) paced p50 capture->result ms vs paced engine p50 + 3", p50, eng_paced_p50 + 3.0, "<="),
        target("(b) paced p99 / p50", p99 / p50, 2.0, "<="),
        target("(c) RSS growth MB over the long run", mem["growth_mb"], 50.0, "<="),
    ]
    informational = [
        target("(b, strict) paced p50 ms vs back-to-back engine p50 + 3", p50, eng["p50_ms"] + 3.0, "<="),
        target("(b) loop overhead ms: capture->result p50 - in-loop infer p50",
               p50 - paced.stages_ms["infer"]["p50"], 3.0, "<="),
    ]
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    doc = {
        "benchmark": "loop_cpu", "command": "PYTHONPATH=. python benchmarks/bench_loop.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": {"cpu": cpu, "cores": len(__import__("os").sched_getaffinity(0)),
                   "load_avg_1m": __import__("os").getloadavg()[0]},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "setup": {"bundle": f"tiny.segmentation_bundle(hw=(256, 512), width={args.width}), argmax in graph",
                  "clip": f"{args.frames} frames 360x640 MJPG @30 FPS", "ort_threads": args.threads,
                  "memory_bundle": "tiny.segmentation_bundle() 128x256 width 16, 640x360 synthetic frames"},
        "engine_only": eng,
        "engine_only_paced_30hz": {"p50_ms": eng_paced_p50, "p99_ms": float(np.percentile(eng_paced, 99))},
        "loop_file": json.loads(loop.to_json()),
        "loop_realtime_30fps": json.loads(paced.to_json()),
        "memory": mem,
        "targets": targets,
        "informational": informational,
        "all_pass": all(t["pass"] for t in targets),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
