"""``edgepilot info``: versions, importable backends and devices, and a bundle summary.

Every probe is guarded: a missing or broken backend is reported, never raised,
so ``info`` is the first thing to run on a new edge device.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
from importlib import metadata
from typing import Any

NAME = "info"
HELP = "show versions, available backends/devices and (with --model) a bundle summary"
DESCRIPTION = """Show what this installation can run.

  edgepilot info                      versions, backends (torch/CUDA, onnxruntime providers, TensorRT,
                                      the Triton client)
  edgepilot info --model BUNDLE       ... plus the validated bundle: task, I/O, decoder, classes, files
  edgepilot info --json               machine-readable output
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="BUNDLE", help="a model bundle folder to validate and summarise")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _probe(module: str) -> tuple[Any, dict[str, Any]]:
    """Import ``module``; return it (or None) and {"installed", "version" | "error"}."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return None, {"installed": False, "error": str(exc).splitlines()[0][:160]}
    except Exception as exc:  # a broken install (bad CUDA libs) must not break info
        return None, {"installed": False, "error": f"{type(exc).__name__}: {str(exc)[:160]}"}
    return mod, {"installed": True, "version": str(getattr(mod, "__version__", "unknown"))}


def backends() -> dict[str, dict[str, Any]]:
    """Which engine backends can be imported here, with device details."""
    torch, t = _probe("torch")
    if torch is not None:
        t["cuda"] = bool(torch.cuda.is_available())
        t["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if t["cuda"] else []
    ort, o = _probe("onnxruntime")
    if ort is not None:
        o["providers"] = list(ort.get_available_providers())
    ov, v = _probe("openvino")
    if ov is not None:
        v["devices"] = list(ov.Core().available_devices)
    _, trt = _probe("tensorrt")
    _, tc = _probe("tritonclient.grpc")  # the triton backend's client (the server runs elsewhere)
    if tc["installed"]:
        tc["version"] = _version("tritonclient") or "unknown"
    return {"null": {"installed": True}, "torch": t, "onnxruntime": o, "openvino": v, "tensorrt": trt,
            "tritonclient": tc}


def auto_choice(model: str | None = None) -> dict[str, str]:
    """What ``--backend auto`` does on this CPU per precision: the bundle's stored measurements
    (``engines/auto.json``) when ``model`` has any, else how it will choose."""
    from edgepilot.runtime.bundle import PRECISIONS, load_bundle
    from edgepilot.runtime.engines import auto, choose_backend

    stored: dict[str, list[dict[str, Any]]] = {}
    if model is not None:
        for rec in auto.records(load_bundle(model)).values():
            if isinstance(rec, dict) and rec.get("precision") in PRECISIONS and isinstance(rec.get("p50_ms"), dict):
                stored.setdefault(rec["precision"], []).append(rec)
    out = {}
    for p in PRECISIONS:
        candidates = [name for name, _ in choose_backend(p, "cpu")]
        if stored.get(p):
            out[p] = "; ".join(f"{r['backend']} measured fastest here {r['measured']} ("
                               + ", ".join(f"{n} {v:.2f} ms" for n, v in r["p50_ms"].items()) + ")"
                               for r in stored[p])
        elif len(candidates) > 1:
            out[p] = (f"measured at the first load of a bundle among {', '.join(candidates)} "
                      f"(without measuring: {candidates[0]})")
        else:
            out[p] = "{} ({})".format(*choose_backend(p, "cpu")[0])
    return out


def versions() -> dict[str, str | None]:
    import cv2
    import numpy as np

    return {"edgepilot": _version("edgepilot") or "source tree (not installed)",
            "python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__}


def bundle_summary(path: str) -> dict[str, Any]:
    """Validate a bundle (BundleError on failure) and describe it."""
    from edgepilot.runtime.bundle import FILES, load_bundle

    bundle = load_bundle(path)
    roles = [r for r in FILES if r not in ("meta", "engines")]
    files = {role: bundle.path_of(role).name for role in roles}
    present = {role: bundle.path_of(role).is_file() for role in roles}
    precisions = ["fp32", "fp16"] + (["int8"] if present["int8"] else [])
    engines = sorted(p.name for p in bundle.path_of("engines").glob("*.engine"))
    return {
        "path": str(bundle.path), "name": bundle.name, "task": bundle.task, "opset": bundle.meta["opset"],
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in bundle.inputs],
        "outputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in bundle.outputs],
        "decoder": bundle.decoder, "classes": bundle.classes,
        "files": {key: {"file": name, "present": present[key]} for key, name in files.items()},
        "precisions": precisions, "torch_program": present.get("torch", False),
        "cached_engines": engines, "accuracy": bundle.meta.get("accuracy", {}),
    }


def _shape(spec: dict[str, Any]) -> str:
    dims = ["?" if d is None else str(d) for d in spec["shape"]]
    return f"{spec['name']} [{', '.join(dims)}] {spec['dtype']}"


def _text(report: dict[str, Any]) -> str:
    lines = [f"{k}: {v}" for k, v in report["versions"].items()]
    lines.append("backends:")
    for name, b in report["backends"].items():
        state = b.get("version", "available") if b["installed"] else f"not installed ({b['error']})"
        extra = ""
        if "cuda" in b:
            extra = f", CUDA: {', '.join(b['gpus']) if b['cuda'] else 'no'}"
        if "providers" in b:
            extra = f", providers: {', '.join(b['providers'])}"
        if "devices" in b:
            extra = f", devices: {', '.join(b['devices'])}"
        lines.append(f"  {name}: {state}{extra}")
    lines.append("--backend auto on cpu:")
    lines += [f"  {p}: {choice}" for p, choice in report["auto"].items()]
    m = report.get("bundle")
    if m:
        lines += [f"bundle: {m['name']} ({m['path']})", f"  task: {m['task']}, opset {m['opset']}",
                  *(f"  input:  {_shape(s)}" for s in m["inputs"]),
                  *(f"  output: {_shape(s)}" for s in m["outputs"]),
                  f"  decoder: {json.dumps(m['decoder'])}",
                  f"  classes ({len(m['classes'])}): {', '.join(m['classes'])}",
                  "  files: " + ", ".join(f"{k}={v['file']}{'' if v['present'] else ' (missing)'}"
                                          for k, v in m["files"].items()),
                  f"  precisions: {', '.join(m['precisions'])}"]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    # The bundle is validated first so a bad --model fails before the slow backend imports.
    summary = bundle_summary(args.model) if args.model else None
    report: dict[str, Any] = {"versions": versions(), "backends": backends(), "auto": auto_choice(args.model)}
    if summary is not None:
        report["bundle"] = summary
    print(json.dumps(report, indent=2) if args.json else _text(report))
    return 0
