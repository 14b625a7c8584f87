"""Where an INT8 graph's time goes on ONNX Runtime's CPU provider, next to its FP32 graph.

For a bundle (default ``models/seg``), runs ``model.onnx`` and ``model.int8.cpu.onnx`` (the
U8S8 graph the runtime's ort backend takes on the CPU; ``--int8 FILE`` for another) with
onnxruntime's own profiler (``SessionOptions.enable_profiling``): per operator type and per
node, the median kernel time over ``--iters`` calls on one random input, with ``--threads``
intra-op threads (default 1, as in the README's latency table), the graph optimised at
``ORT_ENABLE_ALL`` as the runtime does. The op types are those onnxruntime runs after its
graph transforms (``QLinearConv``, ``Upsample`` for a fused NCHWc ``Resize``, ...), so the
table shows what actually executes, not what the ONNX file says.

Kernel times are summed without the gaps between kernels, so the total is a little under the
end-to-end p50 that is printed beside it (``time.perf_counter`` around ``session.run``).

Writes ``benchmarks/results/int8_ops_<bundle name>.json``.
Run: ``PYTHONPATH=. python benchmarks/profile_int8_ops.py [--model models/seg]`` (seconds).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.host import cpu_model
from edgepilot.runtime.outputs import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
_SUFFIX = "_kernel_time"


def profile(model: Path, threads: int, iters: int) -> dict[str, Any]:
    """End-to-end p50 and per op type / per node median kernel times (microseconds) of one graph."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(tempfile.gettempdir()) / f"edgepilot-ort-profile-{os.getpid()}")
    session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
    feeds = {}
    rng = np.random.default_rng(0)
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        feeds[i.name] = (rng.integers(0, 256, shape).astype(np.uint8) if "uint8" in i.type
                         else rng.random(shape, dtype=np.float32))
    for _ in range(10):
        session.run(None, feeds)
    wall = []
    for _ in range(iters):
        t0 = time.perf_counter()
        session.run(None, feeds)
        wall.append((time.perf_counter() - t0) * 1e3)
    trace = Path(session.end_profiling())
    try:
        events = json.loads(trace.read_text())
    finally:
        trace.unlink(missing_ok=True)
    per_node: dict[str, list[float]] = collections.defaultdict(list)
    op_of: dict[str, str] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith(_SUFFIX):
            node = e["name"][: -len(_SUFFIX)]
            per_node[node].append(float(e["dur"]))
            op_of[node] = e.get("args", {}).get("op_name", "?")
    # the profiler also traces the warm-up calls: keep the last ``iters`` of each node
    node_us = {n: float(np.median(v[-iters:])) for n, v in per_node.items()}
    by_op: dict[str, float] = collections.defaultdict(float)
    for n, us in node_us.items():
        by_op[op_of[n]] += us
    total = sum(node_us.values())
    ops = sorted(by_op.items(), key=lambda kv: -kv[1])
    nodes = sorted(node_us.items(), key=lambda kv: -kv[1])
    return {
        "model": model.name, "p50_ms": float(np.median(wall)), "kernel_total_us": total,
        "by_op_type": [{"op": op, "us": us, "share": us / total if total else 0.0} for op, us in ops],
        "top_nodes": [{"node": n, "op": op_of[n], "us": us} for n, us in nodes[:15]],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=ROOT / "models" / "seg", help="bundle folder (default models/seg)")
    p.add_argument("--int8", default="model.int8.cpu.onnx", help="the INT8 graph in the bundle to profile")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--out", type=Path, default=None, help="default benchmarks/results/int8_ops_<name>.json")
    args = p.parse_args()
    bundle = load_bundle(args.model)
    graphs = {"fp32": profile(bundle.path_of("fp32"), args.threads, args.iters),
              "int8": profile(bundle.path / args.int8, args.threads, args.iters)}
    out = args.out or ROOT / "benchmarks" / "results" / f"int8_ops_{args.model.name}.json"
    import onnxruntime as ort

    report = {
        "benchmark": "int8_ops", "bundle": str(args.model), "name": bundle.name, "threads": args.threads,
        "iters": args.iters, "graphs": graphs,
        "int8_speedup_p50": graphs["fp32"]["p50_ms"] / graphs["int8"]["p50_ms"],
        "cpu": cpu_model(), "onnxruntime": ort.__version__,
        "command": f"PYTHONPATH=. python benchmarks/profile_int8_ops.py --model {args.model} --threads {args.threads}",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(report, indent=1) + "\n")
    for name, g in graphs.items():
        top = ", ".join(f"{o['op']} {o['us']:.0f} us ({100 * o['share']:.0f}%)" for o in g["by_op_type"][:5])
        print(f"{name}: p50 {g['p50_ms']:.2f} ms, kernels {g['kernel_total_us']:.0f} us: {top}")
    print(f"int8 / fp32 speed: {report['int8_speedup_p50']:.2f}x -> {out}")


if __name__ == "__main__":
    main()
