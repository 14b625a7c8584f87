"""Models: shapes, sizes, ONNX opset 17 export, onnxruntime parity, the runtime decoder contract."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from edgepilot.perception.models.blocks import count_parameters
from edgepilot.perception.models.centernet import OUTPUT_NAMES, CenterNet, decode, decoder_meta
from edgepilot.perception.models.fast_scnn import FastSCNN, FastSCNNConfig


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial running statistics, so the exported graph's BN folding is exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@pytest.mark.parametrize("head_stride", [4, 8])
def test_fast_scnn_shapes_and_size(head_stride):
    model = FastSCNN(FastSCNNConfig(num_classes=11, head_stride=head_stride))
    assert 1_000_000 <= count_parameters(model) <= 2_000_000
    out = model.eval()(torch.zeros(2, 3, 128, 256))
    assert out.shape == (2, 11, 128, 256)


def test_fast_scnn_dense_layout_has_no_depthwise_conv_where_the_paper_has_dsconvs():
    def depthwise(m: torch.nn.Module) -> int:
        return sum(1 for c in m.modules() if isinstance(c, torch.nn.Conv2d) and c.groups > 1)

    paper = FastSCNN(FastSCNNConfig(num_classes=11, head_stride=4))
    dense = FastSCNN(FastSCNNConfig(num_classes=11, head_stride=4, dense_convs=True))
    for name in ("down_quarter", "down_eighth"):
        assert depthwise(getattr(paper, name)) == 1 and depthwise(getattr(dense, name)) == 0
    assert depthwise(paper.detail4.mix) == 1 and depthwise(dense.detail4.mix) == 0
    # the global branch, fusion and classifier keep their depthwise convs (they run at 1/8 and below)
    assert depthwise(dense.global_features) == depthwise(paper.global_features) > 0
    assert 1_000_000 <= count_parameters(dense) <= 2_000_000
    assert dense.eval()(torch.zeros(1, 3, 128, 256)).shape == (1, 11, 128, 256)


def test_centernet_shapes_and_ranges():
    model = CenterNet().eval()
    assert count_parameters(model) < 1_000_000
    with torch.inference_mode():
        heat, size, offset = model(torch.randn(1, 3, 128, 256))
    assert heat.shape == (1, 1, 32, 64) and size.shape == offset.shape == (1, 2, 32, 64)
    assert 0 <= heat.min() and heat.max() <= 1 and (size > 0).all()
    assert abs(float(heat.mean()) - 0.05) < 0.04  # the prior bias


def _export(model: torch.nn.Module, path, names: list[str], hw=(128, 256)) -> np.ndarray:
    x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(1))
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["image"],
                      output_names=names)
    return x.numpy()


def test_fast_scnn_exports_to_onnx_and_matches_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    model = _randomise_bn(FastSCNN())
    x = _export(model, tmp_path / "seg.onnx", ["logits"])
    graph = onnx.load(str(tmp_path / "seg.onnx"))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) == 17
    (got,) = ort.InferenceSession(str(tmp_path / "seg.onnx"), providers=["CPUExecutionProvider"]).run(None, {"image": x})
    with torch.inference_mode():
        want = model(torch.from_numpy(x)).numpy()
    assert got.shape == (1, 11, 128, 256)
    assert np.abs(got - want).max() < 1e-3
    assert (got.argmax(1) == want.argmax(1)).mean() > 0.999


def test_centernet_exports_with_the_runtime_output_names(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _randomise_bn(CenterNet())
    x = _export(model, tmp_path / "det.onnx", list(OUTPUT_NAMES))
    sess = ort.InferenceSession(str(tmp_path / "det.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["heatmap", "size", "offset"]
    got = dict(zip(OUTPUT_NAMES, sess.run(None, {"image": x}), strict=True))
    with torch.inference_mode():
        want = dict(zip(OUTPUT_NAMES, (t.numpy() for t in model(torch.from_numpy(x))), strict=True))
    for name in OUTPUT_NAMES:
        assert got[name].shape == want[name].shape
        assert np.abs(got[name] - want[name]).max() < 1e-3 * max(1.0, float(np.abs(want[name]).max()))


def test_decode_agrees_with_the_runtime_centernet_decoder():
    from edgepilot.runtime.postprocess.detection import CenterNetDecoder
    from edgepilot.runtime.preprocess import Transform

    g = torch.Generator().manual_seed(0)
    heat = torch.rand(1, 1, 32, 64, generator=g) ** 8  # a few clear peaks
    size = torch.rand(1, 2, 32, 64, generator=g) * 6 + 1
    offset = torch.rand(1, 2, 32, 64, generator=g)
    meta = decoder_meta(score_threshold=0.3, max_detections=50)
    runtime = CenterNetDecoder(types.SimpleNamespace(decoder=meta))  # type: ignore[arg-type]
    outs = {"heatmap": heat.numpy(), "size": size.numpy(), "offset": offset.numpy()}
    dets = runtime(outs, Transform(1.0, 1.0, 0.0, 0.0), (10_000, 10_000))
    (boxes, scores, cls), = decode(heat, size, offset, max_detections=50, score_threshold=0.3)
    assert len(dets.boxes) == len(boxes) > 0
    np.testing.assert_allclose(dets.boxes, boxes.numpy(), atol=1e-4)
    np.testing.assert_allclose(dets.scores, scores.numpy(), atol=1e-6)


@pytest.mark.parametrize("task", ["seg", "det"])
def test_exported_bundles_load_in_the_runtime(task, tmp_path):
    pytest.importorskip("onnx")
    from edgepilot.export.torch_export import export_bundle
    from edgepilot.perception.train.build import build_model, bundle_meta
    from edgepilot.perception.train.config import load_config
    from edgepilot.runtime.bundle import load_bundle
    from edgepilot.runtime.postprocess.detection import CenterNetDecoder

    cfg = load_config(task)
    folder = export_bundle(build_model(cfg).eval(), torch.zeros(1, 3, 128, 256), tmp_path / task,
                           bundle_meta(cfg, argmax=True), argmax=task == "seg")
    bundle = load_bundle(folder)
    if task == "det":
        assert bundle.task == "detection" and bundle.classes == ["vehicle"]
        CenterNetDecoder(bundle)
    else:
        assert bundle.task == "segmentation" and bundle.decoder["type"] == "class_ids" and len(bundle.classes) == 11
