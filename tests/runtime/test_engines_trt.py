"""TensorRT backend: strongly typed build plans against fake TensorRT 8/10/11 modules; real runs marked ``trt``."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgepilot.runtime.build.tensorrt import (
    BuildPlan,
    build_plan,
    calibration_sha256,
    network_flags,
)
from edgepilot.runtime.bundle import FILES, load_bundle
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.errors import BundleError, DeviceError, EngineError, MissingExtraError


def fake_trt(version: str, *creation_flags: str) -> SimpleNamespace:
    """Just enough of the tensorrt module for the plan logic: a version and NetworkDefinitionCreationFlag."""
    return SimpleNamespace(__version__=version,
                           NetworkDefinitionCreationFlag=SimpleNamespace(**{f: i for i, f in enumerate(creation_flags)}))


TRT10 = fake_trt("10.3.0", "EXPLICIT_BATCH", "STRONGLY_TYPED")
TRT11 = fake_trt("11.0.0", "EXPLICIT_BATCH", "STRONGLY_TYPED")  # accepted and ignored: always strongly typed
TRT8 = fake_trt("8.6.2", "EXPLICIT_BATCH", "EXPLICIT_PRECISION")


def test_every_network_is_strongly_typed() -> None:
    assert network_flags(TRT10) == 2 and network_flags(TRT11) == 2
    with pytest.raises(EngineError, match="no strongly typed networks: install TensorRT 10 or later"):
        network_flags(TRT8)


def test_plans_take_the_precision_from_the_graph(bundles: dict[str, Path], tmp_path: Path) -> None:
    folder = shutil.copytree(bundles["seg_logits"], tmp_path / "seg")
    bundle = load_bundle(folder)
    assert build_plan(bundle, "fp32") == BuildPlan("fp32", folder / "model.onnx")
    assert build_plan(bundle, "fp16") == BuildPlan("fp16", folder / FILES["fp16"])  # converted on first use
    assert (folder / FILES["fp16"]).is_file()


def test_int8_plan_needs_the_qdq_graph(bundles: dict[str, Path], tmp_path: Path) -> None:
    folder = shutil.copytree(bundles["seg"], tmp_path / "seg")
    with pytest.raises(BundleError, match="no int8 model"):
        build_plan(load_bundle(folder), "int8")
    # stand-in for a Q/DQ export: any file registered as files.int8
    shutil.copy(folder / "model.onnx", folder / "model.int8.onnx")
    meta = json.loads((folder / "meta.json").read_text())
    meta.update(files={"int8": "model.int8.onnx"}, calibration={"sha256": "ab" * 32})
    (folder / "meta.json").write_text(json.dumps(meta))
    bundle = load_bundle(folder)
    assert build_plan(bundle, "int8") == BuildPlan("int8", folder / "model.int8.onnx")
    assert calibration_sha256(bundle, "int8") == "ab" * 32 and calibration_sha256(bundle, "fp16") is None


def test_missing_tensorrt_is_one_line(bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails even where TensorRT exists
    with pytest.raises(MissingExtraError, match=r"pip install 'edgepilot\[trt\]'") as err:
        load_engine(bundles["seg"], "trt", device="cuda")
    assert err.value.exit_code == 2


def test_trt_refuses_cpu(bundles: dict[str, Path]) -> None:
    with pytest.raises(DeviceError, match="cannot run on cpu"):
        load_engine(bundles["seg"], "trt", device="cpu")


@pytest.mark.trt
@pytest.mark.cuda
def test_trt_engine_matches_ort_and_is_cached(bundles: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("tensorrt", reason="needs TensorRT")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    folder = shutil.copytree(bundles["seg_logits"], tmp_path / "seg")
    ref_engine = load_engine(folder, "ort")
    feeds = ref_engine.sample_inputs(seed=4)
    ref = ref_engine.infer(feeds)["logits"]
    first = load_engine(folder, "trt", device="cuda")
    assert first.describe()["built"] is True
    assert float(np.abs(first.infer(feeds)["logits"] - ref).max()) < 1e-2
    second = load_engine(folder, "trt", device="cuda", rebuild=False)
    assert second.describe()["built"] is False and second.describe()["engine"] == first.describe()["engine"]
    half = load_engine(folder, "trt", "fp16", device="cuda")
    assert float(np.abs(half.infer(feeds)["logits"] - ref).max()) < 0.05
