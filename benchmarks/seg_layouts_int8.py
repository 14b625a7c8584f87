"""Which segmentation layout gains from INT8 on ONNX Runtime's CPU provider: a timing probe.

Builds Fast-SCNN (``perception/models/fast_scnn.py``) in a few layouts with random weights (random
batch-norm statistics, so nothing folds to zero), exports each at 128x256 with the in-graph ArgMax
as ``edgepilot export`` does, and writes the two graphs the ort backend would run: FP32
(``model.onnx``) and the U8S8 CPU variant (``export.quantize.quantize_tensors`` after
``quant_pre_process``, uint8 activations, the colour-plane convolution in float as
``export.quantize.image_convs`` picks it), the latter with and without
``export.quantize.channels_last_tail``. MinMax calibration on random tensors: the graphs are timed,
not scored (accuracy needs training: ``edgepilot eval``).

Timing: one session per graph, ``--threads`` intra-op threads (default 1, as the README's latency
table), thread spinning off (many sessions share two cores); calls interleaved one at a time over
the graphs, ``--calls`` each, so a disturbance of this shared machine lands on all of them alike.
Reports p10/p25/p50 per graph and the FP32 / INT8 ratio at each.

Writes ``benchmarks/results/seg_layouts_int8.json``.
Run: ``PYTHONPATH=. python benchmarks/seg_layouts_int8.py`` (about two minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
HW = (128, 256)
LAYOUTS: dict[str, dict[str, Any]] = {
    "paper head_stride=2 (the earlier models/seg)": {"head_stride": 2, "dense_convs": False},
    "head_stride=4": {"head_stride": 4, "dense_convs": False},
    "head_stride=4, dense_convs (models/seg now)": {"head_stride": 4, "dense_convs": True},
    "head_stride=2, dense_convs": {"head_stride": 2, "dense_convs": True},
}


def build(folder: Path, cfg: dict[str, Any], seed: int) -> dict[str, Path]:
    """{"fp32", "int8 planar tail", "int8 channels-last tail"} graph files for one layout."""
    import onnx
    import torch
    from onnxruntime import quantization as q

    from edgepilot.export.quantize import channels_last_tail, image_convs, quantize_tensors
    from edgepilot.perception.classes import SEGMENTATION
    from edgepilot.perception.models.fast_scnn import FastSCNN, FastSCNNConfig

    torch.manual_seed(seed)
    model = FastSCNN(FastSCNNConfig(num_classes=SEGMENTATION.num_classes, **cfg))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)

    class Ids(torch.nn.Module):  # what edgepilot export writes for segmentation: uint8 class ids
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x).argmax(1).to(torch.uint8)

    fp32, pre = folder / "model.onnx", folder / "pre.onnx"
    with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
        torch.onnx.export(Ids().eval(), torch.zeros(1, 3, *HW), str(fp32), input_names=["image"],
                          output_names=["class_ids"], opset_version=17, dynamo=False)
    import onnxslim

    onnx.save(onnxslim.slim(onnx.load(str(fp32))), str(fp32))
    logging.getLogger().setLevel(logging.ERROR)
    q.quant_pre_process(str(fp32), str(pre))
    rng = np.random.default_rng(seed)
    tensors = [rng.standard_normal((1, 3, *HW)).astype(np.float32) for _ in range(4)]
    planar, last = folder / "int8.planar.onnx", folder / "int8.last.onnx"
    quantize_tensors(pre, planar, "image", tensors, "MinMax", image_convs(pre), activations="uint8")
    last.write_bytes(planar.read_bytes())
    if not channels_last_tail(last):
        raise SystemExit(f"{folder}: no channels-last tail written")
    return {"fp32": fp32, "int8 planar tail": planar, "int8 channels-last tail": last}


def time_graphs(files: dict[str, Path], threads: int, calls: int) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((1, 3, *HW)).astype(np.float32)
    sessions = {}
    for key, f in files.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = threads, 1, 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sessions[key] = ort.InferenceSession(str(f), so, providers=["CPUExecutionProvider"])
    for s in sessions.values():
        for _ in range(10):
            s.run(None, {"image": x})
    times = {k: np.empty(calls) for k in sessions}
    for i in range(calls):
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {"image": x})
            times[k][i] = (time.perf_counter() - t) * 1e3
    return times


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS / "seg_layouts_int8.json")
    a = p.parse_args(argv)
    import onnxruntime as ort

    from edgepilot.runtime.host import cpu_model

    with tempfile.TemporaryDirectory(prefix="edgepilot-layouts-") as tmp:
        files: dict[str, Path] = {}
        for i, (name, cfg) in enumerate(LAYOUTS.items()):
            folder = Path(tmp) / f"l{i}"
            folder.mkdir()
            for kind, f in build(folder, cfg, a.seed).items():
                files[f"{name} | {kind}"] = f
        t0 = time.perf_counter()
        times = time_graphs(files, a.threads, a.calls)
        wall = time.perf_counter() - t0
    rows = []
    for name, cfg in LAYOUTS.items():
        pct = {kind: {f"p{q}_ms": float(np.percentile(times[f"{name} | {kind}"], q)) for q in (10, 25, 50)}
               for kind in ("fp32", "int8 planar tail", "int8 channels-last tail")}
        ratios = {kind: {f"p{q}": pct["fp32"][f"p{q}_ms"] / pct[kind][f"p{q}_ms"] for q in (10, 25, 50)}
                  for kind in ("int8 planar tail", "int8 channels-last tail")}
        rows.append({"layout": name, "config": cfg, "ms": pct, "fp32_over_int8": ratios})
        print(f"{name:46s} fp32 {pct['fp32']['p25_ms']:.2f}  int8 {pct['int8 planar tail']['p25_ms']:.2f} "
              f"({ratios['int8 planar tail']['p25']:.2f}x)  channels-last tail "
              f"{pct['int8 channels-last tail']['p25_ms']:.2f} ({ratios['int8 channels-last tail']['p25']:.2f}x)  [p25]")
    out = {"benchmark": "seg_layouts_int8", "input": list(HW), "weights": "random (timings only)",
           "threads": a.threads, "calls_per_graph": a.calls, "spinning": False, "rows": rows,
           "cpu": cpu_model(), "cores": os.cpu_count(),
           "onnxruntime": ort.__version__, "timing_wall_s": wall,
           "command": "PYTHONPATH=. python benchmarks/seg_layouts_int8.py"
                      + (f" --threads {a.threads}" if a.threads != 1 else ""),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
