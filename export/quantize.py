"""INT8: a Q/DQ ONNX graph calibrated on real frames, chosen by measured accuracy.

The layout TensorRT consumes: symmetric signed int8 activations and weights,
per-channel weights, zero-point 0 (``quantize_static`` with ``QuantFormat.QDQ``,
``ActivationSymmetric``/``WeightSymmetric``), after ``quant_pre_process``
(shape inference and ORT's graph optimisations, e.g. BatchNorm folded into the
convolutions, so scales are taken where the deployed graph has tensors).

Beside it, ``model.int8.cpu.onnx``: the same calibration (method, frames, float
nodes) with uint8 asymmetric activations, the U8S8 layout onnxruntime's CPU
kernels are fast on (its own accuracy is recorded as ``calibration.cpu_variant``).
It also keeps in float, for speed, the convolutions that read the image input
itself (:func:`image_convs`): a convolution over 3 colour channels cannot use
the int8 kernels' channel packing, and in U8S8 it ran slower than in float on
the shipped detector (its stem: 893 us as QLinearConv, 432 us as a float Conv
in the FP32 graph, one thread: ``benchmarks/results/int8_ops_det.json`` at
commit 004e8b5), and the float image needs no QuantizeLinear pass. ``cpu_variant.speed_float_nodes`` records them.

Calibration frames are the ``--calib`` datagen frames fed through the runtime's
preprocessing (:class:`~edgepilot.export.frames.InputFeeder`), so calibration
sees what inference sees. Each method of :data:`METHODS` is tried and the one
with the best accuracy on ``--val`` kept; when it still misses FP32 by more than
:data:`MAX_DROP_POINTS`, the sensitive ends of the network (the first
convolution, which sees raw pixels, and the head convolutions that produce the
outputs) are kept in float, in that order of groups, until it does.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.export.accuracy import headline
from edgepilot.export.frames import Frames, InputFeeder, frames_sha256
from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.errors import EdgepilotError, require

METHODS = ("MinMax", "Entropy", "Percentile")
MAX_DROP_POINTS = 1.0  # mIoU or AP50 points INT8 may lose against FP32 before nodes stay in float
Score = Callable[[], dict[str, Any]]  # accuracy of the bundle's current model.int8.onnx


def calibration_tensors(bundle: Bundle, fr: Frames) -> tuple[str, list[np.ndarray]]:
    """(input name, the frames of ``fr`` preprocessed as the runtime does), for :func:`quantize_tensors`."""
    feed = InputFeeder(bundle)
    return feed.name, [feed(s.image)[0] for s in fr.samples()]


def _reader(name: str, tensors: list[np.ndarray]) -> Any:
    q: Any = require("onnxruntime.quantization", "onnx", "INT8 calibration")

    class FrameReader(q.CalibrationDataReader):  # type: ignore[misc]
        """The calibration tensors, fed one at a time."""

        def __init__(self) -> None:
            self._it = iter(tensors)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {name: x}

        def rewind(self) -> None:
            self._it = iter(tensors)

    return FrameReader()


def quantize(pre: Path, dst: Path, bundle: Bundle, calib: Frames, method: str, exclude: list[str],
             activations: str = "int8") -> Path:
    """Q/DQ INT8 graph of the pre-processed FP32 graph ``pre``, calibrated by ``method`` on the frames
    ``calib`` (through the bundle's preprocessing), to ``dst``: :func:`quantize_tensors`."""
    return quantize_tensors(pre, dst, *calibration_tensors(bundle, calib), method, exclude, activations)


def quantize_tensors(pre: Path, dst: Path, name: str, tensors: list[np.ndarray], method: str,
                     exclude: list[str], activations: str = "int8") -> Path:
    """Q/DQ INT8 graph of ``pre`` calibrated on ready input ``tensors`` of input ``name``.

    ``activations``: ``int8`` (symmetric, zero-point 0: TensorRT's and OpenVINO's layout) or ``uint8``
    (asymmetric: what onnxruntime's CPU kernels run fastest, U8S8); weights are symmetric per-channel
    int8 either way. ``exclude``: node names kept in float."""
    q: Any = require("onnxruntime.quantization", "onnx", "INT8 quantisation")
    signed = activations == "int8"
    with contextlib.redirect_stdout(io.StringIO()):  # the calibrators print their progress
        q.quantize_static(str(pre), str(dst), _reader(name, tensors), quant_format=q.QuantFormat.QDQ,
                          activation_type=q.QuantType.QInt8 if signed else q.QuantType.QUInt8,
                          weight_type=q.QuantType.QInt8, per_channel=True,
                          calibrate_method=getattr(q.CalibrationMethod, method), nodes_to_exclude=exclude or None,
                          extra_options={"ActivationSymmetric": signed, "WeightSymmetric": True})
    return dst


TAIL_WHY = ("onnxruntime's CPU kernels run a Resize over planar (NCHW) channels and an ArgMax across planes "
            "slowly; channels-last, the Resize takes its NHWC bilinear path and the ArgMax reads each pixel's "
            "classes contiguously")


def channels_last_tail(path: Path) -> list[str]:
    """Rewrite, in place, a graph's final bilinear upsample and class ArgMax to run channels-last in float.

    ``... -> [DequantizeLinear ->] Resize (NCHW) -> [QuantizeLinear -> DequantizeLinear ->] ArgMax(axis 1)``
    becomes ``... -> Transpose (NHWC) -> Resize (sizes or scales permuted) -> ArgMax(axis 3)``. The
    class ids are the same function of the Resize input, except that the upsampled logits are no
    longer rounded to the quantisation grid before the ArgMax (a Q/DQ pair chooses no class; with it
    gone, ties the rounding made are resolved by the float values). Why (onnxruntime CPU, U8S8): on the
    shipped segmenter's layout at one thread, random weights, the whole graph goes from 3.25 to 2.93 ms
    at p25 (``benchmarks/seg_layouts_int8.py`` -> ``benchmarks/results/seg_layouts_int8.json``; 3.46 to
    3.17 on the earlier paper layout), the same class ids on the graph without the Q/DQ pair. The FP32
    graph is left alone: there onnxruntime's NCHWc layout already runs the Resize blocked.

    Returns the ArgMax nodes rewritten, by name (or output name when unnamed; none when the graph has no such tail: detectors,
    a Resize whose sizes are not constant, an ArgMax over another axis)."""
    onnx: Any = require("onnx", "onnx", "INT8 quantisation")
    nh: Any = require("onnx.numpy_helper", "onnx", "INT8 quantisation")
    model = onnx.load(str(path))
    g = model.graph
    init = {t.name: t for t in g.initializer}
    done: list[str] = []
    for am in [n for n in g.node if n.op_type == "ArgMax"]:
        attrs = {a.name: a for a in am.attribute}
        keep = attrs["keepdims"].i if "keepdims" in attrs else 1
        if (attrs["axis"].i if "axis" in attrs else 0) not in (1, -3):
            continue
        producer = {o: n for n in g.node for o in n.output}
        consumers: dict[str, int] = {}
        for n in g.node:
            for i in n.input:
                consumers[i] = consumers.get(i, 0) + 1
        chain, x = [], producer.get(am.input[0])
        if x is not None and x.op_type == "DequantizeLinear" and producer.get(x.input[0]) is not None \
                and producer[x.input[0]].op_type == "QuantizeLinear":
            chain = [x, producer[x.input[0]]]
            x = producer.get(chain[1].input[0])
        if x is None or x.op_type != "Resize" or any(consumers.get(n.output[0], 0) != 1 for n in [x, *chain]):
            continue
        rs = x
        consts = [nh.to_array(init[i]) if i in init else None for i in list(rs.input) + [""] * (4 - len(rs.input))]
        scales, sizes = consts[2], consts[3]
        if rs.input[1:2] not in ([], [""]):
            continue
        if sizes is None and (scales is None or scales.size != 4):
            continue
        if sizes is not None and sizes.size != 4:
            continue
        perm = [0, 2, 3, 1]
        tag = am.name or am.output[0]
        t_out, r_out = f"{tag}_nhwc_in", f"{tag}_nhwc_resized"
        new_inputs = [t_out, "", "", ""]
        if sizes is not None:
            g.initializer.append(nh.from_array(sizes[perm].astype(np.int64), f"{tag}_nhwc_sizes"))
            new_inputs[3] = f"{tag}_nhwc_sizes"
            new_inputs = new_inputs[:4]
        else:
            assert scales is not None  # checked above: no sizes means four scales
            g.initializer.append(nh.from_array(scales[perm].astype(np.float32), f"{tag}_nhwc_scales"))
            new_inputs[2] = f"{tag}_nhwc_scales"
            new_inputs = new_inputs[:3]
        transpose = onnx.helper.make_node("Transpose", [rs.input[0]], [t_out], name=f"{tag}_to_nhwc", perm=perm)
        resize = onnx.helper.make_node("Resize", new_inputs, [r_out], name=f"{tag}_resize_nhwc")
        resize.attribute.extend(rs.attribute)
        at = list(g.node).index(rs)
        for n in [rs, *chain]:
            g.node.remove(n)
        g.node.insert(at, resize)
        g.node.insert(at, transpose)
        am.input[0] = r_out
        attrs["axis"].i = 3
        if keep:  # [N, H, W, 1] -> [N, 1, H, W] as before
            out = am.output[0]
            am.output[0] = f"{tag}_nhwc_ids"
            g.node.insert(list(g.node).index(am) + 1, onnx.helper.make_node(
                "Transpose", [am.output[0]], [out], name=f"{tag}_to_nchw", perm=[0, 3, 1, 2]))
        done.append(tag)
    if done:
        used = {i for n in g.node for i in n.input}
        for t in [t for t in g.initializer if t.name not in used]:
            g.initializer.remove(t)
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return done


def sensitive_nodes(model_path: Path) -> dict[str, list[str]]:
    """{"first_conv": [...], "heads": [...]}: the graph's first Conv and the Convs nearest its outputs
    (walking back from each output, or from a final ArgMax's input, through non-Conv nodes)."""
    onnx: Any = require("onnx", "onnx", "INT8 quantisation")
    g = onnx.load(str(model_path)).graph
    producer = {o: n for n in g.node for o in n.output}
    convs = [n for n in g.node if n.op_type == "Conv"]
    starts = [n.input[0] for n in g.node if n.op_type == "ArgMax"] or [o.name for o in g.output]
    heads: list[str] = []
    todo, seen = deque(starts), set()
    while todo:
        node = producer.get(todo.popleft())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type == "Conv":
            heads.append(node.name)
        else:
            todo.extend(node.input)
    return {"first_conv": [convs[0].name] if convs else [], "heads": heads}


def image_convs(model_path: Path, max_channels: int = 4) -> list[str]:
    """The Convs that read a graph input directly with at most ``max_channels`` input channels
    (the image's colour planes): the ones the U8S8 CPU variant keeps in float for speed."""
    onnx: Any = require("onnx", "onnx", "INT8 quantisation")
    g = onnx.load(str(model_path)).graph
    inputs = {i.name for i in g.input}
    weights = {t.name: list(t.dims) for t in g.initializer}
    out = []
    for n in g.node:
        if n.op_type != "Conv" or n.input[0] not in inputs or n.input[1] not in weights:
            continue
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        if weights[n.input[1]][1] * group <= max_channels:
            out.append(n.name)
    return out


def _try(pre: Path, work: Path, bundle: Bundle, calib: Frames, method: str, exclude: list[str],
         score: Score) -> tuple[Path, dict[str, Any]]:
    dst = work / f"int8.{method}.{len(exclude)}.onnx"
    quantize(pre, dst, bundle, calib, method, exclude)
    shutil.copyfile(dst, bundle.path_of("int8"))
    return dst, score()


def select_int8(bundle: Bundle, calib: Frames, fp32: dict[str, Any], score: Score, *,
                methods: tuple[str, ...] = METHODS, tick: Callable[[], Any] = lambda: None) -> dict[str, Any]:
    """Write the bundle's ``model.int8.onnx``: the best of ``methods`` by ``score`` (then float exclusions
    if it misses ``fp32`` by more than MAX_DROP_POINTS). Returns the calibration record:
    {"method", "frames", "sha256", "excluded_nodes", "why", "methods" (method -> points), "accuracy"}."""
    q: Any = require("onnxruntime.quantization", "onnx", "INT8 quantisation")
    task, ref = bundle.task, headline(bundle.task, fp32)
    sha, n = frames_sha256(calib.samples())
    if n == 0:
        raise EdgepilotError(f"--calib {', '.join(calib.folders)}: no frames; INT8 needs real frames", exit_code=2)
    with tempfile.TemporaryDirectory(prefix="edgepilot-int8-") as tmp:
        work = Path(tmp)
        pre = work / "pre.onnx"
        logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)  # per-step INFO lines
        q.quant_pre_process(str(bundle.file("fp32")), str(pre))
        tried: dict[str, tuple[Path, dict[str, Any]]] = {}
        for m in methods:
            tried[m] = _try(pre, work, bundle, calib, m, [], score)
            tick()
        method = max(tried, key=lambda k: headline(task, tried[k][1]))
        best, acc = tried[method]
        points = {m: round(headline(task, a), 3) for m, (_, a) in tried.items()}
        excluded: list[str] = []
        why = f"{method} scored best of {', '.join(methods)} on --val; no node needed float"
        if ref - headline(task, acc) > MAX_DROP_POINTS:
            best, acc, excluded, why = _exclude(pre, work, bundle, calib, method, score, ref, (best, acc))
        shutil.copyfile(best, bundle.path_of("int8"))
        # the same calibration, method and float nodes with uint8 activations, for onnxruntime on CPU,
        # and the convolutions over the colour planes in float (faster there: see the module docstring)
        speed = [n for n in image_convs(pre) if n not in excluded]
        quantize(pre, bundle.path_of("int8_cpu"), bundle, calib, method, excluded + speed, activations="uint8")
        tail = channels_last_tail(bundle.path_of("int8_cpu"))
        tick()
        cpu_acc = score()  # ort on CPU now runs model.int8.cpu.onnx
    return {"method": method, "frames": n, "sha256": sha, "folders": list(calib.folders),
            "excluded_nodes": excluded, "why": why, "methods": points, "accuracy": acc,
            "format": "QDQ int8 symmetric, per-channel weights",
            "cpu_variant": {"file": bundle.path_of("int8_cpu").name, "accuracy": cpu_acc,
                            "format": "QDQ uint8 asymmetric activations, int8 symmetric per-channel weights (U8S8)",
                            "speed_float_nodes": speed,
                            "channels_last_tail": {"argmax_nodes": tail, "why": TAIL_WHY},
                            "speed_why": "convolutions over the image's colour planes run slower in U8S8 than in "
                                         "float on onnxruntime's CPU kernels; kept in float in this file only",
                            "why": "onnxruntime's CPU kernels run the signed symmetric graph slower than FP32; "
                                   "U8S8 is their fast path. ort on CPU runs it; TensorRT and OpenVINO run int8"}}


def _exclude(pre: Path, work: Path, bundle: Bundle, calib: Frames, method: str, score: Score, ref: float,
             best: tuple[Path, dict[str, Any]]) -> tuple[Path, dict[str, Any], list[str], str]:
    """Keep growing groups of sensitive nodes in float until INT8 is within MAX_DROP_POINTS of FP32."""
    task = bundle.task
    groups = sensitive_nodes(pre)
    plans = [("the first conv", groups["first_conv"]), ("the head convs", groups["heads"]),
             ("the first conv and the head convs", groups["first_conv"] + groups["heads"])]
    drop0 = ref - headline(task, best[1])
    chosen: tuple[Path, dict[str, Any], list[str], str] = (
        *best, [], f"{method} missed FP32 by {drop0:.2f} points and no float exclusion helped")
    for label, nodes in plans:
        if not nodes:
            continue
        path, acc = _try(pre, work, bundle, calib, method, nodes, score)
        drop = ref - headline(task, acc)
        if headline(task, acc) > headline(task, chosen[1]):
            chosen = (path, acc, nodes, f"{method} missed FP32 by {drop0:.2f} points; keeping {label} in float "
                                        f"brings it to {drop:.2f}")
        if drop <= MAX_DROP_POINTS:
            break
    return chosen
