"""Checkpoint -> checked model bundle: ONNX (FP32, FP16, INT8 Q/DQ), model.pt2 and meta.json.

:func:`export_checkpoint` is the whole pipeline, each step refusing early:

1. the output folder (empty, or ``force``), INT8 inputs (real ``calib`` frames
   and ``val_data`` to choose by) and the checkpoint;
2. ONNX opset 17 with named inputs/outputs plus ``model.pt2``
   (:func:`~edgepilot.export.torch_export.export_bundle`), cleaned by onnxslim;
3. parity of ONNX Runtime against PyTorch on real frames (fails, exit 1, when off);
4. ``model.fp16.onnx`` with its sidecar (the runtime never reconverts);
5. INT8 (:mod:`~edgepilot.export.quantize`), when asked;
6. accuracy per precision on ``val_data`` and parity per precision, into meta.json.

Segmentation exports the argmax inside the graph (``class_ids`` uint8): the
host then reads one byte per pixel instead of C float32 logits and skips its
own argmax, the per-frame saving that matters on an edge device; FP16 and INT8
keep the ArgMax and its Cast in the graph (both run on their float or
dequantised input), and parity reads the logits the ArgMax consumes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from edgepilot.export import parity, quantize
from edgepilot.export.accuracy import measure_accuracy
from edgepilot.export.frames import Frames, frames
from edgepilot.export.outdir import WRITTEN as WRITTEN
from edgepilot.export.outdir import prepare_out as prepare_out
from edgepilot.export.torch_export import export_bundle
from edgepilot.perception.train.build import bundle_meta, load_model
from edgepilot.perception.train.config import DetConfig, TrainConfig
from edgepilot.runtime.build.fp16 import fp16_model
from edgepilot.runtime.bundle import FILES, Bundle, load_bundle, write_meta
from edgepilot.runtime.errors import EdgepilotError, require
from edgepilot.runtime.outputs import write_text_atomic
from edgepilot.runtime.progress import progress

TASKS = {"seg": "segmentation", "det": "detection"}
OPSET = 17
PARITY_FRAMES = 8


def _frames_for(task: str, val_data: Sequence[str | Path] | None, calib: Sequence[str | Path] | None,
                int8: bool) -> tuple[Frames | None, Frames | None, Frames]:
    seg = task == "segmentation"
    val, cal = frames(val_data, labels=seg), frames(calib, labels=False)
    if int8 and cal is None:
        raise EdgepilotError("--int8 needs real calibration frames: pass --calib DIR (datagen folders); "
                             "calibrating on random data is refused", exit_code=2)
    if int8 and val is None:
        raise EdgepilotError("--int8 needs --val DIR to choose the calibration method by accuracy", exit_code=2)
    real = val or cal
    if real is None:
        raise EdgepilotError("parity needs real frames: pass --val DIR (datagen folders)", exit_code=2)
    return val, cal, Frames(real.folders, labels=False, limit=PARITY_FRAMES)


def _onnx(model: torch.nn.Module, cfg: TrainConfig, task: str, out: Path) -> Bundle:
    """model.onnx (slimmed), model.pt2 and a first meta.json; the validated bundle."""
    onnx: Any = require("onnx", "onnx", "exporting ONNX")
    onnxslim: Any = require("onnxslim", "onnx", "cleaning the exported graph")
    seg = task == "segmentation"
    meta = bundle_meta(cfg, argmax=seg)
    export_bundle(model, torch.zeros(1, 3, cfg.height, cfg.width), out, meta, argmax=seg, opset=OPSET)
    path = out / FILES["fp32"]
    onnx.save(onnxslim.slim(onnx.load(str(path))), str(path))
    return load_bundle(out)


def _accuracy(bundle: Bundle, cfg: TrainConfig, val: Frames, precision: str, threads: int) -> dict[str, Any]:
    kw = ({"min_size": cfg.min_size, "score_threshold": cfg.score_threshold}
          if isinstance(cfg, DetConfig) else {})
    return measure_accuracy(bundle, precision, val, threads=threads, **kw)


def export_checkpoint(ckpt: str | Path, task: str, out: str | Path, *, calib: Sequence[str | Path] | None = None,
                      int8: bool = False, val_data: Sequence[str | Path] | None = None, force: bool = False,
                      methods: tuple[str, ...] = quantize.METHODS, show_progress: bool = True,
                      threads: int = 1) -> Path:
    """Export checkpoint ``ckpt`` (``best.pt``/``last.pt`` of ``task`` "seg" or "det") to bundle ``out``.

    ``val_data`` (datagen folders) gives the parity frames and the accuracy per precision;
    ``calib`` (datagen folders) the INT8 calibration frames. Raises EdgepilotError: exit 2 for
    bad input (non-empty ``out`` without ``force``, ``int8`` without ``calib``/``val_data``,
    no real frames at all), exit 1 when ONNX Runtime disagrees with PyTorch. Returns ``out``.
    """
    if task not in TASKS:
        raise EdgepilotError(f"unknown task {task!r}: choose {' or '.join(TASKS)}", exit_code=2)
    out = Path(out)
    full_task = TASKS[task]
    val, cal, par = _frames_for(full_task, val_data, calib, int8)
    prepare_out(out, force)
    model, cfg = load_model(ckpt, task)
    precisions = ["fp32", "fp16"] + (["int8"] if int8 else [])
    bar = progress(3 + 2 * (len(precisions) - 1) + (len(methods) + 1 if int8 else 0), "export", "step",
                   enabled=show_progress)
    try:
        torch.set_num_threads(threads)
        bundle = _onnx(model, cfg, full_task, out)
        bar.update()
        numbers = {"fp32": parity.check_fp32(parity.measure_parity(model, bundle.file("fp32"), bundle, par, threads),
                                             bundle.file("fp32"))}
        bar.update()
        fp16_model(bundle)
        accuracy: dict[str, Any] = {}
        if val is not None:
            accuracy["fp32"] = _accuracy(bundle, cfg, val, "fp32", threads)
        bar.update()
        record = None
        if int8:
            assert cal is not None and val is not None
            record = quantize.select_int8(bundle, cal, accuracy["fp32"],
                                          lambda: _accuracy(bundle, cfg, val, "int8", threads),
                                          methods=methods, tick=bar.update)
        for p in precisions[1:]:
            numbers[p] = parity.measure_parity(model, bundle.file(p), bundle, par, threads)
            bar.update()
            if val is not None:
                accuracy[p] = record["accuracy"] if p == "int8" and record else _accuracy(bundle, cfg, val, p, threads)
            bar.update()
    finally:
        bar.close()
    return _finish(bundle, ckpt, numbers, accuracy, record)


def _finish(bundle: Bundle, ckpt: str | Path, numbers: dict[str, Any], accuracy: dict[str, Any],
            record: dict[str, Any] | None) -> Path:
    meta = {k: v for k, v in bundle.meta.items() if k not in ("format", "version")}
    meta["source"] = {**meta.get("source", {}), "checkpoint": str(ckpt)}
    meta["parity"] = numbers
    if accuracy:
        meta["accuracy"] = accuracy
    if record is not None:
        calib = {k: v for k, v in record.items() if k != "accuracy"}
        meta["calibration"] = calib
        write_text_atomic(bundle.path_of("calibration"), json.dumps(calib, indent=2) + "\n")
    write_meta(bundle.path, meta)
    load_bundle(bundle.path)
    return bundle.path
