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

from edgepilot.runtime.errors import BundleError

FORMAT = "edgepilot-bundle"
VERSION = 1
TASKS = {
    "segmentation": ("logits", "class_ids"),
    "detection": ("centernet", "yolo"),
    "policy": ("action",),
}
# Tasks whose first input is a camera frame (preprocessed by runtime.preprocess).
IMAGE_TASKS = ("segmentation", "detection")
SUPPORTED_OPSETS = range(11, 24)
DTYPES = ("float32", "float16", "uint8", "int8", "int32", "int64", "bool")
PRECISIONS = ("fp32", "fp16", "int8")

# Role -> default file name inside the bundle folder (what each holds: FILE_ROLES).
FILES: dict[str, str] = {
    "meta": "meta.json",
    "fp32": "model.onnx",
    "fp16": "model.fp16.onnx",
    "int8": "model.int8.onnx",
    "torch": "model.pt2",
    "calibration": "calibration.json",
    "engines": "engines",
}
# Roles meta.json "files" may rename (the model files); the rest keep their names.
RENAMEABLE = ("fp32", "fp16", "int8", "torch")
FILE_ROLES: dict[str, str] = {
    "meta": "meta.json, the bundle's description (this schema)",
    "fp32": "FP32 ONNX graph (required)",
    "fp16": "FP16 ONNX graph (inputs/outputs float32), written at export or converted on first use",
    "int8": "Q/DQ INT8 ONNX graph",
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


def _specs(meta: dict[str, Any], key: str, where: Path) -> tuple[TensorSpec, ...]:
    items = meta.get(key)
    if not isinstance(items, list) or not items:
        raise BundleError(f"{where}: '{key}' must be a non-empty list of {{name, shape, dtype}}")
    specs = []
    for i, item in enumerate(items):
        try:
            name, shape = str(item["name"]), item["shape"]
            dtype = str(item.get("dtype", "float32"))
            dims = tuple(None if d in (None, -1) or isinstance(d, str) else int(d) for d in shape)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: {key}[{i}] needs a name and an integer shape ({exc})") from exc
        if dtype not in DTYPES:
            raise BundleError(f"{where}: {key}[{i}] has unknown dtype {dtype!r} (one of {DTYPES})")
        specs.append(TensorSpec(name, dims, dtype))
    return tuple(specs)


def _check_meta(meta: dict[str, Any], where: Path) -> None:
    if meta.get("format", FORMAT) != FORMAT or int(meta.get("version", VERSION)) > VERSION:
        raise BundleError(f"{where}: not an {FORMAT} v{VERSION} meta.json; upgrade edgepilot")
    task = meta.get("task")
    if task not in TASKS:
        raise BundleError(f"{where}: unknown task {task!r}; expected one of {', '.join(TASKS)}")
    decoder = meta.get("decoder")
    if not isinstance(decoder, dict) or decoder.get("type") not in TASKS[task]:
        raise BundleError(
            f"{where}: decoder.type must be one of {TASKS[task]} for task {task!r}, "
            f"got {decoder.get('type') if isinstance(decoder, dict) else decoder!r}"
        )
    opset = meta.get("opset")
    if not isinstance(opset, int) or opset not in SUPPORTED_OPSETS:
        raise BundleError(
            f"{where}: opset {opset!r} is not supported (need {SUPPORTED_OPSETS.start}.."
            f"{SUPPORTED_OPSETS.stop - 1}); re-export with a supported opset"
        )
    classes, palette = meta.get("classes", []), meta.get("palette", [])
    if palette and len(palette) != len(classes):
        raise BundleError(f"{where}: {len(classes)} classes but {len(palette)} palette colours")
    if task != "policy" and not classes:
        raise BundleError(f"{where}: task {task!r} needs a 'classes' list")


def _check_image_input(bundle: Bundle, where: Path) -> None:
    """An image task's first input must be a 3-channel image in the declared layout."""
    if bundle.task not in IMAGE_TASKS:
        return
    spec, layout = bundle.inputs[0], str(bundle.preprocess.get("layout", "NCHW")).upper()
    if len(spec.shape) != 4:
        raise BundleError(f"{where}: input {spec.name!r} of a {bundle.task} bundle must be an image "
                          f"[N, C, H, W] or [N, H, W, C], got shape {list(spec.shape)}; fix meta.json 'inputs'")
    channels = spec.shape[1] if layout == "NCHW" else spec.shape[3]
    if channels not in (None, 3):
        raise BundleError(f"{where}: input {spec.name!r} has {channels} channels in layout {layout}, but camera "
                          "frames have 3; fix meta.json 'inputs' or 'preprocess.layout'")


def load_bundle(path: str | Path, *, check_onnx: bool = True) -> Bundle:
    """Load and validate a bundle folder (or a meta.json path).

    With ``check_onnx`` the FP32 ONNX graph is parsed (when the ``onnx`` package is
    installed) and its opset, input names and shapes compared with meta.json.
    Raises BundleError with what is wrong, where, and what to do.
    """
    root = Path(path)
    if root.name == "meta.json":
        root = root.parent
    if not root.exists():
        raise BundleError(f"model bundle {root} does not exist; pass a bundle folder to --model")
    if root.is_file():
        raise BundleError(
            f"{root} is a file, not a bundle folder: put it in a folder with a meta.json "
            "(see README, 'Model bundles')"
        )
    meta_path = root / FILES["meta"]
    if not meta_path.is_file():
        raise BundleError(f"bundle {root} has no meta.json; every bundle needs one (README, 'Model bundles')")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path} is not valid JSON ({exc}); fix or re-export it") from exc
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_path} must hold a JSON object")
    _check_meta(meta, meta_path)
    bundle = Bundle(root, meta, _specs(meta, "inputs", meta_path), _specs(meta, "outputs", meta_path))
    _check_image_input(bundle, meta_path)
    bundle.file("fp32")
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
