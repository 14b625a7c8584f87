"""``edgepilot export triton``: each config.pbtxt parsed back with the official schema, the served graphs, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")

from google.protobuf import text_format  # noqa: E402  (tritonclient[grpc] brings protobuf)
from tritonclient.grpc import model_config_pb2 as mc  # noqa: E402

from edgepilot.cli import main  # noqa: E402
from edgepilot.export import tiny  # noqa: E402
from edgepilot.export.triton import TritonModel, write_triton_model  # noqa: E402
from edgepilot.runtime.bundle import file_sha256, load_bundle  # noqa: E402
from edgepilot.runtime.errors import BundleError, EdgepilotError  # noqa: E402
from tests.export.helpers import with_int8  # noqa: E402


def qdq_bundle(folder: Path) -> Path:
    """The tiny segmentation bundle with a real Q/DQ ``model.int8.onnx`` (onnxruntime's static quantizer)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    tiny.segmentation_bundle(folder)

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.items = iter([{"image": rng.random((1, 3, 128, 256), np.float32)} for _ in range(2)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    quantize_static(str(folder / "model.onnx"), str(folder / "model.int8.onnx"), Frames(),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return folder


@pytest.fixture(scope="module")
def seg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny segmentation bundle with its FP16 graph and a Q/DQ INT8 graph."""
    from edgepilot.runtime.build.fp16 import fp16_model

    folder = qdq_bundle(tmp_path_factory.mktemp("triton") / "seg")
    fp16_model(load_bundle(folder))
    return folder


def parse(folder: Path) -> mc.ModelConfig:
    return text_format.Parse((folder / "config.pbtxt").read_text(), mc.ModelConfig())


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_config_parses_with_the_official_schema(seg: Path, tmp_path: Path, kind: str, batch: int,
                                                precision: str) -> None:
    folder = write_triton_model(seg, tmp_path / "repo", TritonModel(precision, batch, 3, kind))
    assert folder == tmp_path / "repo" / "tiny-seg"
    config = parse(folder)
    assert config.name == "tiny-seg" and config.platform == "onnxruntime_onnx"
    (image,), (ids,) = config.input, config.output
    assert image.name == "image" and image.data_type == mc.TYPE_FP32
    assert ids.name == "class_ids" and ids.data_type == mc.TYPE_UINT8
    if batch > 1:  # the batch dim moves into max_batch_size; the dynamic batcher waits up to 100 us
        assert config.max_batch_size == 8 and list(image.dims) == [3, 128, 256] and list(ids.dims) == [128, 256]
        assert config.HasField("dynamic_batching") and config.dynamic_batching.max_queue_delay_microseconds == 100
    else:
        assert config.max_batch_size == 0 and list(image.dims) == [1, 3, 128, 256] and list(ids.dims) == [1, 128, 256]
        assert not config.HasField("dynamic_batching")
    (group,) = config.instance_group
    assert group.count == 3 and group.kind == (mc.ModelInstanceGroup.KIND_GPU if kind == "gpu"
                                               else mc.ModelInstanceGroup.KIND_CPU)
    accelerators = config.optimization.execution_accelerators
    if kind == "gpu":
        (trt,) = accelerators.gpu_execution_accelerator
        assert trt.name == "tensorrt"
        assert dict(trt.parameters) == {"precision_mode": precision.upper(), "max_workspace_size_bytes": str(1 << 30)}
    else:
        assert not config.HasField("optimization")
    assert not accelerators.cpu_execution_accelerator
    assert config.parameters["edgepilot_precision"].string_value == precision


@pytest.mark.parametrize("precision,kind,source", [
    ("fp32", "cpu", "model.onnx"), ("fp32", "gpu", "model.onnx"),
    ("fp16", "cpu", "model.fp16.onnx"), ("fp16", "gpu", "model.onnx"),  # on a GPU TensorRT makes FP16 of the FP32 graph
    ("int8", "cpu", "model.int8.onnx"), ("int8", "gpu", "model.int8.onnx"),
])
def test_the_served_graph_is_the_bundles_for_precision_and_kind(seg: Path, tmp_path: Path, precision: str,
                                                                kind: str, source: str) -> None:
    folder = write_triton_model(seg, tmp_path / "repo", TritonModel(precision, kind=kind))
    assert file_sha256(folder / "1" / "model.onnx") == file_sha256(seg / source)
    meta = json.loads((folder / "1" / "meta.json").read_text())
    assert meta == json.loads((seg / "meta.json").read_text())
    served = load_bundle(folder / "1")  # the version folder is a bundle a client can load
    assert served.inputs == load_bundle(seg).inputs and served.outputs == load_bundle(seg).outputs


def test_int8_on_cpu_prefers_the_u8s8_graph(seg: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "seg"
    shutil.copytree(seg, bundle)
    shutil.copy(bundle / "model.onnx", bundle / "model.int8.cpu.onnx")  # a stand-in, told apart by its hash
    cpu = write_triton_model(bundle, tmp_path / "a", TritonModel("int8", kind="cpu"))
    gpu = write_triton_model(bundle, tmp_path / "b", TritonModel("int8", kind="gpu"))
    assert file_sha256(cpu / "1" / "model.onnx") == file_sha256(bundle / "model.int8.cpu.onnx")
    assert file_sha256(gpu / "1" / "model.onnx") == file_sha256(bundle / "model.int8.onnx")


def test_a_batched_graph_takes_any_batch_up_to_b(seg: Path, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    folder = write_triton_model(seg, tmp_path / "repo", TritonModel(max_batch=8))
    graph = onnx.load(str(folder / "1" / "model.onnx"))
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    x = np.random.default_rng(1).random((8, 3, 128, 256), np.float32)
    batched = ort.InferenceSession(str(folder / "1" / "model.onnx")).run(None, {"image": x})[0]
    single = ort.InferenceSession(str(seg / "model.onnx"))
    assert batched.shape == (8, 128, 256)
    assert np.array_equal(batched[5:6], single.run(None, {"image": x[5:6]})[0])


def test_dynamic_spatial_dims_are_minus_one(tmp_path: Path) -> None:
    bundle = tiny.segmentation_bundle(tmp_path / "dyn", hw=None)
    config = parse(write_triton_model(bundle, tmp_path / "repo", TritonModel(max_batch=4)))
    assert list(config.input[0].dims) == [3, -1, -1] and list(config.output[0].dims) == [-1, -1]


def batch_mixing_bundle(folder: Path) -> Path:
    """The tiny policy with a mean over dim 0 first: a graph that mixes the frames of a batch."""
    import onnx

    tiny.policy_bundle(folder)
    model = onnx.load(str(folder / "model.onnx"))
    model.graph.node[0].input[0] = "obs.mean"
    model.graph.node.insert(0, onnx.helper.make_node("ReduceMean", ["obs"], ["obs.mean"], axes=[0], keepdims=1))
    onnx.save(model, str(folder / "model.onnx"))
    return folder


def test_batch_one_constants_are_rewritten_to_follow_the_batch(tmp_path: Path) -> None:
    import onnxruntime as ort

    yolo = tiny.yolo_bundle(tmp_path / "yolo")  # its Reshape to [1, 4 + nc, -1] would fold a batch into one row
    folder = write_triton_model(yolo, tmp_path / "repo", TritonModel(max_batch=8))
    assert list(parse(folder).output[0].dims) == [7, 2048]
    x = np.random.default_rng(2).random((3, 3, 128, 256), np.float32)
    batched = ort.InferenceSession(str(folder / "1" / "model.onnx")).run(None, {"image": x})[0]
    single = ort.InferenceSession(str(yolo / "model.onnx"))
    assert batched.shape == (3, 7, 2048)
    np.testing.assert_allclose(batched[2:], single.run(None, {"image": x[2:]})[0], rtol=1e-5, atol=1e-5)


def test_a_graph_that_mixes_the_frames_of_a_batch_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    bundle = batch_mixing_bundle(tmp_path / "mix")
    with pytest.raises(BundleError, match="mixes the frames of a batch .* use --max-batch 1"):
        write_triton_model(bundle, tmp_path / "repo", TritonModel(max_batch=8))
    assert not (tmp_path / "repo").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["mix"]
    config = parse(write_triton_model(bundle, tmp_path / "repo", TritonModel(max_batch=1)))
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [1, 3, 32, 64]


@pytest.mark.parametrize("name", ["seg", "det"])
def test_the_shipped_bundles_batch_with_their_resize_sizes_rewritten(name: str, tmp_path: Path) -> None:
    """models/seg and models/det were traced at batch 1: their Resize nodes have constant sizes [1, C, H, W]."""
    import onnx
    import onnxruntime as ort

    shipped = Path(__file__).resolve().parents[2] / "models" / name
    if not (shipped / "meta.json").is_file():
        pytest.skip(f"the shipped models/{name} bundle is not in this checkout")
    folder = write_triton_model(shipped, tmp_path / "repo", TritonModel(max_batch=8))
    graph = onnx.load(str(folder / "1" / "model.onnx"))
    assert any(n.op_type == "Resize" and n.input[3].endswith("/batch_sizes") for n in graph.graph.node)
    spec = load_bundle(shipped).inputs[0]
    x = np.random.default_rng(3).random((2, *spec.shape[1:]), np.float32)
    batched = ort.InferenceSession(str(folder / "1" / "model.onnx")).run(None, {spec.name: x})
    single = ort.InferenceSession(str(shipped / "model.onnx")).run(None, {spec.name: x[1:]})
    for b, s in zip(batched, single, strict=True):
        assert b.shape[0] == 2 and b.shape[1:] == s.shape[1:]
        np.testing.assert_allclose(b[1:], s, rtol=1e-4, atol=1e-4)


def test_tensorrt_int8_needs_a_qdq_graph(tmp_path: Path) -> None:
    bundle = with_int8(tiny.segmentation_bundle(tmp_path / "seg"))  # model.int8.onnx without Q/DQ nodes
    with pytest.raises(BundleError, match="no QuantizeLinear/DequantizeLinear nodes"):
        write_triton_model(bundle, tmp_path / "repo", TritonModel("int8", kind="gpu"))
    write_triton_model(bundle, tmp_path / "repo", TritonModel("int8", kind="cpu"))  # ONNX Runtime takes it


def test_other_models_in_the_repository_are_left_alone_and_force_replaces_ours(seg: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "theirs" / "1").mkdir(parents=True)
    (repo / "theirs" / "config.pbtxt").write_text('name: "theirs"\n')
    write_triton_model(seg, repo)
    with pytest.raises(EdgepilotError, match="is not empty: pass --force"):
        write_triton_model(seg, repo, TritonModel("fp16"))
    write_triton_model(seg, repo, TritonModel("fp16"), force=True)
    assert parse(repo / "tiny-seg").parameters["edgepilot_precision"].string_value == "fp16"
    with pytest.raises(EdgepilotError, match="has no config.pbtxt written by edgepilot export triton"):
        write_triton_model(seg, repo, TritonModel(name="theirs"), force=True)
    assert (repo / "theirs" / "config.pbtxt").read_text() == 'name: "theirs"\n'
    assert sorted(p.name for p in repo.iterdir()) == ["theirs", "tiny-seg"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


@pytest.mark.parametrize("model,match", [
    (TritonModel(max_batch=-1), "--max-batch -1: give 0..4096"),
    (TritonModel(kind="tpu"), "--kind 'tpu': use cpu"),
    (TritonModel(precision="int4"), "--precision 'int4'"),
    (TritonModel(instances=0), "--instances 0"),
    (TritonModel(name="../x"), "--name '../x'"),
])
def test_bad_options_are_one_clear_error(seg: Path, tmp_path: Path, model: TritonModel, match: str) -> None:
    with pytest.raises(EdgepilotError, match=match) as info:
        write_triton_model(seg, tmp_path / "repo", model)
    assert info.value.exit_code == 2 and not (tmp_path / "repo").exists()


@pytest.mark.parametrize("args,message", [
    (["export", "triton", "{tmp}/nope", "--out", "{tmp}/repo"], "bundle {tmp}/nope does not exist"),
    (["export", "triton", "--out", "{tmp}/repo"], "give the bundle to serve: edgepilot export triton BUNDLE"),
    (["export", "triton", "{seg}", "--out", "{tmp}/repo", "--max-batch", "x"], "--max-batch: 'x' is not an integer"),
    (["export", "triton", "{seg}", "--out", "{tmp}/repo", "--kind", "tpu"], "--kind: invalid choice: 'tpu'"),
    (["export", "triton", "{seg}", "--out", "{tmp}/repo", "--task", "seg"], "--task do not apply to export triton"),
    (["export", "triton", "{seg}", "--out", "{seg}/meta.json"], "is a file, not a model repository folder"),
    (["export", "best.pt", "--task", "seg", "--out", "{tmp}/b", "--max-batch", "4"],
     "--max-batch apply to export triton BUNDLE --out REPO only"),
    (["export", "best.pt", "{seg}", "--task", "seg", "--out", "{tmp}/b"], "a second argument"),
])
def test_cli_bad_input_is_one_line_exit_2(seg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          args: list[str], message: str) -> None:
    fill = {"tmp": str(tmp_path), "seg": str(seg)}
    assert main([a.format(**fill) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message.format(**fill) in err, err


def test_cli_writes_the_repository_and_says_how_to_serve_it(seg: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    assert main(["export", "triton", str(seg), "--out", str(repo), "--kind", "gpu", "--precision", "fp16",
                 "--max-batch", "8", "--instances", "2", "--name", "seg", "--queue-delay-us", "500"]) == 0
    printed = capsys.readouterr().out
    assert f"tritonserver --model-repository={repo}" in printed and "--backend triton --precision fp16" in printed
    config = parse(repo / "seg")
    assert config.name == "seg" and config.max_batch_size == 8 and config.instance_group[0].count == 2
    assert config.dynamic_batching.max_queue_delay_microseconds == 500


def test_help_explains_both_forms(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for part in ("CKPT", "--task", "--from-onnx", "triton BUNDLE --out REPO", "--max-batch", "--instances", "--kind",
                 "edgepilot export triton models/det --out triton-repo"):
        assert part in text, part
