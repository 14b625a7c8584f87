"""A model that takes the uint8 frame: the bundle's normalisation as the graph's first ops.

``preprocess=graph`` on the ort backend (``runtime/engines/ops_ort.py``) runs
this graph: the host still letterboxes or resizes the frame and puts its
channels in the model's order and layout, but hands over uint8 pixels; the
graph casts them to the input's float type and computes ``x * a + b`` per
channel (``a = scale / std``, ``b = -mean / std``, the constants
``runtime.preprocess.Preprocessor`` uses), in onnxruntime's own threads and
without the host's float pass over the frame. The arithmetic is the host's
(float32 ``x * a``, then ``+ b``), so the normalised tensor, and with it the
outputs, equal the host path's (``tests/runtime/test_ort_preprocess_graph.py``).

The graph is built in memory from the bundle's ONNX file and handed to
onnxruntime as bytes: nothing is written into the bundle, so there is no
cache to go stale. Written with ``onnx.helper`` (three nodes in front of the
graph's own; no library does this one edit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.runtime.errors import BundleError, EngineError, require

_FLOAT = 1  # onnx TensorProto.FLOAT


def _rename_uses(graph: Any, old: str, new: str) -> None:
    """Every node input named ``old`` (also inside If/Loop/Scan bodies, which see outer names) -> ``new``."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _rename_uses(sub, old, new)


def _all_names(graph: Any) -> set[str]:
    names = {v.name for v in (*graph.input, *graph.output, *graph.value_info)}
    names |= {t.name for t in graph.initializer}
    for node in graph.node:
        names |= set(node.input) | set(node.output) | {node.name}
    return names


def _fresh(taken: set[str], base: str) -> str:
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


def normalising_model(path: Path, input_name: str, a: np.ndarray, b: np.ndarray, layout: str) -> bytes:
    """The ONNX model at ``path`` with input ``input_name`` turned uint8 and normalised in the graph.

    ``a``, ``b``: per model channel (3 values each, the model's channel order);
    ``layout``: ``NCHW`` or ``NHWC`` (where the channel axis is). Returns the
    serialised model. BundleError when the file is not a valid model or the
    input is not a float image input of that layout.
    """
    onnx = require("onnx", "onnx", "preprocess=graph")
    from onnx import TensorProto, helper, numpy_helper

    try:
        model = onnx.load(str(path))  # type: ignore[attr-defined]
    except Exception as exc:  # protobuf's DecodeError and friends
        raise BundleError(f"{path} is not a valid ONNX model ({type(exc).__name__}); re-export it") from exc
    graph = model.graph
    graph_input = next((i for i in graph.input if i.name == input_name), None)
    if graph_input is None:
        raise BundleError(f"{path}: no graph input {input_name!r} for preprocess=graph")
    if any(o.name == input_name for o in graph.output):
        raise BundleError(f"{path}: input {input_name!r} is also a graph output; use preprocess=host")
    elem = graph_input.type.tensor_type.elem_type
    if elem != _FLOAT:
        raise BundleError(f"{path}: input {input_name!r} is not float32 (ONNX type {elem}); preprocess=graph "
                          "normalises into a float32 input, use preprocess=host")
    dims = graph_input.type.tensor_type.shape.dim
    if len(dims) != 4:
        raise BundleError(f"{path}: input {input_name!r} has rank {len(dims)}, not 4; use preprocess=host")
    shape = [1, 3, 1, 1] if layout.upper() == "NCHW" else [1, 1, 1, 3]
    a32 = np.asarray(a, np.float32).reshape(shape)
    b32 = np.asarray(b, np.float32).reshape(shape)

    taken = _all_names(graph)
    cast_out, scaled = _fresh(taken, f"{input_name}_float"), _fresh(taken, f"{input_name}_scaled")
    normalised = _fresh(taken, f"{input_name}_normalised")
    scale_name, shift_name = _fresh(taken, f"{input_name}_scale"), _fresh(taken, f"{input_name}_shift")
    _rename_uses(graph, input_name, normalised)

    nodes = [helper.make_node("Cast", [input_name], [cast_out], to=TensorProto.FLOAT),
             helper.make_node("Mul", [cast_out, scale_name], [scaled])]
    graph.initializer.append(numpy_helper.from_array(a32, scale_name))
    if np.any(b32 != 0):  # the host adds b only where it is not 0 (x * a + 0 would be the same value)
        nodes.append(helper.make_node("Add", [scaled, shift_name], [normalised]))
        graph.initializer.append(numpy_helper.from_array(b32, shift_name))
    else:
        nodes[-1].output[0] = normalised  # the last op writes the name the model's nodes now read
    for node in reversed(nodes):
        graph.node.insert(0, node)
    graph_input.type.tensor_type.elem_type = TensorProto.UINT8
    try:
        return bytes(model.SerializeToString())
    except ValueError as exc:  # protobuf's 2 GiB limit
        raise EngineError(f"{path}: too large to rebuild in memory for preprocess=graph ({exc}); "
                          "use preprocess=host", exit_code=2) from exc
