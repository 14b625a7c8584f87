"""Parity: does the ONNX graph under ONNX Runtime compute what the torch module computes?

Both run on the same preprocessed real frames. Reported (and recorded in
meta.json ``parity``):

- ``max_abs_error``: the largest absolute difference of the raw outputs
  (segmentation: the logits the in-graph ArgMax reads, exposed as an extra
  output of a copy of the graph; detection: heatmap, size and offset), and
  ``max_abs_ref`` the largest magnitude of the torch outputs, its scale;
- segmentation ``argmax_agreement``: share of pixels whose class id agrees;
- detection ``boxes_matched``: share of torch detections (3x3 peaks at or above
  ``DETECTION_SCORE`` score, top 100) with an ORT detection of the same class at
  IoU >= 0.5, and of ORT detections matched back (the lower of the two).

The FP32 graph must pass :data:`FP32_TOLERANCE`; FP16 and INT8 numbers are
recorded for reading beside their accuracy, not gated (their accuracy is).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgepilot.export.frames import Frames, InputFeeder
from edgepilot.perception.models.centernet import decode
from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.errors import EdgepilotError, require

# FP32 ONNX vs torch: max abs error <= rel * max(1, max |torch output|), agreement / matches >= min_share
FP32_TOLERANCE = {"rel": 1e-3, "min_share": 0.995}
DETECTION_SCORE = 0.1
MATCH_IOU = 0.5


def ort_session(model: Path | Any, extra_outputs: Sequence[str] = (), threads: int = 1) -> Any:
    """A CPU InferenceSession of an ONNX file or ModelProto, with ``extra_outputs`` exposed."""
    ort: Any = require("onnxruntime", "onnx", "parity checks")
    onnx: Any = require("onnx", "onnx", "parity checks")
    proto = onnx.load(str(model)) if isinstance(model, (str, Path)) else model
    if extra_outputs:
        copy = type(proto)()
        copy.CopyFrom(proto)
        copy.graph.output.extend(onnx.ValueInfoProto(name=n) for n in extra_outputs)
        proto = copy
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(proto.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def argmax_input(model: Path | Any) -> str:
    """Name of the tensor the graph's final ArgMax reads (the logits of an argmax-exported net)."""
    onnx: Any = require("onnx", "onnx", "parity checks")
    proto = onnx.load(str(model)) if isinstance(model, (str, Path)) else model
    names = [n.input[0] for n in proto.graph.node if n.op_type == "ArgMax"]
    if not names:
        raise EdgepilotError(f"{model}: no ArgMax node; cannot expose the logits for parity", exit_code=1)
    return str(names[-1])


def ort_outputs(session: Any, name: str, x: np.ndarray) -> list[np.ndarray]:
    """Every output of ``session`` for input ``name`` = ``x`` (parity's one ORT call; tests perturb it)."""
    return [np.asarray(o) for o in session.run(None, {name: x})]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) boxes -> (N, M) IoU."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area = lambda z: (z[:, 2] - z[:, 0]).clip(0) * (z[:, 3] - z[:, 1]).clip(0)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def _matched(ref: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray]) -> tuple[int, int]:
    """(ref boxes with a same-class got box at IoU >= MATCH_IOU, count of ref boxes)."""
    if len(ref[0]) == 0:
        return 0, 0
    if len(got[0]) == 0:
        return 0, len(ref[0])
    iou = _iou(ref[0], got[0]) * (ref[1][:, None] == got[1][None, :])
    return int((iou.max(axis=1) >= MATCH_IOU).sum()), len(ref[0])


def _boxes(outs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    heat, size, off = (torch.from_numpy(np.asarray(o, np.float32)) for o in outs[:3])
    (boxes, _, cls), = decode(heat, size, off, 100, DETECTION_SCORE)
    return boxes.numpy(), cls.numpy()


class _Tally:
    def __init__(self) -> None:
        self.err, self.scale, self.agree, self.total, self.frames = 0.0, 0.0, 0, 0, 0

    def raw(self, ref: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> None:
        for r, g in zip(ref, got, strict=True):
            self.err = max(self.err, float(np.abs(r.astype(np.float64) - g.astype(np.float64)).max()))
            self.scale = max(self.scale, float(np.abs(r).max()))

    def share(self, hits: int, total: int) -> None:
        self.agree, self.total = self.agree + hits, self.total + total


def measure_parity(module: torch.nn.Module, model: Path | Any, bundle: Bundle, fr: Frames,
                   threads: int = 1) -> dict[str, Any]:
    """Parity numbers of ONNX graph ``model`` (file or proto) against ``module`` on ``fr``'s frames."""
    seg = bundle.task == "segmentation"
    extra = [argmax_input(model)] if seg else []
    session = ort_session(model, extra, threads)
    feed = InputFeeder(bundle)
    t, shares = _Tally(), _Tally()
    with torch.inference_mode():
        for s in fr.samples():
            x, _ = feed(s.image)
            ref_raw = module(torch.from_numpy(x))
            ref = [r.numpy() for r in (ref_raw if isinstance(ref_raw, (tuple, list)) else [ref_raw])]
            got = ort_outputs(session, feed.name, x)
            t.frames += 1
            if seg:
                ids, logits = got[0], got[-1]
                t.raw(ref, [logits.astype(np.float32)])
                ref_ids = ref[0].argmax(1).astype(np.uint8).reshape(-1)
                t.share(int((ids.reshape(-1) == ref_ids).sum()), ref_ids.size)
            else:
                t.raw(ref, got[:3])
                a, b = _boxes(ref), _boxes(got)
                t.share(*_matched(a, b))
                shares.share(*_matched(b, a))
    out: dict[str, Any] = {"frames": t.frames, "max_abs_error": t.err, "max_abs_ref": t.scale}
    if seg:
        out["argmax_agreement"] = t.agree / max(t.total, 1)
    else:
        both = [h / n for h, n in ((t.agree, t.total), (shares.agree, shares.total)) if n]
        out["boxes_matched"] = min(both) if both else 1.0
        out["boxes"] = t.total
    return out


def check_fp32(numbers: dict[str, Any], where: Path) -> dict[str, Any]:
    """``numbers`` with ``passed`` and ``tolerance``; EdgepilotError (exit 1) with them when off."""
    bound = FP32_TOLERANCE["rel"] * max(1.0, numbers["max_abs_ref"])
    share_key = "argmax_agreement" if "argmax_agreement" in numbers else "boxes_matched"
    ok = numbers["max_abs_error"] <= bound and numbers[share_key] >= FP32_TOLERANCE["min_share"]
    out = {**numbers, "tolerance": {"max_abs_error": bound, share_key: FP32_TOLERANCE["min_share"]},
           "passed": bool(ok)}
    if not ok:
        raise EdgepilotError(
            f"{where}: ONNX Runtime disagrees with PyTorch on {numbers['frames']} frames: max abs error "
            f"{numbers['max_abs_error']:.3g} (allowed {bound:.3g}, outputs up to {numbers['max_abs_ref']:.3g}), "
            f"{share_key} {numbers[share_key]:.4f} (need >= {FP32_TOLERANCE['min_share']}); "
            "the export is wrong: check the model's ops against opset 17", exit_code=1)
    return out
