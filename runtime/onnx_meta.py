"""A bare detection ONNX that describes itself: Ultralytics YOLOv8/YOLO11 metadata -> bundle meta.

An ONNX exported by Ultralytics (``yolo export format=onnx``) carries its own
description in the model's ``metadata_props``, each value ``str()`` of a Python
object, so :func:`ast.literal_eval` (never ``eval``) reads it back::

    names    "{0: 'person', 1: 'bicycle', ...}"   class index -> name (a list is accepted too)
    imgsz    "[640, 640]"                         input H, W (an int means square)
    task     "detect" | "segment" | "pose" | "obb" | "classify"
    stride "32", batch "1", channels "3", description, author, version, date, license, docs, args

:func:`onnx_bundle_meta` turns that, plus the graph's own inputs, outputs and
opset, into a ``meta.json`` dict: letterbox resize padded with 114, RGB, scale
1/255, the runtime's ``yolo`` decoder on the one output ``[1, 4 + nc, N]``
(cx, cy, w, h in input pixels, then nc class scores). Only ``detect`` runs;
another task, an NMS export (``nms=True``: ``[1, max_det, 6]``) or an output
whose rows disagree with ``names`` is a :class:`BundleError` saying so.
``names`` and ``imgsz`` may be supplied by the caller when the file lacks them
(``imgsz`` is also read from a fixed input shape).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgepilot.runtime.errors import BundleError, require

SUFFIX = ".onnx"
# Ultralytics' predict defaults (conf, iou, max_det), so detections match `yolo predict`.
DECODER = {"type": "yolo", "score_threshold": 0.25, "iou_threshold": 0.7, "max_detections": 300}
PREPROCESS = {"layout": "NCHW", "color": "RGB", "resize": "letterbox", "scale": 1.0 / 255.0,
              "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "pad_value": 114}
# Provenance fields copied into meta.json's "source" as they are.
PROVENANCE = ("description", "author", "version", "date", "license", "docs", "stride", "task")
MAX_FIELD = 1 << 20  # characters: a names dict of 10k classes is ~200 kB


def is_onnx_file(path: str | Path) -> bool:
    """True for an existing file named ``*.onnx`` (what ``--model`` may give instead of a bundle folder)."""
    p = Path(path)
    return p.suffix.lower() == SUFFIX and p.is_file()


def _how(path: Path, fields: Sequence[str] = ("names", "imgsz")) -> str:
    flags = " ".join({"names": "--names a,b,...", "imgsz": "--imgsz HxW"}[f] for f in fields)
    return (f"give them with `edgepilot export --from-onnx {path} {flags} --out BUNDLE`, "
            "or write a bundle folder with a meta.json (README, 'Model bundles')")


def _literal(path: Path, key: str, text: str) -> Any:
    if len(text) > MAX_FIELD:
        raise BundleError(f"{path}: metadata {key!r} is {len(text)} characters long (at most {MAX_FIELD}); "
                          "re-export the model")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise BundleError(f"{path}: metadata {key!r} is not a Python literal ({text[:60]!r}); "
                          f"expected e.g. \"{{0: 'person', 1: 'car'}}\" for names, \"[640, 640]\" for imgsz; "
                          f"{_how(path, [key])}") from None


def parse_names(path: Path, value: Any) -> list[str]:
    """Class names from a ``{index: name}`` dict (indices 0..n-1) or a list; BundleError otherwise."""
    if isinstance(value, str):
        value = _literal(path, "names", value)
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (not isinstance(k, int), str(k)))
        if keys != list(range(len(value))):
            raise BundleError(f"{path}: metadata 'names' must map class indices 0..{len(value) - 1} to names, "
                              f"got keys {keys[:8]}{' ...' if len(keys) > 8 else ''}")
        value = [value[i] for i in keys]
    if not isinstance(value, (list, tuple)) or not value:
        raise BundleError(f"{path}: metadata 'names' must be a non-empty dict or list of class names, "
                          f"got {type(value).__name__}; {_how(path, ['names'])}")
    names = [str(n).strip() if isinstance(n, (str, int)) else "" for n in value]
    if any(not n for n in names):
        raise BundleError(f"{path}: metadata 'names' has an empty or non-text class name; give every class a name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BundleError(f"{path}: metadata 'names' repeats {', '.join(map(repr, dupes[:5]))}; "
                          "class names must be unique")
    return names


def parse_imgsz(path: Path, value: Any) -> tuple[int, int]:
    """(H, W) from an int or a [h, w] / [s] list, each side 1..16384."""
    if isinstance(value, str):
        value = _literal(path, "imgsz", value)
    sides = [value] if isinstance(value, int) else list(value) if isinstance(value, (list, tuple)) else []
    if len(sides) == 1:
        sides *= 2
    if len(sides) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 16384 for s in sides):
        raise BundleError(f"{path}: metadata 'imgsz' must be an int or [H, W] of positive ints, got {value!r}")
    return sides[0], sides[1]


def _dims(value_info: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in value_info.type.tensor_type.shape.dim]


def _dtype(onnx: Any, value_info: Any) -> str:
    return str(onnx.helper.tensor_dtype_to_np_dtype(value_info.type.tensor_type.elem_type).name)


def _load(path: Path) -> Any:
    onnx = require("onnx", "onnx", "reading an ONNX model's metadata")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, truncated files several kinds
        raise BundleError(f"{path} is not a valid ONNX model (truncated or not ONNX: "
                          f"{type(exc).__name__}); re-export it") from exc


def read_metadata(path: str | Path) -> dict[str, str]:
    """The model's ``metadata_props`` as a dict (key -> the string stored)."""
    return {p.key: p.value for p in _load(Path(path)).metadata_props}


def _image_input(path: Path, model: Any, imgsz: tuple[int, int] | None) -> dict[str, Any]:
    onnx = require("onnx", "onnx", "reading an ONNX model's metadata")
    weights = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1:
        raise BundleError(f"{path}: a YOLO detector has one image input, this graph has "
                          f"{len(inputs)} ({', '.join(i.name for i in inputs)})")
    dims = _dims(inputs[0])
    if len(dims) != 4 or dims[1] not in (None, 3):
        raise BundleError(f"{path}: input {inputs[0].name!r} must be an image [1, 3, H, W], got {dims}")
    if dims[0] not in (None, 1):
        raise BundleError(f"{path}: input {inputs[0].name!r} has batch {dims[0]}; the runtime feeds one frame "
                          "at a time: re-export with batch=1")
    fixed = (dims[2], dims[3]) if dims[2] and dims[3] else None
    if imgsz and fixed and imgsz != fixed:
        raise BundleError(f"{path}: imgsz {imgsz[0]}x{imgsz[1]} differs from the graph's fixed input "
                          f"{fixed[0]}x{fixed[1]}; give the graph's size")
    hw = imgsz or fixed
    assert hw is not None  # the caller lists imgsz as missing for a dynamic input
    return {"name": inputs[0].name, "shape": [1, 3, *hw], "dtype": _dtype(onnx, inputs[0])}


def _output(path: Path, model: Any, nc: int) -> dict[str, Any]:
    onnx = require("onnx", "onnx", "reading an ONNX model's metadata")
    outputs = list(model.graph.output)
    dims = _dims(outputs[0]) if outputs else []
    if len(outputs) != 1 or len(dims) != 3 or dims[1] not in (None, 4 + nc):
        nms = " (it looks like an nms=True export: re-export with nms=False)" if len(dims) == 3 and dims[2] == 6 else ""
        got = ", ".join(f"{o.name} {_dims(o)}" for o in outputs) or "none"
        raise BundleError(f"{path}: a YOLO detector with {nc} classes has one output [1, 4 + {nc}, N] = "
                          f"[1, {4 + nc}, N]; this graph has {got}{nms}; check the names (metadata or --names)")
    return {"name": outputs[0].name, "shape": [1, 4 + nc, dims[2]], "dtype": _dtype(onnx, outputs[0])}


def _opset(path: Path, model: Any) -> int:
    opsets = {o.domain: o.version for o in model.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    if not isinstance(opset, int):
        raise BundleError(f"{path}: the graph declares no ai.onnx opset; re-export it")
    return opset


def onnx_bundle_meta(path: str | Path, *, names: Sequence[str] | None = None,
                     imgsz: tuple[int, int] | None = None) -> dict[str, Any]:
    """meta.json (without format/version/files) for the detection ONNX at ``path``.

    ``names`` and ``imgsz`` (H, W) override the file's metadata. Raises BundleError
    naming the missing fields (and how to supply them), an unsupported task, or an
    output layout that does not fit the class names.
    """
    path = Path(path)
    model = _load(path)
    props = {p.key: p.value for p in model.metadata_props}
    task = props.get("task", "detect").strip()
    if task != "detect":
        raise BundleError(f"{path}: Ultralytics task {task!r} is not supported; only 'detect' models "
                          "([1, 4 + nc, N] output) run from a bare ONNX")
    if props.get("channels", "3").strip() != "3":
        raise BundleError(f"{path}: the model reads {props['channels']} channels; camera frames have 3")
    weights = {i.name for i in model.graph.initializer}
    graph_in = [i for i in model.graph.input if i.name not in weights]
    fixed = len(graph_in) == 1 and len(_dims(graph_in[0])) == 4 and all(_dims(graph_in[0])[2:])
    missing = [k for k, given in (("names", names), ("imgsz", imgsz or fixed)) if not given and k not in props]
    if missing:
        raise BundleError(f"{path} is a bare ONNX file, not a bundle folder, and its metadata lacks "
                          f"{' and '.join(missing)} (an Ultralytics export writes them); {_how(path, missing)}")
    classes = parse_names(path, list(names) if names else props["names"])
    size = imgsz or (parse_imgsz(path, props["imgsz"]) if "imgsz" in props else None)
    spec, out = _image_input(path, model, size), _output(path, model, len(classes))
    source: dict[str, Any] = {"onnx": path.name, **{k: props[k] for k in PROVENANCE if k in props}}
    if names or imgsz:
        source["given"] = [k for k, v in (("names", names), ("imgsz", imgsz)) if v]
    return {
        "name": path.stem, "task": "detection", "opset": _opset(path, model),
        "inputs": [spec], "outputs": [out],
        "preprocess": dict(PREPROCESS), "decoder": {**DECODER, "output": out["name"]},
        "classes": classes, "source": source,
    }
