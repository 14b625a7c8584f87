"""Engine backends on CPU: null, ort (fp32, fp16 conversion, errors), torch, provider choice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgepilot.export import tiny
from edgepilot.runtime.bundle import FILES, load_bundle
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.engines.base import parse_device
from edgepilot.runtime.engines.ops_ort import PROVIDERS, choose_providers
from edgepilot.runtime.errors import BundleError, DeviceError, EngineError

CPU, CUDA, TRT = PROVIDERS["cpu"], PROVIDERS["cuda"], PROVIDERS["tensorrt"]
FP16_FILE, FP16_SIDECAR = FILES["fp16"], FILES["fp16"].replace(".onnx", ".json")
# FP16 weights and activations on a 3-conv net with logits of magnitude ~10: about 3 decimal digits.
FP16_ATOL = 0.05


def test_null_engine_outputs_declared_shapes(bundles: dict[str, Path]) -> None:
    engine = load_engine(bundles["centernet"], "null")
    out = engine.infer(engine.sample_inputs())
    assert {k: v.shape for k, v in out.items()} == {
        "heatmap": (1, 3, 32, 64), "size": (1, 2, 32, 64), "offset": (1, 2, 32, 64)}
    assert all(float(np.abs(v).max()) == 0.0 for v in out.values())
    with pytest.raises(EngineError) as err:
        engine.infer({"image": np.zeros((1, 3, 64, 64), np.float32)})
    assert err.value.exit_code == 2


def test_ort_argmax_graph_matches_logits_graph(bundles: dict[str, Path]) -> None:
    """Same seed, same weights: the in-graph argmax equals numpy's argmax of the logits."""
    ids_engine, logits_engine = load_engine(bundles["seg"], "ort"), load_engine(bundles["seg_logits"], "ort")
    feeds = ids_engine.sample_inputs(seed=3)
    ids = ids_engine.infer(feeds)["class_ids"]
    logits = logits_engine.infer(feeds)["logits"]
    assert ids.dtype == np.uint8 and ids.shape == (1, 128, 256)
    assert logits.shape == (1, 8, 128, 256) and np.isfinite(logits).all()
    np.testing.assert_array_equal(ids, np.argmax(logits, axis=1).astype(np.uint8))
    info = logits_engine.describe()
    assert info["provider"] == CPU and info["model"] == "model.onnx" and info["precision"] == "fp32"


def test_ort_wrong_input_shape_and_dtype_are_clear(bundles: dict[str, Path]) -> None:
    engine = load_engine(bundles["seg"], "ort")
    with pytest.raises(EngineError, match=r"input 'image' expects shape \[1, 3, 128, 256\], got \[1, 3, 64, 64\]") as err:
        engine.infer({"image": np.zeros((1, 3, 64, 64), np.float32)})
    assert err.value.exit_code == 2
    with pytest.raises(EngineError, match="expects float32, got float64"):
        engine.infer({"image": np.zeros((1, 3, 128, 256), np.float64)})


def test_ort_fp16_conversion_is_cached_and_regenerated(bundles: dict[str, Path], tmp_path: Path) -> None:
    folder = shutil.copytree(bundles["seg_logits"], tmp_path / "seg")
    fp32, fp16 = load_engine(folder, "ort", "fp32"), load_engine(folder, "ort", "fp16")
    assert fp16.describe()["model"] == FP16_FILE
    feeds = fp32.sample_inputs(seed=1)
    a, b = fp32.infer(feeds)["logits"], fp16.infer(feeds)["logits"]
    assert b.dtype == np.float32  # keep_io_types: the interface stays float32
    assert float(np.abs(a - b).max()) < FP16_ATOL
    assert (np.argmax(a, 1) == np.argmax(b, 1)).mean() > 0.99
    sidecar = json.loads((folder / FP16_SIDECAR).read_text())
    bundle = load_bundle(folder)
    assert sidecar["source_sha256"] == bundle.onnx_sha256()
    stamp = (folder / FP16_FILE).stat().st_mtime_ns
    load_engine(folder, "ort", "fp16")
    assert (folder / FP16_FILE).stat().st_mtime_ns == stamp  # cache hit: not rewritten
    tiny.segmentation_bundle(folder, argmax=False, seed=5)  # new weights, same meta
    fresh = load_engine(folder, "ort", "fp16")
    assert json.loads((folder / FP16_SIDECAR).read_text())["source_sha256"] == load_bundle(folder).onnx_sha256()
    new32 = load_engine(folder, "ort", "fp32").infer(feeds)["logits"]
    assert float(np.abs(fresh.infer(feeds)["logits"] - new32).max()) < FP16_ATOL
    assert float(np.abs(new32 - a).max()) > 0.1  # the weights really changed


def test_ort_int8_missing_is_a_bundle_error(bundles: dict[str, Path]) -> None:
    with pytest.raises(BundleError, match="no int8 model") as err:
        load_engine(bundles["seg"], "ort", "int8")
    assert err.value.exit_code == 2


@pytest.mark.parametrize("content", [b"truncated", b"not onnx at all\n"])
def test_bad_onnx_file_is_a_bundle_error(bundles: dict[str, Path], tmp_path: Path, content: bytes) -> None:
    folder = shutil.copytree(bundles["seg"], tmp_path / "seg")
    model = folder / "model.onnx"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2] if content == b"truncated" else content)
    with pytest.raises(BundleError) as err:
        load_bundle(folder)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    bundle = load_bundle(folder, check_onnx=False)
    with pytest.raises(BundleError, match="not a valid ONNX model") as err:
        load_engine(bundle, "ort")
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


@pytest.mark.parametrize("available,device,wanted,expected", [
    ([TRT, CUDA, CPU], "cuda", "auto", [TRT, CUDA, CPU]),
    ([CUDA, CPU], "cuda", "auto", [CUDA, CPU]),
    ([TRT, CUDA, CPU], "cpu", "auto", [CPU]),
    ([TRT, CUDA, CPU], "cuda", "cuda", [CUDA, CPU]),
    ([TRT, CUDA, CPU], "cuda", "tensorrt", [TRT, CPU]),
    ([CPU], "cpu", "cpu", [CPU]),
])
def test_choose_providers(available: list[str], device: str, wanted: str, expected: list[str]) -> None:
    assert choose_providers(available, device, wanted) == expected


@pytest.mark.parametrize("available,device,wanted", [
    ([CPU], "cuda", "auto"), ([CUDA, CPU], "cuda", "tensorrt"), ([TRT, CUDA, CPU], "cpu", "cuda"),
])
def test_choose_providers_refuses_what_it_cannot_do(available: list[str], device: str, wanted: str) -> None:
    with pytest.raises(DeviceError) as err:
        choose_providers(available, device, wanted)
    assert err.value.exit_code == 2


def test_unknown_provider_name() -> None:
    with pytest.raises(EngineError, match="unknown ort provider"):
        choose_providers([CPU], "cpu", "directml")


@pytest.mark.parametrize("backend", ["ort", "torch", "null"])
@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu0"])
def test_malformed_device_is_a_device_error(bundles: dict[str, Path], backend: str, device: str) -> None:
    with pytest.raises(DeviceError) as err:
        load_engine(bundles["seg"], backend, device=device)
    assert err.value.exit_code == 2


def test_absent_gpu_is_a_device_error(bundles: dict[str, Path]) -> None:
    assert str(parse_device("CUDA:7")) == "cuda:7"
    import onnxruntime

    if CUDA not in onnxruntime.get_available_providers():
        with pytest.raises(DeviceError, match="no GPU provider") as err:
            load_engine(bundles["seg"], "ort", device="cuda:7")
        assert err.value.exit_code == 2


def test_unsupported_precision_is_refused(bundles: dict[str, Path]) -> None:
    with pytest.raises(EngineError, match="does not support int8") as err:
        load_engine(bundles["seg"], "torch", "int8")
    assert err.value.exit_code == 2
