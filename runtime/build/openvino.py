"""OpenVINO compile machinery: the FP16 IR, in-graph preprocessing and the fingerprinted model cache.

Callable without constructing an engine (a Jetson-style build script, ``info``);
the ``openvino`` backend calls the same functions. ``ov`` is the imported
``openvino`` module, passed in so nothing here imports it.

Cache layout (inside ``bundle.path_of("engines")``)::

    engines/openvino/<key>/          OpenVINO's own CACHE_DIR for one compiled model (its blob names)
    engines/openvino/<key>.json      our fingerprint of it (:class:`OvFingerprint`)
    engines/openvino/model.fp16.xml  FP16-compressed IR (+ .bin), with model.fp16.json naming its source

``<key>`` is the first 16 hex digits of the SHA-256 of the fingerprint's
canonical JSON, as for TensorRT engines (``runtime.build.cache``). OpenVINO
keys its blobs by its own hash of graph and config; our fingerprint adds what
we know the compiled model depends on (source ONNX hash, OpenVINO version,
CPU name, precision, shapes, in-graph preprocessing, compile properties), so a
folder is used only when its fingerprint equals the current one: a changed
ONNX file gets a new folder and is compiled again, and a folder whose
fingerprint is missing or different is wiped before use. A stale compiled
model is never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.runtime.build.cache import checked_fields, shape_items
from edgepilot.runtime.bundle import Bundle, file_sha256
from edgepilot.runtime.errors import BundleError, EngineError
from edgepilot.runtime.outputs import write_text_atomic

CACHE_FOLDER = "openvino"
FP16_IR = "model.fp16.xml"
# Resize on the uint8 frame, then convert: the same order as the host path (cv2 resizes uint8 and
# rounds), which halves the mean difference to it compared with resizing in float.
RESIZE_BEFORE_CONVERT = True


@dataclass(frozen=True, slots=True)
class OvFingerprint:
    """Everything an OpenVINO compiled model depends on; JSON fields are canonical strings or lists."""

    onnx_sha256: str
    openvino_version: str
    device_name: str
    precision: str
    inference_precision: str
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...]
    preprocess: str  # canonical JSON of the in-graph steps; "" when the host preprocesses
    config: str  # canonical JSON of the compile properties
    rewrites: str  # canonical JSON of the graph rewrites applied before compiling (argmax_channels_last)

    @staticmethod
    def make(onnx_sha256: str, openvino_version: str, device_name: str, precision: str,
             inference_precision: str, input_shapes: Mapping[str, tuple[int, ...]],
             preprocess: Mapping[str, Any] | None, config: Mapping[str, Any],
             rewrites: Mapping[str, Any] | None = None) -> OvFingerprint:
        return OvFingerprint(onnx_sha256, openvino_version, device_name, precision, inference_precision,
                             shape_items(input_shapes), _canonical(preprocess) if preprocess else "", _canonical(config),
                             _canonical(rewrites or {}))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["input_shapes"] = {name: list(shape) for name, shape in self.input_shapes}
        return out

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> OvFingerprint:
        """Inverse of :meth:`to_json`; raises KeyError/TypeError/ValueError on malformed data."""
        shapes = checked_fields(OvFingerprint, data)
        plain = {f.name: str(data[f.name]) for f in fields(OvFingerprint) if f.name != "input_shapes"}
        return OvFingerprint(input_shapes=shape_items(shapes), **plain)

    def key(self) -> str:
        return hashlib.sha256(_canonical(self.to_json()).encode()).hexdigest()[:16]

    def diff(self, other: OvFingerprint) -> dict[str, tuple[Any, Any]]:
        mine, theirs = self.to_json(), other.to_json()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled model, where its cache lives and whether it came from that cache."""

    model: Any  # openvino.CompiledModel
    cache_dir: Path | None
    from_cache: bool
    fingerprint: OvFingerprint


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def cache_root(bundle: Bundle) -> Path:
    return bundle.path_of("engines") / CACHE_FOLDER


def read_fingerprint(path: Path) -> OvFingerprint | None:
    """The stored fingerprint, or None when missing or unreadable."""
    try:
        return OvFingerprint.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def cache_folder(bundle: Bundle, fingerprint: OvFingerprint) -> Path:
    """The CACHE_DIR for ``fingerprint``, emptied first unless its stored fingerprint matches exactly."""
    folder = cache_root(bundle) / fingerprint.key()
    if read_fingerprint(folder.with_suffix(".json")) != fingerprint and folder.exists():
        shutil.rmtree(folder, ignore_errors=True)  # unknown origin: never hand it to OpenVINO
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleError(f"cannot create the OpenVINO cache {folder} ({exc.strerror}); make the bundle "
                          "writable or pass --engine-opt cache=false") from exc
    return folder


def compile_cached(ov: Any, core: Any, model: Any, config: Mapping[str, Any], bundle: Bundle,
                   fingerprint: OvFingerprint, use_cache: bool = True) -> Compiled:
    """Compile ``model`` on the CPU with ``config``; through the bundle's cache when ``use_cache``.

    ``from_cache`` is OpenVINO's own ``LOADED_FROM_CACHE``: true when the blob
    was imported instead of compiled. The fingerprint sidecar is written after
    a successful compile, so a crash mid-compile leaves a folder that is wiped.
    """
    folder = cache_folder(bundle, fingerprint) if use_cache else None
    props = dict(config)
    if folder is not None:
        props[ov.properties.cache_dir()] = str(folder)
    try:
        compiled = core.compile_model(model, "CPU", props)
    except RuntimeError as exc:
        raise EngineError(f"OpenVINO could not compile {bundle.path.name} for the CPU: "
                          f"{first_line(exc)}") from exc
    hit = bool(compiled.get_property(ov.properties.loaded_from_cache())) if folder is not None else False
    if folder is not None and not hit:
        write_text_atomic(folder.with_suffix(".json"),
                      json.dumps(fingerprint.to_json(), indent=2, sort_keys=True) + "\n")
    return Compiled(compiled, folder, hit, fingerprint)


def read_onnx(core: Any, path: Path) -> Any:
    """``core.read_model`` with a bad file as BundleError (exit 2)."""
    try:
        return core.read_model(str(path))
    except RuntimeError as exc:
        raise BundleError(f"{path} is not a valid ONNX model for OpenVINO ({first_line(exc)}); "
                          "re-export the bundle") from exc


def argmax_channels_last(ov: Any, model: Any) -> int:
    """Run every argmax over the channels of a 4-D tensor over its last axis instead; how many were rewritten.

    OpenVINO reads an ONNX ``ArgMax`` as ``TopK`` (k = 1). Over axis 1 of an NCHW tensor its CPU
    kernel is slow whenever the plugin keeps that tensor planar: on ``models/seg`` (11 classes at
    128x256, one thread; an ad-hoc per-layer profile with ``PERF_COUNT``, not committed) TopK took 2.6
    of 9.4 ms in f32 and 2.3 of 7.2 ms in the int8 graph, against 74 us when the whole model runs in
    bf16 (``fp16`` on a BF16 CPU), where the plugin blocks the channels. Committed effect:
    ``benchmarks/results/bench_models_seg.json`` at commit e238578 (the earlier seg layout), openvino int8
    4.96 ms (6.34 ms before). Here the ``TopK`` reads ``Transpose(x, [0, 2, 3, 1])`` over axis 3 and its outputs are
    reshaped back ([1, H, W, 1] -> [1, 1, H, W]: the same order in memory), so the graph's outputs are
    unchanged (the same values over the same axis, first index on ties as before).
    """
    ops: Any = ov.opset11  # TopK-11 keeps the stable attribute the ONNX frontend sets
    rewritten = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "TopK":
            continue
        attrs = node.get_attributes()
        data, k = node.input_value(0), node.input_value(1)
        shape = data.get_partial_shape()
        if shape.rank.is_dynamic or shape.rank.get_length() != 4 or attrs["axis"] not in (1, -3) \
                or k.get_node().get_type_name() != "Constant" or int(k.get_node().get_data().reshape(-1)[0]) != 1:
            continue
        outs = [node.output(i) for i in range(node.get_output_size())]
        if any(o.get_partial_shape().is_dynamic for o in outs):
            continue
        nhwc = ops.transpose(data, ops.constant(np.array([0, 2, 3, 1], np.int64)))
        top = ops.topk(nhwc, k, axis=3, mode=attrs["mode"], sort=attrs["sort"],
                       index_element_type=attrs["index_element_type"], stable=attrs.get("stable", False))
        for i, out in enumerate(outs):
            targets = list(out.get_target_inputs())
            if not targets:  # an argmax uses only the indices; nothing reads the values
                continue
            back = ops.reshape(top.output(i), ops.constant(np.array(list(out.get_shape()), np.int64)), False)
            back.output(0).get_tensor().set_names(out.get_names())  # a model output keeps its name
            for target in targets:
                target.replace_source_output(back.output(0))
        rewritten += 1
    if rewritten:
        model.validate_nodes_and_infer_types()
    return rewritten


def fp16_ir(ov: Any, core: Any, bundle: Bundle) -> Path:
    """The bundle's FP32 graph saved as OpenVINO IR with FP16-compressed weights, cached in the bundle.

    Valid while ``model.fp16.json`` records the current FP32 graph's SHA-256 and
    this OpenVINO version; otherwise written again (``.bin`` first, ``.xml``
    last, each by rename, so a half-written IR is never read).
    """
    src = bundle.file("fp32")
    folder = cache_root(bundle)
    xml = folder / FP16_IR
    sidecar = xml.with_suffix(".json")
    record = {"source": src.name, "source_sha256": file_sha256(src), "openvino": ov.get_version(),
              "converter": "openvino.save_model(compress_to_fp16=True)"}
    try:
        stored = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        stored = None
    if stored == record and xml.is_file() and xml.with_suffix(".bin").is_file():
        return xml
    tmp = folder / f"model.fp16.tmp{os.getpid()}.xml"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        ov.save_model(read_onnx(core, src), str(tmp), compress_to_fp16=True)
        os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp, xml)
        write_text_atomic(sidecar, json.dumps(record, indent=2) + "\n")
    except OSError as exc:
        raise BundleError(f"cannot write {xml} ({exc.strerror}); make the bundle folder writable "
                          "or use --precision fp32") from exc
    return xml


def reshape_inputs(model: Any, shapes: Mapping[str, tuple[int, ...]], where: Path) -> None:
    """Fix the model's inputs at ``shapes`` (static shapes compile faster code); BundleError on a conflict."""
    new = {}
    for name, shape in shapes.items():
        try:
            port = model.input(name)
        except RuntimeError as exc:
            have = sorted(n for i in model.inputs for n in i.get_names())
            raise BundleError(f"bundle input {name!r} is not an input of {where.name} (it has {have})") from exc
        dims = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        if len(dims) != len(shape) or any(a is not None and a != b for a, b in zip(dims, shape, strict=True)):
            raise BundleError(f"input {name!r}: the model expects {dims}, the bundle/shape gives {list(shape)}")
        if None in dims:
            new[name] = list(shape)
    if new:
        model.reshape(new)


def preprocess_steps(cfg: Mapping[str, Any], frame_hw: tuple[int, int],
                     model_hw: tuple[int, int]) -> dict[str, Any]:
    """The in-graph preprocessing as data (goes into the fingerprint): host ``Preprocessor`` maths.

    The host computes ``(x * scale - mean) / std`` per model channel; that is
    ``(x - mean / scale) / (std / scale)``, OpenVINO's ``mean`` then ``scale``.
    """
    s = float(cfg["scale"])
    return {"frame_hw": list(frame_hw), "model_hw": list(model_hw), "tensor": "u8 NHWC BGR",
            "layout": str(cfg["layout"]).upper(), "rgb": str(cfg.get("color", "RGB")).upper() == "RGB",
            "resize": "linear" if tuple(frame_hw) != tuple(model_hw) else "none",
            "resize_before_convert": RESIZE_BEFORE_CONVERT,
            "mean": [float(m) / s for m in cfg["mean"]], "std": [float(d) / s for d in cfg["std"]]}


def add_preprocessing(ov: Any, model: Any, steps: Mapping[str, Any]) -> Any:
    """``model`` with a uint8 BGR NHWC ``[1, H, W, 3]`` frame input and ``steps`` in the graph."""
    pp = ov.preprocess
    ppp = pp.PrePostProcessor(model)
    inp = ppp.input()
    inp.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")) \
        .set_color_format(pp.ColorFormat.BGR).set_spatial_static_shape(*steps["frame_hw"])
    inp.model().set_layout(ov.Layout(steps["layout"]))
    pre = inp.preprocess()
    resize = steps["resize"] == "linear"
    if resize and steps["resize_before_convert"]:
        pre.resize(pp.ResizeAlgorithm.RESIZE_LINEAR)
    pre.convert_element_type(ov.Type.f32)
    if steps["rgb"]:
        pre.convert_color(pp.ColorFormat.RGB)
    if resize and not steps["resize_before_convert"]:
        pre.resize(pp.ResizeAlgorithm.RESIZE_LINEAR)
    if any(m != 0.0 for m in steps["mean"]):
        pre.mean(list(steps["mean"]))
    if not np.allclose(steps["std"], 1.0):
        pre.scale(list(steps["std"]))
    return ppp.build()


def first_line(exc: BaseException) -> str:
    """The reason in an OpenVINO exception message, on one line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # OpenVINO's messages start with "Exception from src/...cpp:NN:"; the reason is on a later line
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '"))]
    return (useful or lines or [type(exc).__name__])[-1][:200]
