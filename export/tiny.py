"""Tiny, untrained ONNX bundles built with ``onnx.helper`` (no torch needed).

They exist so tests, the demo and benchmarks have real graphs to run before
the trained reference models exist: a 3-conv segmentation net (logits or
in-graph argmax), a CenterNet-style detector, a YOLOv8-layout detector and a
2-layer policy. Weights are random from a seed; outputs are meaningless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.runtime.bundle import write_meta
from edgepilot.runtime.errors import require

OPSET = 17
SEG_CLASSES = ["unlabeled", "road", "roadline", "car", "sky", "terrain", "pole", "building"]
SEG_PALETTE = [[0, 0, 0], [128, 64, 128], [157, 234, 50], [0, 0, 142], [70, 130, 180],
               [152, 251, 152], [153, 153, 153], [70, 70, 70]]
DET_CLASSES = ["car", "truck", "pole"]


def _conv(onnx: Any, rng: np.random.Generator, name: str, x: str, cin: int, cout: int,
          k: int, stride: int, inits: list, nodes: list, relu: bool = True) -> str:
    w = (rng.standard_normal((cout, cin, k, k)) * (2.0 / (cin * k * k)) ** 0.5).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    inits += [onnx.numpy_helper.from_array(w, f"{name}.w"), onnx.numpy_helper.from_array(b, f"{name}.b")]
    out = f"{name}.y"
    nodes.append(onnx.helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [out],
                                       kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4))
    if relu:
        nodes.append(onnx.helper.make_node("Relu", [out], [f"{name}.r"]))
        return f"{name}.r"
    return out


def _backbone(onnx: Any, rng: np.random.Generator, width: int, inits: list, nodes: list) -> str:
    """image [1,3,H,W] -> features [1,width,H/4,W/4]."""
    x = _conv(onnx, rng, "c1", "image", 3, width, 3, 2, inits, nodes)
    x = _conv(onnx, rng, "c2", x, width, width, 3, 2, inits, nodes)
    return _conv(onnx, rng, "c3", x, width, width, 3, 1, inits, nodes)


def _save(onnx: Any, nodes: list, inits: list, inputs: list, outputs: list, folder: Path) -> None:
    graph = onnx.helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="edgepilot.export.tiny")
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))


def _image_input(onnx: Any, hw: tuple[int, int] | None) -> Any:
    dims: list[Any] = [1, 3, *(hw if hw else ("height", "width"))]
    return onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, dims)


PREPROCESS = {"layout": "NCHW", "color": "RGB", "resize": "stretch", "scale": 1 / 255,
              "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def segmentation_bundle(folder: str | Path, hw: tuple[int, int] | None = (128, 256), width: int = 16,
                        argmax: bool = True, seed: int = 0) -> Path:
    """Untrained segmentation bundle: logits, or uint8 class ids with ``argmax`` (dynamic H, W if hw is None)."""
    onnx = require("onnx", "onnx", "building ONNX models")
    rng = np.random.default_rng(seed)
    inits: list[Any] = []  # onnx TensorProto initialisers
    nodes: list[Any] = []  # onnx NodeProto, in graph order
    feat = _backbone(onnx, rng, width, inits, nodes)
    low = _conv(onnx, rng, "head", feat, width, len(SEG_CLASSES), 1, 1, inits, nodes, relu=False)
    inits.append(onnx.numpy_helper.from_array(np.array([1, 1, 4, 4], np.float32), "up.scales"))
    nodes.append(onnx.helper.make_node("Resize", [low, "", "up.scales"], ["logits"], mode="nearest"))
    shape: list[Any] = [1, len(SEG_CLASSES), *(hw if hw else (None, None))]
    out_name, out_dtype = "logits", "float32"
    if argmax:
        nodes.append(onnx.helper.make_node("ArgMax", ["logits"], ["argmax"], axis=1, keepdims=0))
        nodes.append(onnx.helper.make_node("Cast", ["argmax"], ["class_ids"], to=onnx.TensorProto.UINT8))
        shape, out_name, out_dtype = [1, *(hw if hw else (None, None))], "class_ids", "uint8"
    elem = onnx.TensorProto.UINT8 if argmax else onnx.TensorProto.FLOAT
    out = onnx.helper.make_tensor_value_info(out_name, elem, [d if d else "d" + str(i) for i, d in enumerate(shape)])
    folder = Path(folder)
    _save(onnx, nodes, inits, [_image_input(onnx, hw)], [out], folder)
    write_meta(folder, {
        "name": "tiny-seg", "task": "segmentation", "opset": OPSET,
        "inputs": [{"name": "image", "shape": [1, 3, *(hw if hw else (None, None))], "dtype": "float32"}],
        "outputs": [{"name": out_name, "shape": shape, "dtype": out_dtype}],
        "preprocess": PREPROCESS, "decoder": {"type": "class_ids" if argmax else "logits", "output": out_name},
        "classes": SEG_CLASSES, "palette": SEG_PALETTE,
        "source": {"trained": False, "note": "random weights from export.tiny"},
    })
    return folder


def centernet_bundle(folder: str | Path, hw: tuple[int, int] = (128, 256), width: int = 16, seed: int = 0) -> Path:
    """Untrained CenterNet-style detector: heatmap (sigmoid in graph), size, offset at stride 4."""
    onnx = require("onnx", "onnx", "building ONNX models")
    rng = np.random.default_rng(seed)
    inits: list[Any] = []  # onnx TensorProto initialisers
    nodes: list[Any] = []  # onnx NodeProto, in graph order
    feat = _backbone(onnx, rng, width, inits, nodes)
    hm = _conv(onnx, rng, "hm", feat, width, len(DET_CLASSES), 1, 1, inits, nodes, relu=False)
    nodes.append(onnx.helper.make_node("Sigmoid", [hm], ["heatmap"]))
    sz = _conv(onnx, rng, "sz", feat, width, 2, 1, 1, inits, nodes, relu=True)
    nodes.append(onnx.helper.make_node("Identity", [sz], ["size"]))
    of = _conv(onnx, rng, "of", feat, width, 2, 1, 1, inits, nodes, relu=False)
    nodes.append(onnx.helper.make_node("Sigmoid", [of], ["offset"]))
    h, w = hw[0] // 4, hw[1] // 4
    outs = [("heatmap", [1, len(DET_CLASSES), h, w]), ("size", [1, 2, h, w]), ("offset", [1, 2, h, w])]
    folder = Path(folder)
    _save(onnx, nodes, inits, [_image_input(onnx, hw)],
          [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in outs], folder)
    write_meta(folder, {
        "name": "tiny-centernet", "task": "detection", "opset": OPSET,
        "inputs": [{"name": "image", "shape": [1, 3, *hw], "dtype": "float32"}],
        "outputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in outs],
        "preprocess": PREPROCESS,
        "decoder": {"type": "centernet", "heatmap": "heatmap", "size": "size", "offset": "offset",
                    "stride": 4, "size_units": "cells", "score_threshold": 0.5, "max_detections": 50},
        "classes": DET_CLASSES, "source": {"trained": False},
    })
    return folder


def yolo_bundle(folder: str | Path, hw: tuple[int, int] = (128, 256), width: int = 16, seed: int = 0) -> Path:
    """Untrained detector with the YOLOv8/YOLO11 output layout [1, 4 + nc, N] (letterbox input)."""
    onnx = require("onnx", "onnx", "building ONNX models")
    rng = np.random.default_rng(seed)
    inits: list[Any] = []  # onnx TensorProto initialisers
    nodes: list[Any] = []  # onnx NodeProto, in graph order
    nc = len(DET_CLASSES)
    feat = _backbone(onnx, rng, width, inits, nodes)
    head = _conv(onnx, rng, "head", feat, width, 4 + nc, 1, 1, inits, nodes, relu=False)
    nodes.append(onnx.helper.make_node("Sigmoid", [head], ["head.s"]))
    # rows cx, cy, w, h in input pixels; class rows stay in [0, 1]
    scale = np.ones((1, 4 + nc, 1, 1), np.float32)
    scale[0, :4, 0, 0] = [hw[1], hw[0], hw[1] / 4, hw[0] / 4]
    inits.append(onnx.numpy_helper.from_array(scale, "head.scale"))
    nodes.append(onnx.helper.make_node("Mul", ["head.s", "head.scale"], ["head.m"]))
    inits.append(onnx.numpy_helper.from_array(np.array([1, 4 + nc, -1], np.int64), "head.shape"))
    nodes.append(onnx.helper.make_node("Reshape", ["head.m", "head.shape"], ["output0"]))
    n = (hw[0] // 4) * (hw[1] // 4)
    folder = Path(folder)
    _save(onnx, nodes, inits, [_image_input(onnx, hw)],
          [onnx.helper.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, [1, 4 + nc, n])], folder)
    write_meta(folder, {
        "name": "tiny-yolo", "task": "detection", "opset": OPSET,
        "inputs": [{"name": "image", "shape": [1, 3, *hw], "dtype": "float32"}],
        "outputs": [{"name": "output0", "shape": [1, 4 + nc, n], "dtype": "float32"}],
        "preprocess": {**PREPROCESS, "resize": "letterbox", "mean": [0, 0, 0], "std": [1, 1, 1]},
        "decoder": {"type": "yolo", "output": "output0", "score_threshold": 0.7, "iou_threshold": 0.45},
        "classes": DET_CLASSES, "source": {"trained": False},
    })
    return folder


def policy_bundle(folder: str | Path, obs_hw: tuple[int, int] = (32, 64), channels: int = 3,
                  hidden: int = 64, seed: int = 0) -> Path:
    """Untrained policy: semantic view [1, C, h, w] -> tanh action [1, 2] (steer, throttle)."""
    onnx = require("onnx", "onnx", "building ONNX models")
    rng = np.random.default_rng(seed)
    inits: list[Any] = []  # onnx TensorProto initialisers
    nodes: list[Any] = []  # onnx NodeProto, in graph order
    n_in = channels * obs_hw[0] * obs_hw[1]
    w1 = (rng.standard_normal((n_in, hidden)) / np.sqrt(n_in)).astype(np.float32)
    w2 = (rng.standard_normal((hidden, 2)) / np.sqrt(hidden)).astype(np.float32)
    for name, arr in (("w1", w1), ("b1", np.zeros(hidden, np.float32)), ("w2", w2), ("b2", np.zeros(2, np.float32))):
        inits.append(onnx.numpy_helper.from_array(arr, name))
    nodes += [
        onnx.helper.make_node("Flatten", ["obs"], ["flat"], axis=1),
        onnx.helper.make_node("Gemm", ["flat", "w1", "b1"], ["h1"]),
        onnx.helper.make_node("Relu", ["h1"], ["h1r"]),
        onnx.helper.make_node("Gemm", ["h1r", "w2", "b2"], ["pre"]),
        onnx.helper.make_node("Tanh", ["pre"], ["action"]),
    ]
    folder = Path(folder)
    shape = [1, channels, *obs_hw]
    _save(onnx, nodes, inits, [onnx.helper.make_tensor_value_info("obs", onnx.TensorProto.FLOAT, shape)],
          [onnx.helper.make_tensor_value_info("action", onnx.TensorProto.FLOAT, [1, 2])], folder)
    write_meta(folder, {
        "name": "tiny-policy", "task": "policy", "opset": OPSET,
        "inputs": [{"name": "obs", "shape": shape, "dtype": "float32"}],
        "outputs": [{"name": "action", "shape": [1, 2], "dtype": "float32"}],
        "decoder": {"type": "action", "output": "action", "names": ["steer", "throttle"]},
        "source": {"trained": False},
    })
    return folder
