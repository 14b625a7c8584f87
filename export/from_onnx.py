"""A detection ONNX you bring (Ultralytics YOLOv8/YOLO11) -> a bundle folder (``edgepilot export --from-onnx``).

The runtime can already run such a file in place (``runtime.onnx_meta``);
this writes it out as an ordinary bundle to ship or edit: the ONNX copied to
``model.onnx``, ``meta.json`` made from the file's metadata (or the ``names`` /
``imgsz`` given), checked by ``load_bundle`` like every bundle, and by default
``model.fp16.onnx`` with its sidecar, as :func:`~edgepilot.export.bundle.export_checkpoint`
writes it, so the runtime never converts on a device. Needs onnx and
onnxruntime (the ``onnx`` extra), not torch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from edgepilot.export.outdir import prepare_out
from edgepilot.runtime.build.fp16 import fp16_model
from edgepilot.runtime.bundle import FILES, file_sha256, load_bundle, write_meta
from edgepilot.runtime.errors import EdgepilotError, require
from edgepilot.runtime.onnx_meta import is_onnx_file, onnx_bundle_meta, parse_names


def read_names(spec: str) -> list[str]:
    """``--names``: a comma list (``car,truck``) or a file: one name per line, or YAML/JSON holding a
    ``names`` list or ``{index: name}`` dict (an Ultralytics ``data.yaml``). EdgepilotError (exit 2) if bad."""
    path = Path(spec)
    if not path.is_file():
        return [n.strip() for n in spec.split(",")]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgepilotError(f"--names {spec}: cannot read it ({exc})", exit_code=2) from exc
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        try:
            data: Any = yaml.safe_load(text)  # JSON is YAML
        except yaml.YAMLError as exc:
            raise EdgepilotError(f"--names {spec} is not valid YAML/JSON ({exc})", exit_code=2) from exc
        value = data.get("names") if isinstance(data, dict) else data
        return parse_names(path, value)
    return [line.strip() for line in text.splitlines() if line.strip()]


def _check_single_file(path: Path) -> None:
    """Weights kept in external data files would not travel with the copy: refuse them."""
    onnx: Any = require("onnx", "onnx", "exporting from ONNX")
    model = onnx.load(str(path), load_external_data=False)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise EdgepilotError(f"{path} keeps weights in external data files; save it as one file "
                             "(onnx.save(model, path, save_as_external_data=False)) and export again", exit_code=2)


def export_from_onnx(onnx_path: str | Path, out: str | Path, *, names: list[str] | None = None,
                     imgsz: tuple[int, int] | None = None, fp16: bool = True, force: bool = False) -> Path:
    """Write bundle ``out`` from the detection ONNX ``onnx_path``; returns ``out``.

    ``names`` / ``imgsz`` (H, W) override or supply the file's Ultralytics metadata.
    Everything is checked before ``out`` is touched: BundleError (exit 2) for missing
    metadata, a task other than ``detect`` or an output that does not fit the names;
    EdgepilotError (exit 2) for a non-empty ``out`` without ``force``.
    """
    src, out = Path(onnx_path), Path(out)
    if not is_onnx_file(src):
        raise EdgepilotError(f"--from-onnx {src}: no such .onnx file", exit_code=2)
    meta = onnx_bundle_meta(src, names=names, imgsz=imgsz)
    _check_single_file(src)
    prepare_out(out, force)
    dst = out / FILES["fp32"]
    shutil.copyfile(src, dst)
    meta["source"] = {**meta["source"], "onnx_sha256": file_sha256(dst)}
    write_meta(out, meta)
    bundle = load_bundle(out)
    if fp16:
        fp16_model(bundle)
    return out


def summary(out: Path) -> str:
    """One line for the CLI: what was written."""
    meta = json.loads((out / FILES["meta"]).read_text())
    spec = meta["inputs"][0]["shape"]
    files = sorted(p.name for p in out.iterdir() if p.suffix in (".onnx", ".json"))
    return (f"wrote {out} ({meta['task']}, {len(meta['classes'])} classes, input {spec[2]}x{spec[3]}, "
            f"opset {meta['opset']}): {', '.join(files)}")
