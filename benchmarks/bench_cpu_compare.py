"""CPU backends compared on the same models in one run: ort vs openvino, fp32 / fp16 / int8, and a peer loop.

Models (nothing downloaded):

- ``yolov8n``: a YOLOv8n-class detector written below in plain torch (C2f blocks,
  SPPF, PAN neck, decoupled DFL head; width 0.25, depth 0.33; 80 classes; random
  weights) at 384x640, exported to an ONNX opset 17 bundle whose output is the
  YOLO layout ``[1, 84, 5040]`` (letterbox input, so every backend preprocesses
  on the host).
- ``tiny-seg``: the demo's fallback ``export.tiny.segmentation_bundle(hw=(256, 512),
  width=16)`` (stretch resize, so openvino can also preprocess in its graph).
- ``seg`` and ``det``: the shipped, trained bundles ``models/seg`` and
  ``models/det`` (copied, so no engine cache of theirs is touched), with their
  own INT8 files.

INT8 graphs of the first two come from the export's own quantiser
(``export.quantize.quantize_tensors``: onnxruntime's ``quant_pre_process``, then
``quantize_static``, QDQ format, per-channel symmetric int8 weights, MinMax) on
frames of the generated clip preprocessed like the loop does, in the two layouts
``edgepilot export --int8`` writes: ``model.int8.onnx`` (symmetric int8
activations; openvino runs it) and ``model.int8.cpu.onnx`` (uint8 asymmetric
activations, the convolutions over the image's colour planes in float; ort's CPU
provider runs it). FP16: ort runs its
converted ``model.fp16.onnx``; openvino its FP16-compressed IR in the CPU's 16-bit
arithmetic (bf16 on a CPU with BF16 and no FP16, see
``runtime/engines/ops_openvino.py``).

Per (model, backend, precision) row, engines loaded side by side and measured in
interleaved rounds (so machine drift hits every row alike):

- engine-only latency: ``runtime.bench.measure.time_engine`` back to back, p50/p99
  and the share of calls the OS preempted;
- per-frame processor latency: ``processor(frame)`` on one clip frame, synchronous
  (preprocess + infer + decode in one thread);
- loop FPS: ``runtime.pipeline.run_loop`` (what ``edgepilot run`` runs) over the
  same generated 90-frame MJPG clip (file semantics: every frame processed), with the
  engine's default processor. The engine-only FPS it is held against is 1000 /
  engine p50, or for rows that overlap requests the engine's own throughput with
  as many requests in flight as the loop keeps (``AsyncInferQueue``,
  ``engine_async_fps``). ``loop_over_engine_paired`` (the figure ``targets``
  uses) pairs each loop run with the engine-only FPS measured just before and
  just after it, and takes the median over rounds: this shared machine drifts
  by up to 1.5x within a minute (``engine_round_p50s_ms``), so an engine timed
  seconds earlier is not the same engine. ``loop_over_engine`` is the unpaired
  median loop FPS over the engine-only FPS of all rounds. Engine-vs-engine
  ratios in ``targets`` are paired the same way (the two rows' p50s in the same
  round, median over rounds); ``*_of_medians`` keeps the unpaired ratio.

Variants: openvino in-graph preprocessing (``preprocess=graph``, tiny-seg);
overlapping requests (``overlap``: one stream; ``hint=throughput``: OpenVINO's
streams, overlap on: what ``edgepilot run`` uses on a file) on yolov8n; ort with
``spin=false`` on yolov8n; ort's ``hint=throughput`` on yolov8n (each precision):
``--threads`` runs in flight, one intra-op thread each, as ``edgepilot run``
does on a file, with the frame normalised in the graph (``preprocess=auto``'s
choice there) and, as ``throughput+overlap,preprocess=host``, on the host.

Each loop run also records its report's ``cpu_ms_per_frame``: each loop
thread's CPU time per frame and the process's (``runtime/pipeline.py``).

The peer (``peer-openvino``): the loop a user writes by hand around OpenVINO, as
Ultralytics' ``predict`` runs its OpenVINO export: ``core.compile_model`` with
OpenVINO's defaults and the LATENCY hint (so bf16 on a BF16 CPU), then per frame
in series ``cv2.VideoCapture.read``, letterbox, ``cv2.dnn.blobFromImage``,
``infer``, YOLO decoding with ``cv2.dnn.NMSBoxes``. Same clip, same rounds.

``targets`` at the end of the JSON holds the ratios issue 8 asks for, computed
from the rows. Every backend gets the same ``--threads`` (ort intra-op threads,
openvino INFERENCE_NUM_THREADS). Writes ``benchmarks/results/cpu_compare.json``.

Run: ``PYTHONPATH=. python benchmarks/bench_cpu_compare.py`` (about 6 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.runtime.outputs import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "cpu_compare.json"
MODELS = Path(__file__).resolve().parents[1] / "models"
COMMAND = "PYTHONPATH=. python benchmarks/bench_cpu_compare.py"
BACKENDS = ("ort", "openvino")
PRECISIONS = ("fp32", "fp16", "int8")
YOLO_HW = (384, 640)
CLIP_HW = (360, 640)


def yolov8n(nc: int = 80) -> Any:
    """A YOLOv8n-layout detector (torch.nn.Module): image [1, 3, H, W] -> [1, 4 + nc, N] (cx, cy, w, h, scores)."""
    import torch
    from torch import nn

    class Conv(nn.Sequential):
        def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1) -> None:
            super().__init__(nn.Conv2d(c1, c2, k, s, k // 2, bias=False), nn.BatchNorm2d(c2), nn.SiLU())

    class Bottleneck(nn.Module):
        def __init__(self, c: int, shortcut: bool) -> None:
            super().__init__()
            self.cv1, self.cv2, self.add = Conv(c, c, 3), Conv(c, c, 3), shortcut

        def forward(self, x: Any) -> Any:
            y = self.cv2(self.cv1(x))
            return x + y if self.add else y

    class C2f(nn.Module):
        def __init__(self, c1: int, c2: int, n: int, shortcut: bool) -> None:
            super().__init__()
            self.c = c2 // 2
            self.cv1, self.cv2 = Conv(c1, 2 * self.c), Conv((2 + n) * self.c, c2)
            self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

        def forward(self, x: Any) -> Any:
            ys = list(self.cv1(x).chunk(2, 1))  # 2 x [1, c, h, w]
            ys += [m(ys[-1]) for m in self.m]
            return self.cv2(torch.cat(ys, 1))

    class SPPF(nn.Module):
        def __init__(self, c1: int, c2: int) -> None:
            super().__init__()
            self.cv1, self.cv2, self.pool = Conv(c1, c1 // 2), Conv(c1 * 2, c2), nn.MaxPool2d(5, 1, 2)

        def forward(self, x: Any) -> Any:
            y = [self.cv1(x)]
            y += [self.pool(y[-1]) for _ in range(3)]
            return self.cv2(torch.cat(y, 1))

    class Detect(nn.Module):
        """Decoupled head: per level a box branch (4 x 16 DFL bins) and a class branch; decoded in graph."""

        def __init__(self, ch: tuple[int, ...], hw: tuple[int, int]) -> None:
            super().__init__()
            self.reg, self.strides = 16, (8, 16, 32)
            c2, c3 = max(16, ch[0] // 4, 4 * self.reg), max(ch[0], min(nc, 100))
            self.box = nn.ModuleList(nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * self.reg, 1))
                                     for c in ch)
            self.cls = nn.ModuleList(nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for c in ch)
            for seq, s in zip(self.cls, self.strides, strict=True):  # YOLOv8's bias init: few confident cells
                nn.init.constant_(seq[-1].bias, math.log(5 / nc / (640 / s) ** 2))
            anchors, strides = [], []
            for s in self.strides:
                h, w = hw[0] // s, hw[1] // s
                yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
                anchors.append(torch.stack([xx, yy], 0).reshape(2, -1))
                strides.append(torch.full((1, h * w), float(s)))
            self.register_buffer("anchors", torch.cat(anchors, 1))  # [2, N]
            self.register_buffer("stride", torch.cat(strides, 1))  # [1, N]
            self.register_buffer("bins", torch.arange(self.reg, dtype=torch.float32).view(1, 1, self.reg, 1))

        def forward(self, feats: list[Any]) -> Any:
            box = torch.cat([b(f).flatten(2) for b, f in zip(self.box, feats, strict=True)], 2)  # [1, 64, N]
            cls = torch.cat([c(f).flatten(2) for c, f in zip(self.cls, feats, strict=True)], 2)  # [1, nc, N]
            dist = (box.view(1, 4, self.reg, -1).softmax(2) * self.bins).sum(2)  # DFL: [1, 4, N] l, t, r, b
            lt, rb = dist[:, :2], dist[:, 2:]
            xy = (self.anchors + (rb - lt) / 2) * self.stride
            wh = (lt + rb) * self.stride
            return torch.cat([xy, wh, cls.sigmoid()], 1)  # [1, 4 + nc, N]

    class YoloV8n(nn.Module):
        def __init__(self, hw: tuple[int, int]) -> None:
            super().__init__()
            self.b1 = nn.Sequential(Conv(3, 16, 3, 2), Conv(16, 32, 3, 2), C2f(32, 32, 1, True),
                                    Conv(32, 64, 3, 2), C2f(64, 64, 2, True))  # P3/8
            self.b2 = nn.Sequential(Conv(64, 128, 3, 2), C2f(128, 128, 2, True))  # P4/16
            self.b3 = nn.Sequential(Conv(128, 256, 3, 2), C2f(256, 256, 1, True), SPPF(256, 256))  # P5/32
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.n1, self.n2 = C2f(384, 128, 1, False), C2f(192, 64, 1, False)
            self.d1, self.n3 = Conv(64, 64, 3, 2), C2f(192, 128, 1, False)
            self.d2, self.n4 = Conv(128, 128, 3, 2), C2f(384, 256, 1, False)
            self.head = Detect((64, 128, 256), hw)

        def forward(self, x: Any) -> Any:
            p3 = self.b1(x)
            p4 = self.b2(p3)
            p5 = self.b3(p4)
            t4 = self.n1(torch.cat([self.up(p5), p4], 1))  # [1, 128, H/16, W/16]
            o3 = self.n2(torch.cat([self.up(t4), p3], 1))  # [1, 64, H/8, W/8]
            o4 = self.n3(torch.cat([self.d1(o3), t4], 1))  # [1, 128, H/16, W/16]
            o5 = self.n4(torch.cat([self.d2(o4), p5], 1))  # [1, 256, H/32, W/32]
            return self.head([o3, o4, o5])

    return YoloV8n(YOLO_HW)


def conv_gflops(model: Any) -> float:
    """2 x multiply-adds of every Conv2d at ``YOLO_HW`` (how YOLOv8's 8.7 GFLOPs is counted), in GFLOPs."""
    import torch

    total = [0]

    def hook(m: Any, _inp: Any, out: Any) -> None:
        total[0] += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        model(torch.zeros(1, 3, *YOLO_HW))
    for h in handles:
        h.remove()
    return total[0] / 1e9


def yolo_bundle(folder: Path) -> tuple[Path, dict[str, Any]]:
    import torch

    from edgepilot.export.torch_export import export_bundle

    torch.manual_seed(0)
    model = yolov8n().eval()
    gflops = conv_gflops(model)
    # every layer is a convolution over a map proportional to the input: FLOPs scale with its area
    info = {"params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            f"gflops_{YOLO_HW[0]}x{YOLO_HW[1]}": gflops, "gflops_640x640": gflops * 640 * 640 / (YOLO_HW[0] * YOLO_HW[1])}
    meta = {"name": "yolov8n-class-random", "task": "detection", "outputs": [{"name": "output0"}],
            "preprocess": {"layout": "NCHW", "color": "RGB", "resize": "letterbox", "scale": 1 / 255,
                           "mean": [0, 0, 0], "std": [1, 1, 1], "pad_value": 114},
            "decoder": {"type": "yolo", "output": "output0", "score_threshold": 0.25, "iou_threshold": 0.45},
            "classes": [f"class{i}" for i in range(80)], "source": {"trained": False, "note": "random weights"}}
    return export_bundle(model, torch.zeros(1, 3, *YOLO_HW), folder, meta), info


def add_int8(folder: Path, frames: list[np.ndarray]) -> float:
    """Write the bundle's two INT8 graphs from one calibration on ``frames`` with ``edgepilot export
    --int8``'s own quantiser (``export.quantize.quantize_tensors``, after ``quant_pre_process``):
    ``model.int8.onnx`` (QDQ, symmetric int8 activations and weights, per-channel weights: what
    TensorRT and OpenVINO run) and ``model.int8.cpu.onnx`` (uint8 asymmetric activations, U8S8: what
    ort's CPU provider runs, with the convolutions over the image's colour planes in float,
    ``export.quantize.image_convs``, and a final upsample and ArgMax channels-last,
    ``export.quantize.channels_last_tail``, as the export writes them). MinMax: the export picks the method by
    accuracy on labelled frames, and these models have random weights. Seconds taken."""
    import logging

    from onnxruntime import quantization as q

    from edgepilot.export.quantize import channels_last_tail, image_convs, quantize_tensors
    from edgepilot.runtime.bundle import load_bundle
    from edgepilot.runtime.preprocess import Preprocessor

    bundle = load_bundle(folder)
    pre = Preprocessor(bundle.inputs[0], bundle.preprocess)
    tensors = [pre(f)[0].copy() for f in frames]
    t0 = time.perf_counter()
    prepped = folder / "model.pre.onnx"
    logging.getLogger().setLevel(logging.ERROR)  # quant_pre_process logs its shape-inference steps
    q.quant_pre_process(str(bundle.file("fp32")), str(prepped))
    name = bundle.inputs[0].name
    quantize_tensors(prepped, bundle.path_of("int8"), name, tensors, "MinMax", [], activations="int8")
    quantize_tensors(prepped, bundle.path_of("int8_cpu"), name, tensors, "MinMax", image_convs(prepped),
                     activations="uint8")
    channels_last_tail(bundle.path_of("int8_cpu"))
    prepped.unlink()
    return time.perf_counter() - t0


def summary(samples: list[float]) -> dict[str, float]:
    x = np.asarray(samples)
    return {"p50_ms": float(np.percentile(x, 50)), "p99_ms": float(np.percentile(x, 99)),
            "mean_ms": float(x.mean()), "n": int(x.size)}


class Row:
    """One engine (+ its processor) being measured; samples accumulate over the rounds."""

    def __init__(self, model: str, backend: str, precision: str, variant: str, options: dict[str, Any],
                 bundle: Path) -> None:
        from edgepilot.runtime.engines import load_engine

        self.model, self.backend, self.precision, self.variant = model, backend, precision, variant
        t0 = time.perf_counter()
        self.engine = load_engine(bundle, backend, precision, **options)
        self.load_s = time.perf_counter() - t0
        self.processor = self.engine.make_processor()
        self.engine_ms: list[float] = []
        self.round_p50s: list[float] = []
        self.preempted: list[bool] = []
        self.processor_ms: list[float] = []
        self.loops: list[dict[str, Any]] = []
        self.async_fps: list[float] = []

    def time_engine(self, iters: int) -> None:
        from edgepilot.runtime.bench.measure import time_engine

        t = time_engine(self.engine, iters=iters, repeats=1, warmup=3)
        self.engine_ms += list(t.samples_ms)
        self.round_p50s.append(t.repeat_p50s_ms[0])
        self.preempted += [f for rep in t.preempted for f in rep]

    def time_async(self, iters: int) -> None:
        """Engine-only FPS with the loop's requests in flight (rows that overlap them): the fair
        reference for their loop, whose throughput a back-to-back p50 does not describe."""
        fps = self.engine.throughput_fps(self.engine.sample_inputs(), iters)
        if fps is not None:
            self.async_fps.append(fps)

    def time_processor(self, frame: np.ndarray, iters: int) -> None:
        from edgepilot.runtime.frame import Frame

        for i in range(iters + 2):
            t0 = time.perf_counter()
            self.processor(Frame.captured(i, frame))
            if i >= 2:  # the first calls compile a frame-size model (openvino, in-graph) or warm caches
                self.processor_ms.append((time.perf_counter() - t0) * 1e3)

    def bracket_fps(self, iters: int) -> float:
        """Engine-only FPS now (a short measurement taken just before and just after each loop)."""
        from edgepilot.runtime.bench.measure import time_engine

        fps = self.engine.throughput_fps(self.engine.sample_inputs(), iters)
        if fps is not None:
            return float(fps)
        t = time_engine(self.engine, iters=iters, repeats=1, warmup=1)
        return 1e3 / float(np.median(t.samples_ms))

    def run_loop(self, clip: Path, bracket_iters: int) -> None:
        from edgepilot.runtime.pipeline import run_loop
        from edgepilot.runtime.sources import open_source

        before = self.bracket_fps(bracket_iters)
        report, error = run_loop(open_source(str(clip)), self.processor, engine_info=self.engine.describe())
        if error is not None:
            raise error
        around = (before + self.bracket_fps(bracket_iters)) / 2
        cpu = report.extra["cpu_ms_per_frame"]
        self.loops.append({"fps": report.fps, "frames": report.frames, "engine_fps_around": around,
                           "over_engine_around": report.fps / around, "cpu_ms_per_frame": cpu,
                           "loop_threads_cpu_ms_per_frame": sum(v for k, v in cpu.items() if k != "process"),
                           "capture_to_result_p50_ms": report.capture_to_result_ms["p50"],
                           "infer_stage_p50_ms": report.stages_ms["infer"]["p50"]})

    def engine_fps(self) -> float:
        """1000 / engine p50, or the median async throughput where the row overlaps requests."""
        return float(np.median(self.async_fps)) if self.async_fps else 1e3 / float(np.median(self.engine_ms))

    def result(self) -> dict[str, Any]:
        fps = [lp["fps"] for lp in self.loops]
        info = self.engine.describe()
        return {"model": self.model, "backend": self.backend, "precision": self.precision, "variant": self.variant,
                "engine": summary(self.engine_ms), "engine_round_p50s_ms": self.round_p50s,
                "engine_preempted_share": float(np.mean(self.preempted)),
                "processor": summary(self.processor_ms), "loop_fps": float(np.median(fps)), "loop_fps_runs": fps,
                "engine_fps": self.engine_fps(), "engine_async_fps": self.async_fps or None,
                "loop_over_engine": float(np.median(fps)) / self.engine_fps(),
                "loop_over_engine_paired": float(np.median([lp["over_engine_around"] for lp in self.loops])),
                "loop_threads_cpu_ms_per_frame": float(np.median([lp["loop_threads_cpu_ms_per_frame"]
                                                                  for lp in self.loops])),
                "cpu_ms_per_frame": {k: float(np.median([lp["cpu_ms_per_frame"][k] for lp in self.loops]))
                                     for k in self.loops[0]["cpu_ms_per_frame"]},
                "loop": self.loops, "load_s": self.load_s,
                "describe": {k: v for k, v in info.items() if k not in ("cache", "fingerprint")}}


def plan(bundles: dict[str, Path], threads: int) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """(model, backend, precision, variant, options) for every row."""
    pinned: dict[str, dict[str, Any]] = {"ort": {"threads": threads}, "openvino": {"threads": threads}}
    rows = [(m, b, p, "default", pinned[b]) for m in bundles for b in BACKENDS for p in PRECISIONS]
    ov = pinned["openvino"]
    rows += [("tiny-seg", "openvino", "fp32", "preprocess=graph", {**ov, "preprocess": "graph"})]
    for p in PRECISIONS:
        rows += [("yolov8n", "openvino", p, "throughput+overlap", {**ov, "hint": "throughput"})]
    rows += [("yolov8n", "openvino", "fp16", "overlap", {**ov, "overlap": True})]
    rows += [("yolov8n", "ort", "fp32", "spin=false", {**pinned["ort"], "spin": False})]
    for p in PRECISIONS:  # as edgepilot run on a file: one run per core in flight, the threads shared
        file_mode = {"hint": "throughput", "streams": threads, "threads": 1}  # preprocess=auto: in the graph
        rows += [("yolov8n", "ort", p, "throughput+overlap", file_mode),
                 ("yolov8n", "ort", p, "throughput+overlap,preprocess=host", {**file_mode, "preprocess": "host"})]
    return rows


class PeerRow:
    """The hand-rolled loop around OpenVINO that Ultralytics' predict amounts to, all in series."""

    model, backend, variant = "yolov8n", "peer-openvino", "serial"

    def __init__(self, bundle: Path) -> None:
        import json as _json

        import openvino as ov

        meta = _json.loads((bundle / "meta.json").read_text())
        self.hw = tuple(meta["inputs"][0]["shape"][2:4])
        t0 = time.perf_counter()
        self.core = ov.Core()
        # Ultralytics' AutoBackend: compile_model(..., config={"PERFORMANCE_HINT": "LATENCY"}) for batch 1
        self.compiled = self.core.compile_model(str(bundle / "model.onnx"), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        self.load_s = time.perf_counter() - t0
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT")).replace("<Type: '", "").rstrip("'>")
        self.request = self.compiled.create_infer_request()
        self.engine_ms: list[float] = []
        self.round_p50s: list[float] = []
        self.loops: list[dict[str, Any]] = []

    def blob(self, image: np.ndarray) -> np.ndarray:
        import cv2

        h, w = image.shape[:2]
        H, W = self.hw
        r = min(H / h, W / w)
        nh, nw = round(h * r), round(w * r)
        top, left = (H - nh) // 2, (W - nw) // 2
        canvas = np.full((H, W, 3), 114, np.uint8)
        canvas[top:top + nh, left:left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        return cv2.dnn.blobFromImage(canvas, 1 / 255, swapRB=True)  # type: ignore[no-any-return]

    @staticmethod
    def decode(out: np.ndarray, conf: float = 0.25, iou: float = 0.45) -> list[Any]:
        import cv2

        pred = out[0].T  # [N, 4 + nc]
        scores = pred[:, 4:].max(1)
        keep = scores > conf
        if not keep.any():
            return []
        p = pred[keep]
        xywh = p[:, :4].copy()
        xywh[:, :2] -= xywh[:, 2:] / 2
        idx = cv2.dnn.NMSBoxes(xywh.tolist(), scores[keep].tolist(), conf, iou)
        return [(xywh[i], int(p[i, 4:].argmax())) for i in np.asarray(idx).reshape(-1)]

    def _infer_ms(self, iters: int) -> list[float]:
        x = np.random.default_rng(0).standard_normal((1, 3, *self.hw)).astype(np.float32)
        for _ in range(3):
            self.request.infer({0: x})
        ms = []
        for _ in range(iters):
            t0 = time.perf_counter()
            self.request.infer({0: x})
            ms.append((time.perf_counter() - t0) * 1e3)
        return ms

    def time_engine(self, iters: int) -> None:
        ms = self._infer_ms(iters)
        self.engine_ms += ms
        self.round_p50s.append(float(np.median(ms)))

    def time_processor(self, frame: np.ndarray, iters: int) -> None:
        pass

    def bracket_fps(self, iters: int) -> float:
        """Engine-only FPS now (kept out of the engine summary, as for the other rows)."""
        return 1e3 / float(np.median(self._infer_ms(iters)))

    def run_loop(self, clip: Path, bracket_iters: int) -> None:
        import cv2

        before = self.bracket_fps(bracket_iters)
        cap = cv2.VideoCapture(str(clip))
        out_port = self.compiled.output(0)
        frames, t0 = 0, time.perf_counter()
        while True:
            ok, image = cap.read()
            if not ok:
                break
            self.decode(self.request.infer({0: self.blob(image)})[out_port])
            frames += 1
        fps = frames / (time.perf_counter() - t0)
        cap.release()
        around = (before + self.bracket_fps(bracket_iters)) / 2
        self.loops.append({"fps": fps, "frames": frames, "engine_fps_around": around, "over_engine_around": fps / around})

    def result(self) -> dict[str, Any]:
        fps = [lp["fps"] for lp in self.loops]
        eng = summary(self.engine_ms)
        return {"model": self.model, "backend": self.backend, "precision": self.precision, "variant": self.variant,
                "engine": eng, "engine_round_p50s_ms": self.round_p50s, "loop_fps": float(np.median(fps)),
                "engine_fps": 1e3 / eng["p50_ms"],
                "loop_fps_runs": fps, "loop_over_engine": float(np.median(fps)) * eng["p50_ms"] / 1e3,
                "loop_over_engine_paired": float(np.median([lp["over_engine_around"] for lp in self.loops])),
                "loop": self.loops, "load_s": self.load_s,
                "describe": {"compile": 'core.compile_model(onnx, "CPU", {"PERFORMANCE_HINT": "LATENCY"})',
                             "inference_precision": self.precision,
                             "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
                             "loop": "read -> letterbox -> blobFromImage -> infer -> decode + NMSBoxes, in series"}}


def targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The ratios issue 8 sets targets on, from the rows (engine FPS = 1000 / engine p50)."""
    def get(model: str, backend: str, precision: str, variant: str = "default") -> dict[str, Any] | None:
        return next((r for r in rows if (r["model"], r["backend"], r["precision"], r["variant"])
                     == (model, backend, precision, variant)), None)

    def paired(a: dict[str, Any], b: dict[str, Any]) -> float:
        """Median over rounds of a's p50 over b's p50 in the same round (drift between rounds cancels)."""
        return float(np.median(np.asarray(a["engine_round_p50s_ms"]) / np.asarray(b["engine_round_p50s_ms"])))

    out: dict[str, Any] = {}
    ort32 = get("yolov8n", "ort", "fp32")
    ov = {p: get("yolov8n", "openvino", p) for p in PRECISIONS}
    if ort32 and all(ov.values()):
        best = min(("fp32", "fp16"), key=lambda p: ov[p]["engine"]["p50_ms"])  # type: ignore[index]
        out["yolov8n_engine"] = {
            "best_openvino_float": f"openvino {best} ({ov[best]['describe'].get('inference_precision')})",  # type: ignore[index]
            "over_ort_fp32": paired(ort32, ov[best]),  # type: ignore[arg-type]
            "over_ort_fp32_of_medians": ort32["engine"]["p50_ms"] / ov[best]["engine"]["p50_ms"],  # type: ignore[index]
            "target_over_ort_fp32": 1.8,
            "openvino_int8_over_openvino_fp32": paired(ov["fp32"], ov["int8"]),  # type: ignore[arg-type]
            "openvino_int8_over_openvino_fp32_of_medians":
                ov["fp32"]["engine"]["p50_ms"] / ov["int8"]["engine"]["p50_ms"],  # type: ignore[index]
            "target_int8_over_fp32": 1.5,
            "ratio_note": "paired: the median over rounds of the two rows' p50s in the same round; "
                          "_of_medians: the ratio of their p50s over all rounds"}
    bundles: dict[str, Any] = {}
    for m in sorted({r["model"] for r in rows} - {"yolov8n"}):
        cands = [r for r in rows if r["model"] == m and r["variant"] == "default"]
        best_ov = min((r for r in cands if r["backend"] == "openvino"), key=lambda r: r["engine"]["p50_ms"])
        best_ort = min((r for r in cands if r["backend"] == "ort"), key=lambda r: r["engine"]["p50_ms"])
        bundles[m] = {"best_openvino": f"{best_ov['precision']} {best_ov['engine']['p50_ms']:.2f} ms",
                      "best_ort": f"{best_ort['precision']} {best_ort['engine']['p50_ms']:.2f} ms",
                      "openvino_over_ort": paired(best_ort, best_ov),
                      "ort_int8_over_ort_fp32": paired(get(m, "ort", "fp32"), get(m, "ort", "int8")),  # type: ignore[arg-type]
                      "ort_int8_model": get(m, "ort", "int8")["describe"]["model"],  # type: ignore[index]
                      "same_precision_openvino_over_ort": {
                          p: get(m, "ort", p)["engine"]["p50_ms"] / get(m, "openvino", p)["engine"]["p50_ms"]  # type: ignore[index]
                          for p in PRECISIONS if get(m, "ort", p) and get(m, "openvino", p)}}
    out["bundles_engine"] = bundles
    loops = [r for r in rows if r["backend"] in BACKENDS and r["engine"]["p50_ms"] >= 10]
    out["loop_over_engine_for_engines_of_10ms_or_more"] = {
        f"{r['model']} {r['backend']} {r['precision']} {r['variant']}": r["loop_over_engine_paired"] for r in loops}
    out["loop_over_engine_note"] = ("per loop run, its FPS over the engine-only FPS measured just before and just "
                                    "after it (the mean of the two); the median over rounds (rows' "
                                    "loop_over_engine_paired; loop_over_engine is the unpaired median over median)")
    out["loop_cpu_ms_per_frame_where_the_engine_runs_in_its_own_threads"] = {
        f"{r['model']} {r['backend']} {r['precision']} {r['variant']}": r["cpu_ms_per_frame"]
        for r in loops if "overlap" in r["variant"]}
    out["loop_cpu_note"] = ("the loop report's cpu_ms_per_frame (runtime/pipeline.py), median over rounds: each loop "
                            "thread's CPU time per frame (capture: reading and decoding the clip; preprocess; "
                            "inference: waiting for the run and decoding its outputs; output) and the process's; "
                            "in rows that overlap runs the engine runs in its own threads, so the four loop threads "
                            "are the loop's own work, a CPU time rather than a rate, less moved by other jobs on "
                            "the machine than the FPS ratios")
    file_rows = [r for r in loops if r["variant"].startswith("throughput+overlap")]
    out["file_loop_over_bench_engine_fps"] = {
        f"{r['model']} {r['backend']} {r['precision']} {r['variant']}":
            r["loop_fps"] / (1e3 / get(r["model"], r["backend"], r["precision"])["engine"]["p50_ms"])  # type: ignore[index]
        for r in file_rows if get(r["model"], r["backend"], r["precision"])}
    out["file_loop_over_bench_engine_fps_note"] = (
        "the other reading of 'keeps 0.95 of its backend's engine-only FPS': a file loop's FPS (edgepilot run's "
        "defaults on a file: hint=throughput) over the backend's engine-only FPS as this script and edgepilot bench "
        "time it for the same precision (the backends' defaults, hint=latency: one call at a time, back to back; "
        "1000 / p50 of the default row; edgepilot bench's FPS column is 1000 / mean, no higher); "
        "loop_over_engine_for_engines_of_10ms_or_more holds each loop against the same engine configuration "
        "with as many frames in flight, the stricter reading")
    peer = next((r for r in rows if r["backend"] == "peer-openvino"), None)
    ours = [r for r in rows if r["model"] == "yolov8n" and r["backend"] in BACKENDS]
    if peer and ours:
        best = max(ours, key=lambda r: r["loop_fps"])
        out["yolov8n_loop_vs_peer"] = {"peer_fps": peer["loop_fps"], "best_edgepilot_row":
                                       f"{best['backend']} {best['precision']} {best['variant']}",
                                       "best_edgepilot_fps": best["loop_fps"],
                                       "over_peer": best["loop_fps"] / peer["loop_fps"], "target_over_peer": 1.1}
    return out


def ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """openvino/ort per precision and int8/fp32 per backend, on engine p50 and loop FPS (default rows)."""
    by = {(r["model"], r["backend"], r["precision"]): r for r in rows if r["variant"] == "default"}
    out: dict[str, Any] = {}
    for m in sorted({r["model"] for r in rows}):
        cell: dict[str, Any] = {"openvino_over_ort": {}, "int8_over_fp32": {}, "fp16_over_fp32": {}}
        for p in PRECISIONS:
            a, b = by.get((m, "openvino", p)), by.get((m, "ort", p))
            if a and b:
                cell["openvino_over_ort"][p] = {"engine_p50": a["engine"]["p50_ms"] / b["engine"]["p50_ms"],
                                                "loop_fps": a["loop_fps"] / b["loop_fps"]}
        for be in BACKENDS:
            for p in ("int8", "fp16"):
                lo, ref = by.get((m, be, p)), by.get((m, be, "fp32"))
                if lo and ref:
                    cell[f"{p}_over_fp32"][be] = {"engine_p50": lo["engine"]["p50_ms"] / ref["engine"]["p50_ms"],
                                                  "loop_fps": lo["loop_fps"] / ref["loop_fps"]}
        out[m] = cell
    return out


def fastest(rows: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per model and precision, the backend with the lowest engine p50 (default rows)."""
    out: dict[str, dict[str, str]] = {}
    for m in sorted({r["model"] for r in rows}):
        for p in PRECISIONS:
            cands = [r for r in rows if r["variant"] == "default" and r["model"] == m and r["precision"] == p]
            if cands:
                out.setdefault(m, {})[p] = min(cands, key=lambda r: r["engine"]["p50_ms"])["backend"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="inference threads for every backend")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved measurement rounds")
    parser.add_argument("--iters", type=int, default=20, help="engine-only calls per row per round")
    parser.add_argument("--frames", type=int, default=90, help="frames in the generated clip (one loop per round)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import cv2

    from edgepilot.export import tiny
    from edgepilot.runtime.bench.system import cpu_description, library_versions
    from edgepilot.runtime.engines import CPU_PREFERENCE
    from edgepilot.runtime.sources import SyntheticCapture, write_pattern_clip

    t_start = time.perf_counter()
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench_cpu_compare_"))
    clip = write_pattern_clip(tmp / "clip.avi", args.frames, CLIP_HW, 30.0)
    cam = SyntheticCapture(CLIP_HW[1], CLIP_HW[0], 30.0)
    rng = np.random.default_rng(0)
    calib = [np.clip(cam.frame(7 * i).astype(np.int16) + rng.integers(-20, 21, (*CLIP_HW, 3)), 0, 255)
             .astype(np.uint8) for i in range(16)]
    yolo, yolo_info = yolo_bundle(tmp / "yolov8n")
    seg = tiny.segmentation_bundle(tmp / "seg", hw=(256, 512), width=16)
    bundles = {"yolov8n": yolo, "tiny-seg": seg}
    quant_s = {m: add_int8(b, calib) for m, b in bundles.items()}
    for name in ("seg", "det"):  # the shipped bundles, copied without their per-machine engine caches
        src = MODELS / name
        if (src / "meta.json").is_file():
            bundles[name] = Path(shutil.copytree(src, tmp / f"models-{name}", ignore=shutil.ignore_patterns("engines")))
    print(f"bundles ready in {time.perf_counter() - t_start:.0f} s: {yolo_info}")

    rows: list[Any] = [Row(m, b, p, v, o, bundles[m]) for m, b, p, v, o in plan(bundles, args.threads)]
    rows.append(PeerRow(yolo))
    frame = cam.frame(5)
    loads = []
    for r in range(args.rounds):
        order = rows if r % 2 == 0 else rows[::-1]  # alternate the order so no row always runs first
        for row in order:
            row.time_engine(args.iters)
            if isinstance(row, Row):
                row.time_async(args.iters)
            row.time_processor(frame, max(5, args.iters // 3))
        for row in order:
            row.run_loop(clip, max(5, args.iters // 2))
        loads.append(os.getloadavg()[0])
        print(f"round {r + 1}/{args.rounds} done at {time.perf_counter() - t_start:.0f} s, load {loads[-1]:.2f}")
    results = [row.result() for row in rows]
    for res in results:
        print(f"{res['model']:<9} {res['backend']:<13} {res['precision']:<5} {res['variant']:<19} "
              f"engine p50 {res['engine']['p50_ms']:7.2f} p99 {res['engine']['p99_ms']:7.2f} ms  "
              f"processor p50 {res.get('processor', {}).get('p50_ms', math.nan):7.2f} ms  "
              f"loop {res['loop_fps']:6.1f} FPS ({res['loop_over_engine_paired']:.2f} of the engine's, paired)")
    print(json.dumps(targets(results), indent=1))

    versions = library_versions()
    cpu = cpu_description()
    import openvino

    versions["openvino"] = openvino.get_version()
    versions["opencv"] = cv2.__version__
    doc = {
        "benchmark": "cpu_compare", "command": COMMAND,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": {"cpu": cpu["model"], "cpu_class": cpu["class"], "isa": cpu["isa"],
                   "cores": len(os.sched_getaffinity(0)), "machine": platform.machine(),
                   "load_avg_1m_before": load0[0], "load_avg_1m_after_each_round": loads,
                   "load_note": "a shared machine: other jobs ran at times; rows are interleaved per round, "
                                "engine_round_p50s_ms shows the spread"},
        "versions": versions,
        "setup": {"threads": args.threads, "threads_note": "ort intra-op threads = openvino INFERENCE_NUM_THREADS",
                  "rounds": args.rounds, "engine_iters_per_round": args.iters, "clip": f"{args.frames} frames "
                  f"{CLIP_HW[0]}x{CLIP_HW[1]} MJPG (runtime.sources.write_pattern_clip), one loop per row per round",
                  "models": {"yolov8n": {"input": list(YOLO_HW), "output": "[1, 84, 5040]", "classes": 80,
                                         **yolo_info, "preprocess": "letterbox (host)", "weights": "random"},
                             "tiny-seg": {"input": [256, 512], "builder": "export.tiny.segmentation_bundle(hw=(256, 512),"
                                          " width=16)", "preprocess": "stretch (host; openvino in-graph as a variant)"},
                             **{m: {"bundle": f"models/{m}", "input": json.loads((bundles[m] / "meta.json").read_text())
                                    ["inputs"][0]["shape"][2:4], "trained": True} for m in ("seg", "det") if m in bundles}},
                  "int8": "yolov8n and tiny-seg: onnxruntime.quantization (quant_pre_process, then quantize_static: "
                          "QDQ, per-channel symmetric int8 weights, MinMax on 16 noisy clip frames) into "
                          "model.int8.onnx (symmetric int8 activations: openvino runs it) and model.int8.cpu.onnx "
                          "(uint8 asymmetric activations, the convolutions over the colour planes in float: ort's CPU "
                          "provider runs it), with edgepilot export --int8's quantiser "
                          "(export.quantize.quantize_tensors); seg and det: their shipped INT8 graphs",
                  "quantize_s": quant_s,
                  "variants": {"default": "the backend's defaults, threads pinned; openvino: hint=latency, host "
                                          "preprocessing, one request at a time",
                               "preprocess=graph": "openvino resizes/normalises the uint8 frame inside the compiled model",
                               "overlap": "openvino starts each frame's request in prepare (hint=latency, one stream)",
                               "throughput+overlap": "hint=throughput with overlapping requests: openvino picks "
                                                     "the streams and splits the threads among them; ort runs "
                                                     "--threads runs in flight at once, one intra-op thread each, "
                                                     "the frame normalised in the graph (preprocess=auto) "
                                                     "(what edgepilot run does on a file)",
                               "throughput+overlap,preprocess=host": "ort as throughput+overlap with the frame "
                                                                     "normalised on the host"},
                  "note": "yolov8n has random weights with YOLOv8's class-bias init, so it detects ~nothing and "
                          "decoding is cheap; loop FPS includes MJPG decoding and host preprocessing on the same cores"},
        "rows": results,
        "ratios": ratios(results),
        "targets": targets(results),
        "fastest_cpu_backend_by_engine_p50": fastest(results),
        "auto_preference_in_code": {p: list(v) for p, v in CPU_PREFERENCE.items()},
        "wall_s": time.perf_counter() - t_start,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out} after {doc['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
