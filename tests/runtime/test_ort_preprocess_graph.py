"""ort with preprocess=graph: the frame goes in as uint8 and the graph normalises it, with the host's results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgepilot.runtime.bundle import TensorSpec
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.engines.ops_ort import OrtOverlapProcessor
from edgepilot.runtime.errors import BundleError, EngineError
from edgepilot.runtime.frame import Frame
from edgepilot.runtime.preprocess import Preprocessor
from edgepilot.runtime.processor import HostProcessor
from edgepilot.runtime.sources import SyntheticCapture

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

SHIPPED_POLICY = Path(__file__).resolve().parents[2] / "models" / "policy"
NORMS = {"imagenet": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]), "scale-only": ([0, 0, 0], [1, 1, 1]),
         "mixed": ([0.0, 0.5, 0.0], [1.0, 0.5, 2.0])}  # a zero and a non-zero shift side by side


def _identity_model(path: Path, shape: tuple[int, ...]) -> Path:
    """x -> Identity -> y: its output is whatever tensor reaches the model's first op."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("norm", list(NORMS))
def test_the_graph_normalises_bit_identically_to_the_host(tmp_path: Path, layout: str, norm: str) -> None:
    from edgepilot.runtime.build.normalise import normalising_model

    h, w = 48, 80
    shape = (1, 3, h, w) if layout == "NCHW" else (1, h, w, 3)
    mean, std = NORMS[norm]
    cfg = {"layout": layout, "color": "RGB", "resize": "letterbox", "scale": 1 / 255, "pad_value": 114,
           "mean": mean, "std": std}
    host = Preprocessor(TensorSpec("x", shape), cfg)
    raw = Preprocessor(TensorSpec("x", shape, "uint8"), cfg)
    session = ort.InferenceSession(normalising_model(_identity_model(tmp_path / "m.onnx", shape), "x",
                                                     host.a, host.b, layout), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)"
    image = np.random.default_rng(1).integers(0, 256, (40, 80, 3), dtype=np.uint8)  # letterboxed: padding too
    want, _ = host(image)
    got = session.run(None, {"x": raw(image)[0]})[0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_a_model_that_cannot_take_it_is_a_clear_error(tmp_path: Path) -> None:
    from edgepilot.runtime.build.normalise import normalising_model

    model = _identity_model(tmp_path / "m.onnx", (1, 3, 8, 8))
    a, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    with pytest.raises(BundleError, match="no graph input 'image'"):
        normalising_model(model, "image", a, b, "NCHW")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(BundleError, match="not a valid ONNX model"):
        normalising_model(tmp_path / "bad.onnx", "x", a, b, "NCHW")


@pytest.mark.parametrize("name", ["seg", "seg_logits", "yolo", "centernet"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_outputs_equal_the_host_paths(bundles: dict[str, Path], name: str, precision: str) -> None:
    host = load_engine(bundles[name], "ort", precision, preprocess="host")
    graph = load_engine(bundles[name], "ort", precision, preprocess="graph")
    assert (host.describe()["preprocess"], graph.describe()["preprocess"]) == ("host", "graph")
    ph, pg = host.make_processor(), graph.make_processor()
    assert type(pg) is HostProcessor and pg.spec.dtype == "uint8"
    cam = SyntheticCapture(200, 120, 1e6)
    for i in range(3):
        image = cam.frame(i)
        tensor_f, _ = ph.pre(image)
        tensor_u8, _ = pg.pre(image)
        want = host.infer({host.inputs[0].name: tensor_f})
        got = graph.infer_frame(tensor_u8)
        assert sorted(got) == sorted(want)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
        a, b = ph(Frame.captured(i, image)), pg(Frame.captured(i, image))
        for field in ("class_ids", "boxes", "scores"):
            if hasattr(a, field):
                np.testing.assert_array_equal(getattr(b, field), getattr(a, field))
    # the engine's own infer still takes the bundle's float input (engine-only benchmarks time it)
    assert graph.infer(graph.sample_inputs()).keys() == host.infer(host.sample_inputs()).keys()


def test_auto_normalises_in_the_graph_only_where_runs_overlap(bundles: dict[str, Path]) -> None:
    throughput = load_engine(bundles["yolo"], "ort", hint="throughput", streams=2).describe()
    assert throughput["preprocess"] == "graph" and throughput["preprocess_reason"].startswith("auto: hint=throughput")
    proc = load_engine(bundles["yolo"], "ort", hint="throughput", streams=2).make_processor()
    assert isinstance(proc, OrtOverlapProcessor) and proc.spec.dtype == "uint8"
    latency = load_engine(bundles["yolo"], "ort")
    assert latency.describe()["preprocess"] == "host" and latency.make_processor().spec.dtype == "float32"
    host = load_engine(bundles["yolo"], "ort", hint="throughput", streams=2, preprocess="host")
    assert host.describe()["preprocess"] == "host" and host.make_processor().spec.dtype == "float32"
    policy = load_engine(SHIPPED_POLICY, "ort", hint="throughput", streams=2).describe()  # uint8 view + vector
    assert policy["preprocess"] == "host" and "2 inputs" in policy["preprocess_reason"]


def test_graph_where_it_cannot_serve_and_bad_values_are_clear_errors(bundles: dict[str, Path]) -> None:
    with pytest.raises(EngineError) as err:
        load_engine(SHIPPED_POLICY, "ort", preprocess="graph")
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    assert "preprocess=graph" in str(err.value) and "preprocess=host" in str(err.value)
    with pytest.raises(EngineError) as err:
        load_engine(bundles["seg"], "ort", preprocess="gpu")
    assert err.value.exit_code == 2 and "preprocess" in str(err.value) and "graph" in str(err.value)
