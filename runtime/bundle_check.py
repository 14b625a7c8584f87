"""Validating a bundle's ``meta.json``: the published schema first, then what a schema cannot say.

:func:`check_schema` validates against ``bundle.schema.json`` (JSON Schema
2020-12, beside this file; it documents the format for other tools too) with
``jsonschema``. :func:`check_consistency` then checks what ties fields to one
another and to the declared tensors: the decoder fits the task, every output
a decoder names exists with the rank and size it needs, the class count fits
the output channels (or the class-id range), there is a palette colour per
class, mean/std have one value per input channel, and every file a bundle
names (symlinks included) stays inside the bundle folder. Each failure is a
:class:`BundleError` (exit 2) naming the field.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgepilot.runtime.errors import BundleError, require

SCHEMA_FILE = Path(__file__).with_name("bundle.schema.json")
TASK_DECODERS = {
    "segmentation": ("logits", "class_ids"),
    "detection": ("centernet", "yolo"),
    "policy": ("action",),
}
# Tasks whose first input is a camera frame (preprocessed by runtime.preprocess).
IMAGE_TASKS = ("segmentation", "detection")


@lru_cache(maxsize=1)
def _validator() -> Any:
    jsonschema = require("jsonschema", "core", "bundle validation")
    schema = json.loads(SCHEMA_FILE.read_text())
    return jsonschema.Draft202012Validator(schema)


def schema() -> dict[str, Any]:
    """The published meta.json schema (a JSON object)."""
    return dict(_validator().schema)


def _location(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def check_schema(meta: Any, where: Path) -> None:
    """Raise BundleError for the most relevant schema violation of ``meta``."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(meta))
    if error is not None:
        raise BundleError(f"{where}: {_location(error.absolute_path)}: {error.message} "
                          "(schema: runtime/bundle.schema.json, docs/bundles.md)")


def _shape(specs: list[dict[str, Any]], name: str, where: Path, role: str) -> list[Any]:
    for spec in specs:
        if spec["name"] == name:
            return list(spec["shape"])
    names = ", ".join(s["name"] for s in specs)
    raise BundleError(f"{where}: decoder.{role} names output {name!r}, but the outputs are {names}; fix meta.json")


def _fixed(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def _need(shape: list[Any], rank: int, channels: int | None, where: Path, what: str) -> None:
    if len(shape) != rank:
        raise BundleError(f"{where}: {what} must have rank {rank}, meta.json declares shape {shape}")
    if channels is not None and _fixed(shape[1]) not in (None, channels):
        raise BundleError(f"{where}: {what} must have {channels} channels (dim 1), meta.json declares {shape}")


def _check_decoder(meta: dict[str, Any], where: Path) -> None:
    dec, outputs = meta["decoder"], meta["outputs"]
    kind, n = dec["type"], len(meta.get("classes", []))
    first = outputs[0]["name"]
    if kind == "logits":
        _need(_shape(outputs, dec.get("output", first), where, "output"), 4, n, where, "logits output")
    elif kind == "class_ids":
        shape = _shape(outputs, dec.get("output", first), where, "output")
        if len(shape) not in (3, 4) or (len(shape) == 4 and _fixed(shape[1]) not in (None, 1)):
            raise BundleError(f"{where}: class_ids output must be [1, h, w] or [1, 1, h, w], got {shape}")
        if n > 256:
            raise BundleError(f"{where}: {n} classes do not fit the uint8 class-id maps (at most 256)")
    elif kind == "centernet":
        _need(_shape(outputs, dec.get("heatmap", "heatmap"), where, "heatmap"), 4, n, where, "centernet heatmap")
        _need(_shape(outputs, dec.get("size", "size"), where, "size"), 4, 2, where, "centernet size")
        if "offset" in dec:
            _need(_shape(outputs, dec["offset"], where, "offset"), 4, 2, where, "centernet offset")
    elif kind == "yolo":
        _need(_shape(outputs, dec.get("output", first), where, "output"), 3, 4 + n, where, "yolo output [1, 4 + nc, N]")
    else:
        names = dec.get("names", ["steer", "throttle"])
        _need(_shape(outputs, dec.get("output", first), where, "output"), 2, len(names), where, "action output")
        for key in ("low", "high"):
            if key in dec and len(dec[key]) != len(names):
                raise BundleError(f"{where}: decoder.{key} has {len(dec[key])} values for {len(names)} actions")


def _check_classes(meta: dict[str, Any], where: Path) -> None:
    task, classes, palette = meta["task"], meta.get("classes", []), meta.get("palette", [])
    if task != "policy" and not classes:
        raise BundleError(f"{where}: task {task!r} needs a 'classes' list")
    if palette and len(palette) != len(classes):
        raise BundleError(f"{where}: {len(classes)} classes but {len(palette)} palette colours")


def _check_image_input(meta: dict[str, Any], where: Path) -> None:
    """An image task's first input is a 3-channel image in the declared layout, normalised per channel."""
    if meta["task"] not in IMAGE_TASKS:
        return
    pre, spec = meta.get("preprocess", {}), meta["inputs"][0]
    shape, layout = spec["shape"], pre.get("layout", "NCHW")
    if len(shape) != 4:
        raise BundleError(f"{where}: input {spec['name']!r} of a {meta['task']} bundle must be an image "
                          f"[N, C, H, W] or [N, H, W, C], got shape {shape}; fix meta.json 'inputs'")
    channels = _fixed(shape[1 if layout == "NCHW" else 3])
    if channels not in (None, 3):
        raise BundleError(f"{where}: input {spec['name']!r} has {channels} channels in layout {layout}, but "
                          "camera frames have 3; fix meta.json 'inputs' or 'preprocess.layout'")
    for key in ("mean", "std"):
        if key in pre and len(pre[key]) != 3:
            raise BundleError(f"{where}: preprocess.{key} has {len(pre[key])} values for the 3 input "
                              "channels; give one per channel")


def check_consistency(meta: dict[str, Any], where: Path) -> None:
    """What the schema cannot express (``meta`` already passed :func:`check_schema`)."""
    task, kind = meta["task"], meta["decoder"]["type"]
    if kind not in TASK_DECODERS[task]:
        raise BundleError(f"{where}: decoder.type must be one of {TASK_DECODERS[task]} for task {task!r}, got {kind!r}")
    _check_classes(meta, where)
    _check_image_input(meta, where)
    _check_decoder(meta, where)


def check_inside(root: Path, path: Path, what: str) -> None:
    """``path`` (after resolving symlinks) must lie inside the bundle folder ``root``."""
    real, base = path.resolve(), root.resolve()
    if real != base and base not in real.parents:
        raise BundleError(f"bundle {root}: {what} {path.name} resolves to {real}, outside the bundle folder; "
                          "copy the file into the bundle instead of linking to it")
