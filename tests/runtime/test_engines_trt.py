"""TensorRT backend: precision plans against fake TensorRT 10/11 modules; real runs marked ``trt``."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgepilot.runtime.build.tensorrt import build_plan, calibration_sha256, network_flags
from edgepilot.runtime.bundle import FILES, load_bundle
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.errors import BundleError, DeviceError, MissingExtraError


def fake_trt(*builder_flags: str) -> SimpleNamespace:
    """Just enough of the tensorrt module for the plan logic: BuilderFlag members and STRONGLY_TYPED."""
    return SimpleNamespace(BuilderFlag=SimpleNamespace(**{f: i for i, f in enumerate(builder_flags)}),
                           NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1))


TRT10 = fake_trt("FP16", "INT8", "TF32")
TRT11 = fake_trt("TF32")  # weak typing (FP16/INT8 builder flags) removed


def test_plans_on_tensorrt_10(bundles: dict[str, Path]) -> None:
    bundle = load_bundle(bundles["seg"])
    fp32, fp16 = build_plan(TRT10, bundle, "fp32"), build_plan(TRT10, bundle, "fp16")
    assert (fp32.onnx.name, fp32.flags, fp32.strongly_typed) == ("model.onnx", (), False)
    assert (fp16.onnx.name, fp16.flags, fp16.strongly_typed) == ("model.onnx", ("FP16",), False)
    assert network_flags(TRT10, False) == 0 and network_flags(TRT10, True) == 2


def test_plans_on_tensorrt_11_use_typed_graphs(bundles: dict[str, Path], tmp_path: Path) -> None:
    folder = shutil.copytree(bundles["seg_logits"], tmp_path / "seg")
    bundle = load_bundle(folder)
    plan = build_plan(TRT11, bundle, "fp16")
    assert (plan.onnx.name, plan.flags, plan.strongly_typed) == (FILES["fp16"], (), True)
    assert (folder / FILES["fp16"]).is_file()


def test_int8_plan_needs_the_qdq_graph(bundles: dict[str, Path], tmp_path: Path) -> None:
    folder = shutil.copytree(bundles["seg"], tmp_path / "seg")
    with pytest.raises(BundleError, match="no int8 model"):
        build_plan(TRT10, load_bundle(folder), "int8")
    # stand-in for a Q/DQ export: any file registered as files.int8
    shutil.copy(folder / "model.onnx", folder / "model.int8.onnx")
    meta = json.loads((folder / "meta.json").read_text())
    meta.update(files={"int8": "model.int8.onnx"}, calibration={"sha256": "ab" * 32})
    (folder / "meta.json").write_text(json.dumps(meta))
    bundle = load_bundle(folder)
    plan10, plan11 = build_plan(TRT10, bundle, "int8"), build_plan(TRT11, bundle, "int8")
    assert (plan10.onnx.name, plan10.flags, plan10.strongly_typed) == ("model.int8.onnx", ("INT8", "FP16"), False)
    assert (plan11.flags, plan11.strongly_typed) == ((), True)
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
