"""The core must import and run with numpy + opencv only: heavy extras are imported lazily."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["torch", "onnxruntime", "onnx", "openvino", "tensorrt", "carla", "highway_env", "gymnasium",
         "stable_baselines3", "matplotlib", "pygame", "tritonclient", "grpc", "ray"]

PROBE = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ImportError("blocked for the test: " + name)
sys.meta_path.insert(0, Block())
import edgepilot.runtime, edgepilot.cli, edgepilot.runtime.pipeline, edgepilot.runtime.sources
import edgepilot.runtime.sinks, edgepilot.runtime.processor, edgepilot.runtime.engines
import edgepilot.runtime.engines.ops_null, edgepilot.runtime.engines.ops_ort, edgepilot.runtime.engines.ops_torch
import edgepilot.runtime.engines.ops_trt, edgepilot.runtime.engines.ops_openvino, edgepilot.runtime.build.cache, edgepilot.runtime.build.tensorrt
import edgepilot.runtime.engines.ops_triton
import edgepilot.sim, edgepilot.sim.registry, edgepilot.sim.types
parser = edgepilot.cli.build_parser()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print("LOADED", loaded)
"""


def test_core_imports_without_heavy_extras() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "LOADED []" in p.stdout


def test_missing_extra_is_a_one_line_hint(tmp_path: Path) -> None:
    probe = PROBE.split("import edgepilot.runtime,")[0] + (
        "from edgepilot.runtime.errors import MissingExtraError\n"
        "from edgepilot.runtime.engines.ops_ort import OrtEngine\n"
        "from edgepilot.runtime.bundle import Bundle, TensorSpec\n"
        "b = Bundle(__import__('pathlib').Path('.'), {'task': 'segmentation', 'decoder': {'type': 'class_ids'}},"
        " (TensorSpec('x', (1, 3, 4, 4)),), (TensorSpec('y', (1, 4, 4), 'uint8'),))\n"
        "try:\n    OrtEngine(b)\nexcept MissingExtraError as e:\n    print('MSG', e, e.exit_code)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert "MSG onnxruntime is not installed (needed by the ort backend): pip install 'edgepilot[onnx]' 2" in p.stdout, p.stderr
