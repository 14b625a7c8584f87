"""Model bundles: a folder with ``model.onnx``, ``meta.json`` and optional extras.

Layout: the files a bundle may hold are the :data:`FILES` table (role ->
default name; ``meta.json`` ``files`` may rename the model files). Every
reader of a bundle (this module, ``info``, the engines, the build functions,
docs/bundles.md) takes the names from that table.

``meta.json`` (format ``edgepilot-bundle``, version 1)::

    {
      "format": "edgepilot-bundle", "version": 1, "name": "tiny-seg",
      "task": "segmentation" | "detection" | "policy",
      "opset": 17,
      "inputs":  [{"name": "image", "shape": [1, 3, 128, 256], "dtype": "float32"}],
      "outputs": [{"name": "class_ids", "shape": [1, 128, 256], "dtype": "uint8"}],
      "preprocess": {"layout": "NCHW", "color": "RGB", "resize": "stretch" | "letterbox",
                     "scale": 0.00392156862745098, "mean": [0.485, 0.456, 0.406],
                     "std": [0.229, 0.224, 0.225], "pad_value": 114},
      "decoder": {"type": "logits" | "class_ids" | "centernet" | "yolo" | "action", ...},
      "classes": ["road", ...], "palette": [[128, 64, 128], ...],
      "files": {"fp32": "model.onnx", "int8": "model.int8.onnx"},   # optional renames
      "source": {"checkpoint_sha256": "...", "trained": false},
      "accuracy": {"fp32": {"mIoU": 0.71}, "int8": {"mIoU": 0.70}}
    }

A dimension may be ``null`` (dynamic) in ``shape``; ``preprocess`` applies to
the first input, which must be the image for image tasks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepilot.runtime.bundle_check import (
    TASK_DECODERS,
    check_consistency,
    check_inside,
    check_schema,
)
from edgepilot.runtime.errors import BundleError
from edgepilot.runtime.onnx_meta import is_onnx_file, onnx_bundle_meta

FORMAT = "edgepilot-bundle"
VERSION = 1
TASKS = TASK_DECODERS
PRECISIONS = ("fp32", "fp16", "int8")

# Role -> default file name inside the bundle folder (what each holds: FILE_ROLES).
FILES: dict[str, str] = {
    "meta": "meta.json",
    "fp32": "model.onnx",
    "fp16": "model.fp16.onnx",
    "int8": "model.int8.onnx",
    "int8_cpu": "model.int8.cpu.onnx",
    "torch": "model.pt2",
    "calibration": "calibration.json",
    "engines": "engines",
}
# Roles meta.json "files" may rename (the model files); the rest keep their names.
RENAMEABLE = ("fp32", "fp16", "int8", "int8_cpu", "torch")
FILE_ROLES: dict[str, str] = {
    "meta": "meta.json, the bundle's description (this schema)",
    "fp32": "FP32 ONNX graph (required)",
    "fp16": "FP16 ONNX graph (inputs/outputs float32), written at export or converted on first use",
    "int8": "Q/DQ INT8 ONNX graph (symmetric signed int8: the layout TensorRT and OpenVINO run)",
    "int8_cpu": "the same INT8 model for onnxruntime's CPU kernels (uint8 asymmetric activations, int8 "
                "per-channel weights); optional, ort on CPU prefers it",
    "torch": "torch.export program for the torch backend (load only from bundles you trust)",
    "calibration": "INT8 calibration record: frames, method, SHA-256",
    "engines": "folder of TensorRT engines keyed by fingerprint, each with its fingerprint .json",
}

DEFAULT_PREPROCESS: dict[str, Any] = {
    "layout": "NCHW",
    "color": "RGB",
    "resize": "stretch",
    "scale": 1.0 / 255.0,
    "mean": [0.0, 0.0, 0.0],
    "std": [1.0, 1.0, 1.0],
    "pad_value": 114,
}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A named tensor: shape with None for dynamic dims, numpy dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


@dataclass(frozen=True, slots=True)
class Bundle:
    """A validated model bundle. ``path`` is the folder; ``meta`` the parsed meta.json."""

    path: Path
    meta: dict[str, Any]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.path.name))

    @property
    def decoder(self) -> dict[str, Any]:
        return dict(self.meta["decoder"])

    @property
    def preprocess(self) -> dict[str, Any]:
        return {**DEFAULT_PREPROCESS, **self.meta.get("preprocess", {})}

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes", []))

    @property
    def palette(self) -> list[list[int]]:
        return [list(c) for c in self.meta.get("palette", [])]

    def path_of(self, role: str) -> Path:
        """Where the file for ``role`` (a :data:`FILES` key) lives in this bundle; it may not exist."""
        if role not in FILES:
            raise KeyError(f"unknown bundle file role {role!r} (one of {', '.join(FILES)})")
        renamed = self.meta.get("files", {}) if role in RENAMEABLE else {}
        return self.path / str(renamed.get(role, FILES[role]))

    def file(self, role: str = "fp32") -> Path:
        """Path of the existing file for ``role``; BundleError saying what to do if the bundle lacks it."""
        path = self.path_of(role)
        check_inside(self.path, path, f"the {role} file")
        if not path.is_file():
            raise BundleError(
                f"bundle {self.path} has no {role} model ({path.name} is missing); "
                "export one with the export tools or choose another precision"
            )
        return path

    def onnx_sha256(self, role: str = "fp32") -> str:
        return file_sha256(self.file(role))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _specs(meta: dict[str, Any], key: str) -> tuple[TensorSpec, ...]:
    """TensorSpecs of a schema-checked tensor list; string and -1 dims are dynamic (None)."""
    return tuple(TensorSpec(str(item["name"]),
                            tuple(d if isinstance(d, int) and d > 0 else None for d in item["shape"]),
                            str(item.get("dtype", "float32")))
                 for item in meta[key])


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_meta(meta: Any, where: Path) -> None:
    """The one validation of meta.json: version, the published schema, then consistency."""
    version = meta.get("version", VERSION) if isinstance(meta, dict) else VERSION
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise BundleError(f"{where}: {FORMAT} version {version} is newer than this edgepilot reads "
                          f"({VERSION}); upgrade edgepilot")
    check_schema(meta, where)
    check_consistency(meta, where)


def load_bundle(path: str | Path, *, check_onnx: bool = True) -> Bundle:
    """Load and validate a bundle folder (or a meta.json path, or a bare YOLO ``.onnx``: :func:`onnx_bundle`).

    With ``check_onnx`` the FP32 ONNX graph is parsed (when the ``onnx`` package is
    installed) and its opset, input names and shapes compared with meta.json.
    Raises BundleError with what is wrong, where, and what to do.
    """
    root = Path(path)
    if root.name == "meta.json":
        root = root.parent
    if not root.exists():
        raise BundleError(f"model bundle {root} does not exist; pass a bundle folder to --model")
    if is_onnx_file(root):
        return onnx_bundle(root, check_onnx=check_onnx)
    if root.is_file():
        raise BundleError(
            f"{root} is a file, not a bundle folder: put it in a folder with a meta.json "
            "(see README, 'Model bundles')"
        )
    meta_path = root / FILES["meta"]
    if not meta_path.is_file():
        raise BundleError(f"bundle {root} has no meta.json; every bundle needs one (README, 'Model bundles')")
    check_inside(root, meta_path, "meta.json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise BundleError(f"{meta_path} is not valid JSON ({exc}); fix or re-export it") from exc
    except OSError as exc:
        raise BundleError(f"{meta_path} cannot be read ({exc.strerror}); check its permissions") from exc
    _check_meta(meta, meta_path)
    bundle = Bundle(root, meta, _specs(meta, "inputs"), _specs(meta, "outputs"))
    bundle.file("fp32")
    if check_onnx:
        check_onnx_graph(bundle)
    return bundle


def onnx_bundle(path: str | Path, *, names: list[str] | None = None, imgsz: tuple[int, int] | None = None,
                check_onnx: bool = True) -> Bundle:
    """A bundle held in memory for a bare detection ONNX that describes itself (``runtime.onnx_meta``).

    No meta.json is written: the bundle's folder is the file's, and the files it may
    derive there are named after the file (``yolov8n.fp16.onnx``, ``engines/``), so
    two models in one folder never share one. Raises BundleError as :func:`load_bundle`.
    """
    onnx_path = Path(path)
    stem = onnx_path.stem
    meta = {"format": FORMAT, "version": VERSION, **onnx_bundle_meta(onnx_path, names=names, imgsz=imgsz),
            "files": {"fp32": onnx_path.name, "fp16": f"{stem}.fp16.onnx", "int8": f"{stem}.int8.onnx",
                      "torch": f"{stem}.pt2"}}
    _check_meta(meta, onnx_path)
    bundle = Bundle(onnx_path.parent, meta, _specs(meta, "inputs"), _specs(meta, "outputs"))
    if check_onnx:
        check_onnx_graph(bundle)
    return bundle


def check_onnx_graph(bundle: Bundle, precision: str = "fp32") -> None:
    """Compare an ONNX file's opset and I/O with meta.json; no-op if ``onnx`` is missing."""
    try:
        import onnx
    except ImportError:
        return
    path = bundle.file(precision)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, truncated files several kinds
        raise BundleError(
            f"{path} is not a valid ONNX model (truncated or not ONNX: {type(exc).__name__}); re-export it"
        ) from exc
    opsets = {o.domain: o.version for o in model.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    if opset != bundle.meta["opset"]:
        raise BundleError(
            f"{path}: graph opset {opset} differs from meta.json opset {bundle.meta['opset']}; "
            "re-export the bundle so they agree"
        )
    _compare_io(path, "input", model.graph.input, bundle.inputs, skip={i.name for i in model.graph.initializer})
    _compare_io(path, "output", model.graph.output, bundle.outputs, skip=set())
    check_external_data(bundle, path, model.graph)


def _tensors(graph: Any) -> Any:
    """Every TensorProto of a graph: initialisers, node attributes and subgraphs, recursively."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _tensors(sub)


def check_external_data(bundle: Bundle, model_path: Path, graph: Any) -> None:
    """Weights an ONNX file keeps in external files must lie inside the bundle folder."""
    for tensor in _tensors(graph):
        for entry in tensor.external_data:
            if entry.key == "location":
                check_inside(bundle.path, model_path.parent / entry.value,
                             f"external data of {model_path.name} (tensor {tensor.name!r})")


def _compare_io(path: Path, kind: str, values: Any, specs: tuple[TensorSpec, ...], skip: set[str]) -> None:
    graph = {v.name: v for v in values if v.name not in skip}
    for spec in specs:
        if spec.name not in graph:
            raise BundleError(
                f"{path}: meta.json {kind} {spec.name!r} is not in the graph (graph has "
                f"{', '.join(sorted(graph)) or 'none'}); fix meta.json"
            )
        dims = graph[spec.name].type.tensor_type.shape.dim
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
        if len(shape) != len(spec.shape) or any(
            a is not None and b is not None and a != b for a, b in zip(shape, spec.shape, strict=True)
        ):
            raise BundleError(
                f"{path}: {kind} {spec.name!r} has shape {list(shape)} in the graph but "
                f"{list(spec.shape)} in meta.json; fix meta.json or re-export"
            )


def write_meta(folder: str | Path, meta: dict[str, Any]) -> Path:
    """Write meta.json (with format/version filled in) and return its path."""
    out = Path(folder) / "meta.json"
    full = {"format": FORMAT, "version": VERSION, **meta}
    out.write_text(json.dumps(full, indent=2) + "\n")
    return out
