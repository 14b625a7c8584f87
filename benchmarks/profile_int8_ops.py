"""Where an INT8 graph's time goes on ONNX Runtime's CPU provider, next to its FP32 graph.

For a bundle (default ``models/seg``), runs ``model.onnx`` and ``model.int8.cpu.onnx`` (the
U8S8 graph the runtime's ort backend takes on the CPU; ``--int8 FILE`` for another) with
onnxruntime's own profiler (``SessionOptions.enable_profiling``): per operator type and per
node, the median kernel time over ``--iters`` calls on one random input (the two graphs
interleaved, ten calls each in turn), with ``--threads``
intra-op threads (default 1, as in the README's latency table), the graph optimised at
``ORT_ENABLE_ALL`` as the runtime does. The op types are those onnxruntime runs after its
graph transforms (``QLinearConv``, ``Upsample`` for a fused NCHWc ``Resize``, ...), so the
table shows what actually executes, not what the ONNX file says.

Kernel times are summed without the gaps between kernels, so the total is a little under the
end-to-end p50 that is printed beside it (``time.perf_counter`` around ``session.run``).

``convs`` pairs every convolution of the FP32 graph with what runs it in each graph (a
``QLinearConv`` named after it, or a float ``Conv`` that onnxruntime fused with its activation
and named after the fused output, traced back to the Conv that feeds it), so the speed-up is
per layer: ``convs_summary`` sums the convolutions and the rest of each graph apart, and lists
the convolutions that run slower in INT8 than in float.

Writes ``benchmarks/results/int8_ops_<bundle name>.json``.
Run: ``PYTHONPATH=. python benchmarks/profile_int8_ops.py [--model models/seg]`` (seconds).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import re
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


def _session(model: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(tempfile.gettempdir()) / f"edgepilot-ort-profile-{os.getpid()}-{model.stem}")
    return ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])


def _feeds(session: Any) -> dict[str, np.ndarray]:
    feeds = {}
    rng = np.random.default_rng(0)
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        feeds[i.name] = (rng.integers(0, 256, shape).astype(np.uint8) if "uint8" in i.type
                         else rng.random(shape, dtype=np.float32))
    return feeds


def profile(models: dict[str, Path], threads: int, iters: int, chunk: int = 10) -> dict[str, dict[str, Any]]:
    """Per graph: end-to-end p50 and per op type / per node median kernel times (microseconds).

    The graphs run interleaved, ``chunk`` calls each in turn, so this shared machine's drift hits
    them alike (the FP32 / INT8 ratio of one graph timed after the other swung by 1.2x here)."""
    sessions = {k: _session(m, threads) for k, m in models.items()}
    feeds = {k: _feeds(s) for k, s in sessions.items()}
    for k, s in sessions.items():
        for _ in range(10):
            s.run(None, feeds[k])
    wall: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(max(1, iters // chunk)):
        for k, s in sessions.items():
            for _ in range(chunk):
                t0 = time.perf_counter()
                s.run(None, feeds[k])
                wall[k].append((time.perf_counter() - t0) * 1e3)
    return {k: _digest(models[k], s, wall[k]) for k, s in sessions.items()}


def _digest(model: Path, session: Any, wall: list[float]) -> dict[str, Any]:
    iters = len(wall)
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
        "node_us": {n: (op_of[n], us) for n, us in node_us.items()},
        "by_op_type": [{"op": op, "us": us, "share": us / total if total else 0.0} for op, us in ops],
        "top_nodes": [{"node": n, "op": op_of[n], "us": us} for n, us in nodes[:15]],
    }


def conv_index(graph: Any) -> tuple[set[str], dict[str, Any]]:
    """(the graph's Conv names, tensor name -> the node producing it), for :func:`conv_of`."""
    return {n.name for n in graph.node if n.op_type == "Conv"}, {o: n for n in graph.node for o in n.output}


def conv_of(node: str, convs: set[str], producer: dict[str, Any]) -> str | None:
    """The FP32-graph Conv a profiled node runs: ``<conv>_token_N`` (a QLinearConv), ``<conv>`` itself,
    or a fused node named after an output tensor (``..._nchwc``), traced back to the nearest Conv."""
    base = re.sub(r"_token_\d+$", "", node)
    if base in convs:
        return base
    todo, seen = collections.deque([node.removesuffix("_nchwc")]), set()
    while todo:  # breadth first: a fused Conv+Add is nearer its own Conv than the residual's
        n = producer.get(todo.popleft())
        if n is None or n.name in seen:
            continue
        seen.add(n.name)
        if n.op_type == "Conv":
            return str(n.name)
        todo.extend(n.input)
    return None


def pair_convs(graphs: dict[str, dict[str, Any]], onnx_graphs: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                                       dict[str, Any]]:
    """Per FP32 Conv, its kernel time in each graph; and the conv / rest totals of each graph."""
    per: dict[str, dict[str, float]] = collections.defaultdict(dict)
    rest: dict[str, float] = {}
    for key, g in graphs.items():
        rest[key] = 0.0
        index = conv_index(onnx_graphs[key])
        for n, (op, us) in g["node_us"].items():
            conv = conv_of(n, *index) if op in ("Conv", "QLinearConv", "FusedConv") else None
            if conv is None:
                rest[key] += us
            else:
                per[conv][key] = per[conv].get(key, 0.0) + us
    rows = [{"conv": c, "fp32_us": t.get("fp32"), "int8_us": t.get("int8"),
             "int8_speedup": t["fp32"] / t["int8"] if t.get("fp32") and t.get("int8") else None}
            for c, t in sorted(per.items(), key=lambda kv: -kv[1].get("fp32", 0.0))]
    conv_us = {k: sum(r[f"{k}_us"] or 0.0 for r in rows) for k in graphs}
    summary = {"conv_us": conv_us, "rest_us": rest,
               "conv_speedup": conv_us["fp32"] / conv_us["int8"] if conv_us["int8"] else None,
               "rest_speedup": rest["fp32"] / rest["int8"] if rest["int8"] else None,
               "slower_in_int8": [r["conv"] for r in rows if r["int8_speedup"] is not None and r["int8_speedup"] < 1]}
    return rows, summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=ROOT / "models" / "seg", help="bundle folder (default models/seg)")
    p.add_argument("--int8", default="model.int8.cpu.onnx", help="the INT8 graph in the bundle to profile")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--out", type=Path, default=None, help="default benchmarks/results/int8_ops_<name>.json")
    args = p.parse_args()
    bundle = load_bundle(args.model)
    graphs = profile({"fp32": bundle.path_of("fp32"), "int8": bundle.path / args.int8}, args.threads, args.iters)
    import onnx

    convs, conv_summary = pair_convs(graphs, {"fp32": onnx.load(str(bundle.path_of("fp32"))).graph,
                                              "int8": onnx.load(str(bundle.path / args.int8)).graph})
    for g in graphs.values():
        del g["node_us"]
    out = args.out or ROOT / "benchmarks" / "results" / f"int8_ops_{args.model.name}.json"
    import onnxruntime as ort

    report = {
        "benchmark": "int8_ops", "bundle": str(args.model), "name": bundle.name, "threads": args.threads,
        "iters": args.iters, "graphs": graphs, "convs_summary": conv_summary, "convs": convs,
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
    cs = conv_summary
    print(f"convolutions: fp32 {cs['conv_us']['fp32']:.0f} us, int8 {cs['conv_us']['int8']:.0f} us "
          f"({cs['conv_speedup']:.2f}x); the rest: fp32 {cs['rest_us']['fp32']:.0f} us, int8 "
          f"{cs['rest_us']['int8']:.0f} us; {len(cs['slower_in_int8'])} of {len(convs)} convolutions slower in int8")
    print(f"int8 / fp32 speed: {report['int8_speedup_p50']:.2f}x -> {out}")


if __name__ == "__main__":
    main()
