"""torch backend and exporter: a tiny torch model exported once, run by torch and ort."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.errors import BundleError, DeviceError, EngineError
from edgepilot.runtime.frame import Frame, SegMap
from edgepilot.runtime.processor import HostProcessor

torch = pytest.importorskip("torch")

from edgepilot.export.tiny import PREPROCESS, SEG_CLASSES, SEG_PALETTE  # noqa: E402
from edgepilot.export.torch_export import export_bundle, state_dict_sha256  # noqa: E402

# FP32 torch vs onnxruntime on the same weights: only summation order differs.
PARITY_ATOL = 1e-4
META = {"name": "torch-seg", "task": "segmentation", "decoder": {"type": "logits", "output": "logits"},
        "classes": SEG_CLASSES, "palette": SEG_PALETTE, "preprocess": PREPROCESS}


class TinySeg(torch.nn.Module):  # type: ignore[misc]
    """image [1, 3, H, W] -> logits [1, 8, H, W] (stride-2 conv, 1x1 head, bilinear x2)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, 2, 1)
        self.head = torch.nn.Conv2d(8, len(SEG_CLASSES), 1)

    def forward(self, x: Any) -> Any:
        y = self.head(torch.relu(self.c1(x)))  # [1, 8, H/2, W/2]
        return torch.nn.functional.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def torch_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.manual_seed(0)
    model, root = TinySeg(), tmp_path_factory.mktemp("torch_bundles")
    x = torch.randn(1, 3, 64, 128)
    return {
        "fixed": export_bundle(model, x, root / "fixed", META),
        "dynamic": export_bundle(model, x, root / "dynamic", META, dynamic_hw=True),
        "argmax": export_bundle(model, x, root / "argmax", {**META, "decoder": {"type": "class_ids"}},
                                argmax=True),
        "sha": Path(state_dict_sha256(model)),
    }


def test_export_writes_a_valid_bundle(torch_bundles: dict[str, Path]) -> None:
    bundle = load_bundle(torch_bundles["fixed"])  # parses the ONNX and checks it against meta.json
    assert [(s.name, s.shape, s.dtype) for s in bundle.inputs] == [("image", (1, 3, 64, 128), "float32")]
    assert [(s.name, s.shape) for s in bundle.outputs] == [("logits", (1, 8, 64, 128))]
    assert bundle.meta["files"] == {"fp32": "model.onnx", "torch": "model.pt2"}
    assert bundle.meta["source"]["checkpoint_sha256"] == str(torch_bundles["sha"])
    dyn = load_bundle(torch_bundles["dynamic"])
    assert dyn.inputs[0].shape == (1, 3, None, None) and dyn.outputs[0].shape == (1, 8, None, None)
    ids = load_bundle(torch_bundles["argmax"])
    assert (ids.outputs[0].name, ids.outputs[0].dtype) == ("class_ids", "uint8")


def test_torch_and_ort_agree(torch_bundles: dict[str, Path]) -> None:
    t_engine, o_engine = load_engine(torch_bundles["fixed"], "torch"), load_engine(torch_bundles["fixed"], "ort")
    feeds = t_engine.sample_inputs(seed=7)
    a, b = t_engine.infer(feeds)["logits"], o_engine.infer(feeds)["logits"]
    assert a.shape == b.shape == (1, 8, 64, 128) and a.dtype == np.float32
    assert float(np.abs(a - b).max()) < PARITY_ATOL
    assert float(np.abs(a).max()) > 0.1  # not trivially zero
    ids = load_engine(torch_bundles["argmax"], "torch").infer(feeds)["class_ids"]
    np.testing.assert_array_equal(ids, np.argmax(a, axis=1).astype(np.uint8))


def test_torch_dynamic_sizes(torch_bundles: dict[str, Path]) -> None:
    engine = load_engine(torch_bundles["dynamic"], "torch", hw=(32, 96))
    assert engine.input_shapes() == {"image": (1, 3, 32, 96)}
    assert engine.infer(engine.sample_inputs())["logits"].shape == (1, 8, 32, 96)
    with pytest.raises(EngineError, match="expects shape"):
        engine.infer({"image": np.zeros((1, 3, 64, 64), np.float32)})
    free = load_engine(torch_bundles["dynamic"], "torch")
    assert free.infer({"image": np.zeros((1, 3, 48, 80), np.float32)})["logits"].shape == (1, 8, 48, 80)


def test_torch_cpu_fp16_refused_and_cuda_checked(torch_bundles: dict[str, Path]) -> None:
    with pytest.raises(EngineError, match="fp16 on CUDA only") as err:
        load_engine(torch_bundles["fixed"], "torch", "fp16")
    assert err.value.exit_code == 2
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError) as derr:
            load_engine(torch_bundles["fixed"], "torch", device="cuda:7")
        assert derr.value.exit_code == 2
    with pytest.raises(DeviceError, match="cuda_graph needs"):
        load_engine(torch_bundles["fixed"], "torch", cuda_graph=True)


def test_missing_or_broken_pt2(bundles: dict[str, Path], torch_bundles: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="export_bundle") as err:
        load_engine(bundles["seg"], "torch")
    assert err.value.exit_code == 2
    folder = shutil.copytree(torch_bundles["fixed"], tmp_path / "b")
    (folder / "model.pt2").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(BundleError, match="not a loadable torch.export program"):
        load_engine(folder, "torch")
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "model.pt2").unlink()
    with pytest.raises(BundleError, match=meta["files"]["torch"]):
        load_engine(folder, "torch")


def test_cpu_torch_uses_host_processor(torch_bundles: dict[str, Path]) -> None:
    bundle = load_bundle(torch_bundles["fixed"])
    engine = load_engine(bundle, "torch")
    proc = engine.make_processor()
    assert isinstance(proc, HostProcessor)
    out = proc(Frame.captured(0, np.full((120, 160, 3), 90, np.uint8)))
    assert isinstance(out, SegMap) and out.class_ids.shape == (64, 128)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
def test_cuda_paths_match_cpu(torch_bundles: dict[str, Path]) -> None:
    """CUDA fp32, CUDA graph replay, fp16 and the device processor against the CPU engine."""
    bundle = load_bundle(torch_bundles["fixed"])
    cpu = load_engine(bundle, "torch")
    feeds = cpu.sample_inputs(seed=2)
    ref = cpu.infer(feeds)["logits"]
    gpu = load_engine(bundle, "torch", device="cuda")
    assert float(np.abs(gpu.infer(feeds)["logits"] - ref).max()) < 1e-3
    graphed = load_engine(bundle, "torch", device="cuda", cuda_graph=True)
    assert graphed.describe()["cuda_graph"] is True
    assert float(np.abs(graphed.infer(feeds)["logits"] - ref).max()) < 1e-3
    half = load_engine(bundle, "torch", "fp16", device="cuda")
    assert float(np.abs(half.infer(feeds)["logits"] - ref).max()) < 0.05
    image = np.random.default_rng(0).integers(0, 255, (64, 128, 3), dtype=np.uint8)
    device_map = gpu.make_processor()(Frame.captured(0, image))
    host_map = HostProcessor(bundle, cpu)(Frame.captured(0, image))
    assert isinstance(device_map, SegMap) and isinstance(host_map, SegMap)
    assert (device_map.class_ids == host_map.class_ids).mean() > 0.98
