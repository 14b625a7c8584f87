"""An ONNX graph exported for one frame, made to take a batch: dim 0 freed, batch-1 constants rewritten, checked.

Exporters trace with a batch of 1, and the constants they bake in keep it:
a ``Resize`` with constant ``sizes = [1, C, H, W]`` (torch's interpolate to a
size), a ``Reshape`` to a constant ``[1, ...]``. :func:`make_batchable` frees
dim 0 of every graph input and output (the symbolic ``batch``) and rewrites
those two patterns so they follow the input's batch: the Resize's sizes
become ``Concat(Shape(x)[0:1], [C, H, W])`` (the same sizes for each frame,
so the same arithmetic), the Reshape's leading 1 becomes 0 (ONNX: copy that
dim from the input). Anything else that fixes the batch is left alone and
caught by :func:`check_batching`, which runs the result with ONNX Runtime on a
batch of two and on each frame alone, and the source graph on the first
frame: the three must agree, or the graph is refused (BundleError).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.runtime.errors import BundleError, require

BATCH = "batch"
# Size given to dynamic dims other than the batch when a batched graph is tried (a multiple of 128,
# which every shipped model accepts).
PROBE_SIDE = 256
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
               "tensor(int8)": np.int8, "tensor(int32)": np.int32, "tensor(int64)": np.int64,
               "tensor(bool)": np.bool_, "tensor(double)": np.float64}


def _constants(onnx: Any, model: Any) -> dict[str, np.ndarray]:
    """Initialisers and Constant-node outputs by name (small ones only matter here)."""
    out = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            out[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)
    return out


def _free_dim0(model: Any, path: Path) -> None:
    inits = {i.name for i in model.graph.initializer}
    for value in [*model.graph.input, *model.graph.output]:
        if value.name in inits:
            continue
        dims = value.type.tensor_type.shape.dim
        if not dims or (dims[0].HasField("dim_value") and dims[0].dim_value not in (0, 1)):
            shown = [d.dim_value or d.dim_param or "?" for d in dims]
            raise BundleError(f"{path}: {value.name!r} has shape {shown}, with no batch dim of 1 to make dynamic; "
                              "use --max-batch 1")
        dims[0].Clear()
        dims[0].dim_param = BATCH


def _batch_sizes(onnx: Any, node: Any, sizes: np.ndarray, inits: list[Any]) -> list[Any]:
    """Nodes computing ``[batch of node's input, *sizes[1:]]``; ``node`` is pointed at their output."""
    prefix = node.name
    tail, shape, batch, out = (f"{prefix}/{n}" for n in ("sizes_tail", "shape", "batch", "batch_sizes"))
    inits += [onnx.numpy_helper.from_array(sizes[1:].astype(np.int64), tail),
              onnx.numpy_helper.from_array(np.array([0], np.int64), f"{prefix}/zero"),
              onnx.numpy_helper.from_array(np.array([1], np.int64), f"{prefix}/one")]
    node.input[3] = out
    return [onnx.helper.make_node("Shape", [node.input[0]], [shape]),  # Slice, not Shape's start/end: opset < 15
            onnx.helper.make_node("Slice", [shape, f"{prefix}/zero", f"{prefix}/one"], [batch]),
            onnx.helper.make_node("Concat", [batch, tail], [out], axis=0)]


def make_batchable(model: Any, path: Path) -> list[str]:
    """Rewrite ``model`` in place to take any batch (see the module docstring); the rewrites made, in words.

    BundleError when an input or output has no batch dim of 1 (or dynamic) to free.
    """
    onnx = require("onnx", "onnx", "export triton --max-batch")
    _free_dim0(model, path)
    consts = _constants(onnx, model)
    inits: list[Any] = []
    nodes: list[Any] = []
    done: list[str] = []
    replaced: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
        const = consts.get(node.input[3]) if node.op_type == "Resize" and len(node.input) == 4 else None
        if const is not None and const.ndim == 1 and const.size > 1 and const[0] == 1:
            replaced.add(node.input[3])
            nodes += _batch_sizes(onnx, node, const, inits)
            done.append(f"Resize {node.name}: sizes follow the batch")
        const = consts.get(node.input[1]) if node.op_type == "Reshape" else None
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
        if const is not None and const.ndim == 1 and const.size > 1 and const[0] == 1 and not allowzero:
            name = f"{node.name}/batch_shape"
            replaced.add(node.input[1])
            inits.append(onnx.numpy_helper.from_array(np.concatenate([[0], const[1:]]).astype(np.int64), name))
            node.input[1] = name
            done.append(f"Reshape {node.name}: the batch is copied from its input")
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    unused = [i for i in model.graph.initializer if i.name in replaced - used]
    for init in unused:  # the batch-1 constants nothing reads any more
        model.graph.initializer.remove(init)
    model.graph.initializer.extend(inits)
    del model.graph.value_info[:]  # stale batch-1 shapes: ONNX Runtime infers them again
    return done


def _probe_feeds(session: Any, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for i in session.get_inputs():
        shape = [batch, *(d if isinstance(d, int) and d > 0 else PROBE_SIDE for d in i.shape[1:])]
        dtype = _ORT_DTYPES.get(i.type, np.float32)
        if np.dtype(dtype).kind == "f":
            feeds[i.name] = rng.random(shape).astype(dtype)
        else:
            feeds[i.name] = rng.integers(0, 2 if dtype is np.bool_ else 100, shape).astype(dtype)
    return feeds


def _same(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.allclose(a, b, rtol=tol, atol=tol))
    return bool(np.mean(a == b) >= 0.999)  # class ids: a near-tie may flip a pixel or two


def check_batching(batched: Path, source: Path, precision: str) -> None:
    """``batched`` on a batch of two must give each frame's outputs alone, and those the ``source`` graph's.

    BundleError (exit 2) saying which output differs; the graph fixes its batch somewhere else.
    """
    ort = require("onnxruntime", "onnx", "export triton --max-batch")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # a graph that fixes its batch makes ORT log on stderr; the error below says it
    # Unoptimised, both graphs run node for node: ORT fuses Q/DQ around a Resize into its int8 kernels only
    # while the sizes are constant, which would differ by rounding, not by what the graph computes.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(batched), sess_options=opts, providers=["CPUExecutionProvider"])
        pair = _probe_feeds(session, 2)
        both = session.run(None, pair)
        alone = [session.run(None, {k: v[i:i + 1] for k, v in pair.items()}) for i in range(2)]
        original = ort.InferenceSession(str(source), sess_options=opts, providers=["CPUExecutionProvider"])
        first = original.run(None, {k: v[:1] for k, v in pair.items()})
    except Exception as exc:  # onnxruntime's own exception classes
        raise BundleError(f"--max-batch: {source} does not run with a batch of 2 "
                          f"({str(exc).splitlines()[0][:160]}); its graph fixes the batch: use --max-batch 1") from exc
    tol = 1e-2 if precision == "fp16" else 1e-3
    for out, b, a0, a1, s0 in zip(session.get_outputs(), both, *alone, first, strict=True):
        if not _same(a0, s0, tol):
            raise BundleError(f"--max-batch: made batchable, {source} no longer gives its own output {out.name!r} "
                              "on one frame; use --max-batch 1")
        single = np.concatenate([a0, a1])
        if not _same(b, single, tol):
            raise BundleError(f"--max-batch: {source} mixes the frames of a batch (output {out.name!r} of a batch "
                              f"of 2 is {list(b.shape)}, not the two frames' {list(single.shape)}): its graph "
                              "fixes the batch at 1; use --max-batch 1 or re-export it with a dynamic batch")
