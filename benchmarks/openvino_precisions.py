"""OpenVINO's CPU arithmetic on one model: each INFERENCE_PRECISION_HINT the CPU lists, timed.

  PYTHONPATH=. python benchmarks/openvino_precisions.py --out benchmarks/results/openvino_precisions_amx.json

Builds the YOLOv8n-class bundle of ``bench_cpu_compare.py`` (384x640, random weights) and its
INT8 Q/DQ graph (the same quantiser, on generated frames), then compiles ``model.onnx`` and
``model.int8.onnx`` straight through ``openvino.Core`` at f32 and at each 16-bit precision in
the CPU's OPTIMIZATION_CAPABILITIES (bf16 for BF16, f16 for FP16), latency hint, ``--threads``
threads, and times ``--iters`` synchronous calls after a warm-up (p50). A compile that fails is
recorded with OpenVINO's message. This is what picks the openvino backend's 16-bit arithmetic
(``runtime.engines.ops_openvino.half_precision``); the backend itself is not used here, since it
would choose for us.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_cpu_compare as cpu_compare  # noqa: E402  (the model and its INT8 graph)

from edgepilot.runtime.bench.system import cpu_description, library_versions  # noqa: E402
from edgepilot.runtime.host import cpu_class  # noqa: E402
from edgepilot.runtime.outputs import write_text_atomic  # noqa: E402
from edgepilot.runtime.sources import SyntheticCapture  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "openvino_precisions.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    import openvino as ov

    tmp = Path(tempfile.mkdtemp(prefix="openvino_precisions_"))
    cam = SyntheticCapture(640, 360, 30.0)
    bundle, info = cpu_compare.yolo_bundle(tmp / "yolov8n")
    cpu_compare.add_int8(bundle, [cam.frame(7 * i) for i in range(16)])
    core = ov.Core()
    caps = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    precisions = ["f32"] + [h for cap, h in (("BF16", "bf16"), ("FP16", "f16")) if cap in caps]
    x = np.random.default_rng(0).random((1, 3, 384, 640), dtype=np.float32)
    rows = []
    for model in ("model.onnx", "model.int8.onnx"):
        for hint in precisions:
            row: dict = {"model": model, "inference_precision": hint}
            try:
                compiled = core.compile_model(str(bundle / model), "CPU", {
                    "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": args.threads,
                    "PERFORMANCE_HINT": "LATENCY"})
            except RuntimeError as exc:
                row["error"] = str(exc).strip().splitlines()[-1]
            else:
                request = compiled.create_infer_request()
                for _ in range(5):
                    request.infer({0: x})
                ms = []
                for _ in range(args.iters):
                    t = time.perf_counter()
                    request.infer({0: x})
                    ms.append((time.perf_counter() - t) * 1e3)
                row["p50_ms"] = float(np.median(ms))
            print(row, flush=True)
            rows.append(row)
    out = {"benchmark": "openvino_precisions", "command": "PYTHONPATH=. python benchmarks/openvino_precisions.py",
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "device": {"cpu": cpu_description(), "cpu_class": cpu_class(), "capabilities": caps},
           "versions": {"openvino": ov.get_version(), **library_versions()},
           "model": {"name": "yolov8n-class (bench_cpu_compare.py), random weights", "input": [384, 640], **info},
           "threads": args.threads, "iters": args.iters, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
