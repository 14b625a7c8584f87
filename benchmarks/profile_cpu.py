"""Where a CPU frame's time goes, and which onnxruntime session options pay: one JSON, one run.

Part 1, the loop's host steps one at a time (single thread, no engine running beside them), on
the YOLOv8n-class detector of ``bench_cpu_compare.py`` (384x640, letterbox) and on the shipped
segmentation bundle ``models/seg`` (128x256, stretch), for a 360x640 MJPG clip frame:
decode (``cv2.VideoCapture.read``), preprocess (the runtime's ``Preprocessor``: resize or
letterbox, colour order, normalise and layout into a reused buffer), the engine (ort, 2 threads,
for scale), postprocess (the bundle's decoder: YOLO boxes + NMS, or the class-id map),
annotation (the runtime's ``Annotator``) and encode (``cv2.VideoWriter`` mp4v, the ``--out``
sink).

Part 2, onnxruntime session options against the values onnxruntime's CPU performance guide
discusses, engine p50 back to back with 2 intra-op threads, interleaved rounds: graph
optimisation level ALL (our default) vs EXTENDED vs BASIC, thread spinning off, CPU memory
arena off, memory patterns off.

Writes ``benchmarks/results/cpu_profile.json``.
Run: ``PYTHONPATH=. python benchmarks/profile_cpu.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.runtime.outputs import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cpu_profile.json"
COMMAND = "PYTHONPATH=. python benchmarks/profile_cpu.py"
CLIP_HW = (360, 640)


def per_call_ms(fn: Callable[[], Any], n: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(samples))


def host_steps(bundle: Path, clip: Path, n: int, tmp: Path) -> dict[str, float]:
    """Median ms of each step of one frame's path through the loop, one at a time."""
    import cv2

    from edgepilot.runtime.bundle import TensorSpec, load_bundle
    from edgepilot.runtime.draw import Annotator
    from edgepilot.runtime.engines import load_engine
    from edgepilot.runtime.postprocess import make_decoder
    from edgepilot.runtime.preprocess import Preprocessor

    b = load_bundle(bundle)
    cap = cv2.VideoCapture(str(clip))

    def read() -> None:
        ok, _ = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)

    ok, image = cv2.VideoCapture(str(clip)).read()
    assert ok, clip
    pre = Preprocessor(b.inputs[0], b.preprocess)
    spec = b.inputs[0]  # the uint8 tensor ort's preprocess=graph takes: resized, channels ordered, not normalised
    pre_u8 = Preprocessor(TensorSpec(spec.name, spec.shape, "uint8"), b.preprocess)
    engine = load_engine(b, "ort", threads=2)
    tensor, transform = pre(image)
    outputs = engine.infer({b.inputs[0].name: tensor})
    decode = make_decoder(b)
    result = decode(outputs, transform, image.shape[:2])
    annotate = Annotator(b.classes, b.palette)
    writer = cv2.VideoWriter(str(tmp / f"{bundle.name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0,
                             (image.shape[1], image.shape[0]))
    canvas = annotate(image, result)
    out = {"decode_mjpg": per_call_ms(read, n), "preprocess": per_call_ms(lambda: pre(image), n),
           "preprocess_uint8": per_call_ms(lambda: pre_u8(image), n),
           "engine_ort_fp32_2_threads": per_call_ms(lambda: engine.infer({b.inputs[0].name: tensor}), max(10, n // 5)),
           "postprocess": per_call_ms(lambda: decode(outputs, transform, image.shape[:2]), n),
           "annotate": per_call_ms(lambda: annotate(image, result), n),
           "encode_mp4v": per_call_ms(lambda: writer.write(canvas), n)}
    writer.release()
    cap.release()
    host = out["decode_mjpg"] + out["preprocess"] + out["postprocess"]
    out["host_per_frame_without_sinks"] = host
    out["host_share_of_engine_on_2_cores"] = host / (2 * out["engine_ort_fp32_2_threads"])
    return out


SESSION_VARIANTS: dict[str, dict[str, Any]] = {
    "ALL (default)": {}, "EXTENDED": {"level": "ORT_ENABLE_EXTENDED"}, "BASIC": {"level": "ORT_ENABLE_BASIC"},
    "spinning off": {"config": {"session.intra_op.allow_spinning": "0"}},
    "cpu memory arena off": {"arena": False}, "memory patterns off": {"pattern": False},
}


def session_options(models: dict[str, Path], rounds: int, n: int) -> dict[str, dict[str, float]]:
    import onnxruntime as ort

    out: dict[str, dict[str, float]] = {}
    for name, path in models.items():
        sessions = {}
        for variant, v in SESSION_VARIANTS.items():
            so = ort.SessionOptions()
            so.intra_op_num_threads = 2
            so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, v.get("level", "ORT_ENABLE_ALL"))
            for key, value in v.get("config", {}).items():
                so.add_session_config_entry(key, value)
            so.enable_cpu_mem_arena = v.get("arena", True)
            so.enable_mem_pattern = v.get("pattern", True)
            s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            spec = s.get_inputs()[0]
            feeds = {spec.name: np.random.default_rng(0).standard_normal(spec.shape).astype(np.float32)}
            sessions[variant] = (s, feeds)
        p50s: dict[str, list[float]] = {k: [] for k in sessions}
        for _ in range(rounds):
            for variant, (s, feeds) in sessions.items():
                p50s[variant].append(per_call_ms(lambda s=s, feeds=feeds: s.run(None, feeds), n, warmup=3))
        out[name] = {k: float(np.median(v)) for k, v in p50s.items()}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=100, help="calls per host step")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the session-option study")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_cpu_compare

    from edgepilot.runtime.bench.system import cpu_description, library_versions
    from edgepilot.runtime.synthetic import write_pattern_clip

    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="profile_cpu_"))
    clip = write_pattern_clip(tmp / "clip.avi", 30, CLIP_HW, 30.0)
    yolo, _ = bench_cpu_compare.yolo_bundle(tmp / "yolov8n")
    bundles = {"yolov8n": yolo}
    for name in ("seg", "det"):
        if (ROOT / "models" / name / "meta.json").is_file():
            bundles[name] = ROOT / "models" / name
    import cv2

    cv2.setNumThreads(1)  # one host step at a time, on one thread, as the loop's stage threads run them
    steps = {m: host_steps(b, clip, args.iters, tmp) for m, b in bundles.items() if m in ("yolov8n", "seg")}
    cv2.setNumThreads(-1)
    sessions = session_options({m: b / "model.onnx" for m, b in bundles.items()}, args.rounds, 30)
    cpu = cpu_description()
    doc = {"benchmark": "cpu_profile", "command": COMMAND,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "device": {"cpu": cpu["model"], "cpu_class": cpu["class"], "isa": cpu["isa"],
                      "cores": len(os.sched_getaffinity(0)), "load_avg_1m": os.getloadavg()[0]},
           "versions": library_versions(),
           "host_steps_ms": steps,
           "host_steps_note": f"one {CLIP_HW[0]}x{CLIP_HW[1]} MJPG frame, each step alone on one thread (cv2 threads 1); "
                              "host_share_of_engine_on_2_cores = (decode + preprocess + postprocess) / (2 x engine): "
                              "the share of a 2-core frame budget the loop's own work takes when the engine "
                              "uses both cores",
           "ort_session_options_p50_ms": sessions,
           "ort_session_options_note": "engine p50 back to back, 2 intra-op threads, median of interleaved rounds",
           "wall_s": time.perf_counter() - t0}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(doc, indent=2) + "\n")
    print(json.dumps({"host_steps_ms": steps, "ort_session_options_p50_ms": sessions}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
