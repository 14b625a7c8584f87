"""Numerical parity of the CPU backends on one tiny untrained net (ONNX + torch program).

Writes ``benchmarks/results/parity_cpu.json``: max |ort - torch| of the fp32 logits,
and ort fp16 vs fp32 (max abs diff, argmax agreement). The tests assert tolerances
(``tests/runtime/test_engines*.py``); this records the measured values.

Run: ``PYTHONPATH=. python benchmarks/parity_cpu.py``
"""

from __future__ import annotations

import datetime
import json
import tempfile
from pathlib import Path

import numpy as np

from edgepilot.runtime.outputs import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "parity_cpu.json"


def main() -> None:
    from edgepilot.export.tiny_torch import torch_segmentation_bundle
    from edgepilot.runtime.engines import load_engine

    hw = (128, 256)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = torch_segmentation_bundle(Path(tmp) / "seg", hw=hw, argmax=False)
        ort32, torch32 = load_engine(bundle, "ort", hw=hw), load_engine(bundle, "torch", hw=hw)
        ort16 = load_engine(bundle, "ort", "fp16", hw=hw)
        feeds = ort32.sample_inputs(seed=0)
        ref = ort32.infer(feeds)["logits"].copy()
        via_torch = torch32.infer(feeds)["logits"]
        half = ort16.infer(feeds)["logits"]
    doc = {
        "benchmark": "parity_cpu", "command": "PYTHONPATH=. python benchmarks/parity_cpu.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": f"edgepilot.export.tiny_torch.torch_segmentation_bundle(hw={hw}, argmax=False), random weights, seed 0",
        "ort_vs_torch_fp32_max_abs": float(np.abs(ref - via_torch).max()),
        "ort_fp16_vs_fp32_max_abs": float(np.abs(ref - half).max()),
        "ort_fp16_vs_fp32_argmax_agreement": float((ref.argmax(1) == half.argmax(1)).mean()),
    }
    write_text_atomic(RESULTS, json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
