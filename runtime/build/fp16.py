"""FP16 graphs: the bundle's ``model.fp16.onnx``, converted from the FP32 graph when missing or stale.

An exporter writes the FP16 graph at export time (with the sidecar below); a
bundle without one gets it converted here on first use by onnxruntime's own
``convert_float_to_float16(keep_io_types=True)`` (inputs and outputs stay
float32). The sidecar ``model.fp16.json`` records the SHA-256 of the FP32
graph it came from, so an FP16 graph is used only while that still matches.
Callable without constructing an engine (exporters, Jetson build scripts).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgepilot.runtime.bundle import Bundle, file_sha256
from edgepilot.runtime.errors import BundleError, require

CONVERTER = "onnxruntime.transformers.float16"


def sidecar_path(bundle: Bundle) -> Path:
    """``model.fp16.json`` beside the FP16 graph: where it came from."""
    return bundle.path_of("fp16").with_suffix(".json")


def write_sidecar(bundle: Bundle, converter: str) -> Path:
    """Record that the FP16 graph was made from the current FP32 graph by ``converter``."""
    path = sidecar_path(bundle)
    src = bundle.file("fp32")
    path.write_text(json.dumps({"source": src.name, "source_sha256": file_sha256(src),
                                "converter": converter}, indent=2) + "\n")
    return path


def fp16_model(bundle: Bundle) -> Path:
    """Path of the bundle's FP16 graph, converting (and caching) it when missing or stale.

    The cache is valid while ``model.fp16.json``'s ``source_sha256`` equals the
    SHA-256 of the FP32 graph. Conversion keeps float32 inputs and outputs.
    """
    src = bundle.file("fp32")
    dst, sidecar = bundle.path_of("fp16"), sidecar_path(bundle)
    digest = file_sha256(src)
    try:
        stored = json.loads(sidecar.read_text()).get("source_sha256")
    except (OSError, ValueError, AttributeError):
        stored = None
    if stored == digest and dst.is_file():
        return dst
    onnx = require("onnx", "onnx", "FP16 conversion")
    float16 = require("onnxruntime.transformers.float16", "onnx", "FP16 conversion")

    try:
        model = onnx.load(str(src))  # type: ignore[attr-defined]
    except Exception as exc:  # protobuf's DecodeError and friends
        raise BundleError(f"{src} is not a valid ONNX model ({type(exc).__name__}); re-export it") from exc
    half = float16.convert_float_to_float16(model, keep_io_types=True)
    try:
        tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
        onnx.save(half, str(tmp))  # type: ignore[attr-defined]
        os.replace(tmp, dst)
        write_sidecar(bundle, CONVERTER)
    except OSError as exc:
        raise BundleError(f"cannot write {dst} ({exc.strerror}); make the bundle folder writable "
                          "or use --precision fp32") from exc
    return dst
