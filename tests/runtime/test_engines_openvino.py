"""The openvino backend on CPU: precisions against ort, in-graph preprocessing, the model cache, options, auto."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgepilot.export import tiny
from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.engines import CPU_EVIDENCE, CPU_PREFERENCE, choose_backend, load_engine
from edgepilot.runtime.engines.ops_openvino import half_precision
from edgepilot.runtime.engines.options import max_threads
from edgepilot.runtime.errors import BundleError, DeviceError, EngineError
from edgepilot.runtime.frame import Detections, Frame, SegMap
from edgepilot.runtime.pipeline import run_loop
from edgepilot.runtime.sources import Source, SyntheticCapture

pytest.importorskip("openvino", reason="the openvino extra is not installed: pip install 'edgepilot[openvino]'")

# Same graph, same fp32 inputs, two libraries' kernels: float32 rounding only.
FP32_ATOL = 1e-3
# FP16-rounded weights on a 3-conv net with logits of magnitude ~10 (as ort's FP16_ATOL).
FP16_ATOL = 0.05
# bf16 (what fp16 runs in on a CPU with BF16 but no FP16 arithmetic) keeps 8 mantissa bits
BF16_ATOL = 0.25
# Both run the same Q/DQ graph but round at different points (OpenVINO folds the scales into
# its INT8 kernels): logits may differ by a few quantisation steps.
INT8_ATOL = 0.5
# In-graph bilinear resize rounds differently from cv2's fixed-point uint8 resize (at most 1 LSB
# per pixel value), which moves this untrained net's logits by ~0.02; about 16% of its pixels
# have their two best logits closer than 0.05, and those may flip (measured: 0.4-0.9% of pixels).
IN_GRAPH_LOGIT_ATOL = 0.05
IN_GRAPH_MISMATCH = 0.02


# Tests on the session's shared bundles pass cache=False so they leave no engines/openvino behind;
# the cache itself is tested on copies.


def copy_bundle(src: Path, dst: Path) -> Path:
    return Path(shutil.copytree(src, dst, ignore=shutil.ignore_patterns("engines")))


def frames(n: int = 4, hw: tuple[int, int] = (360, 640)) -> list[np.ndarray]:
    """Camera-like frames (smooth gradient with a moving square) at a size other than the model's."""
    cam = SyntheticCapture(hw[1], hw[0], 30.0)
    return [cam.frame(3 * i) for i in range(n)]


def quantize(folder: Path, n_calib: int = 8) -> Path:
    """Add a Q/DQ INT8 graph (symmetric, per-channel weights) made by onnxruntime's quantize_static."""
    q = pytest.importorskip("onnxruntime.quantization")
    bundle = load_bundle(folder)
    spec = bundle.inputs[0]
    shape = tuple(d or 1 for d in spec.shape)

    class Reader(q.CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.items = iter([{spec.name: rng.standard_normal(shape).astype(np.float32)} for _ in range(n_calib)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    meta = json.loads((folder / "meta.json").read_text())
    meta["files"] = {"int8": "quantised.onnx"}  # a renamed int8 file: the backend must go through FILES
    (folder / "meta.json").write_text(json.dumps(meta))
    q.quantize_static(str(folder / "model.onnx"), str(folder / "quantised.onnx"), Reader(),
                      quant_format=q.QuantFormat.QDQ, per_channel=True, activation_type=q.QuantType.QInt8,
                      weight_type=q.QuantType.QInt8, extra_options={"ActivationSymmetric": True})
    return folder


@pytest.fixture(scope="module")
def int8_bundle(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quantize(copy_bundle(bundles["seg_logits"], tmp_path_factory.mktemp("ov") / "seg_int8"))


def refused(bundle: Path, backend: str = "openvino", **options: Any) -> str:
    with pytest.raises(EngineError) as err:
        load_engine(bundle, backend, **options)
    assert err.value.exit_code == 2 and not isinstance(err.value, DeviceError)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("precision,atol", [("fp32", FP32_ATOL), ("fp16", FP16_ATOL), ("int8", INT8_ATOL)])
def test_each_precision_agrees_with_ort(bundles: dict[str, Path], int8_bundle: Path, tmp_path: Path,
                                        precision: str, atol: float) -> None:
    folder = int8_bundle if precision == "int8" else copy_bundle(bundles["seg_logits"], tmp_path / "seg")
    ov, ort = load_engine(folder, "openvino", precision, threads=1), load_engine(folder, "ort", precision)
    info = ov.describe()
    caps = ov.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    expected = half_precision(caps) if precision in ("fp16", "int8") else "f32"  # int8: int8_float=half
    assert (info["backend"], info["precision"], info["inference_precision"]) == ("openvino", precision, expected)
    if precision in ("fp16", "int8") and expected == "bf16":
        atol = max(atol, BF16_ATOL)
    assert info["model"] == {"fp32": "model.onnx", "fp16": "model.fp16.xml", "int8": "quantised.onnx"}[precision]
    reference = load_engine(folder, "ort", "fp32") if precision == "int8" else None
    for seed in range(3):
        feeds = ov.sample_inputs(seed)
        a, b = ov.infer(feeds)["logits"], ort.infer(feeds)["logits"]
        assert a.dtype == np.float32 and a.shape == b.shape == (1, 8, 128, 256)
        assert float(np.abs(a - b).max()) < atol
        agree = float((np.argmax(a, 1) == np.argmax(b, 1)).mean())
        if reference is None:
            assert agree > (0.999 if precision == "fp32" else 0.98)
        else:
            # This untrained net's logits are close, so int8 rounding flips a few % of pixels, by how
            # much depends on the CPU's int8 kernels (VNNI or plain AVX2: 0.973-0.977 between the two
            # engines on an AVX2-only EPYC). The two int8 engines must agree with each other at least
            # as well as each agrees with fp32 (and a wrong int8 path agrees on ~1/8 of the pixels).
            ref = np.argmax(reference.infer(feeds)["logits"], 1)
            to_fp32 = min(float((np.argmax(a, 1) == ref).mean()), float((np.argmax(b, 1) == ref).mean()))
            assert agree >= min(to_fp32, 0.98) and agree > 0.9, (agree, to_fp32)
    if precision == "int8":  # the quantised graph really is a different model from fp32
        fp32 = load_engine(folder, "openvino", "fp32", threads=1).infer(feeds)["logits"]
        assert float(np.abs(fp32 - a).max()) > 1e-3


@pytest.mark.parametrize("name", ["seg", "centernet", "yolo", "policy"])
def test_every_task_agrees_with_ort_on_raw_inputs(bundles: dict[str, Path], name: str) -> None:
    ov, ort = load_engine(bundles[name], "openvino", cache=False), load_engine(bundles[name], "ort")
    feeds = ov.sample_inputs(seed=2)
    a, b = ov.infer(feeds), ort.infer(feeds)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape
        if a[key].dtype == np.uint8:  # in-graph argmax: ties broken alike, so exact up to rounding flips
            assert (a[key] == b[key]).mean() > 0.999
        else:
            np.testing.assert_allclose(a[key], b[key], atol=FP32_ATOL, rtol=1e-4)


def test_dynamic_bundle_runs_at_the_given_size(bundles: dict[str, Path]) -> None:
    ov = load_engine(bundles["seg_dynamic"], "openvino", cache=False, hw=(64, 128))
    ort = load_engine(bundles["seg_dynamic"], "ort", hw=(64, 128))
    feeds = ov.sample_inputs(seed=4)
    assert ov.infer(feeds)["class_ids"].shape == (1, 64, 128)
    assert (ov.infer(feeds)["class_ids"] == ort.infer(feeds)["class_ids"]).mean() > 0.999
    with pytest.raises(EngineError, match="dynamic dims"):
        load_engine(bundles["seg_dynamic"], "openvino")


def test_in_graph_preprocessing_is_the_host_maths(bundles: dict[str, Path]) -> None:
    """Same frames, ort's host path vs OpenVINO's compiled preprocessing: class ids differ only at near-ties."""
    ort = load_engine(bundles["seg_logits"], "ort")
    ov = load_engine(bundles["seg_logits"], "openvino", cache=False, threads=1, preprocess="graph")
    host, graph = ort.make_processor(), ov.make_processor()
    assert ov.describe()["preprocess"] == "graph"
    for image in frames() + frames(2, (128, 256)) + frames(1, (100, 200)):
        a, b = graph(Frame.captured(0, image)), host(Frame.captured(0, image))
        assert isinstance(a, SegMap) and isinstance(b, SegMap) and a.class_ids.shape == (128, 256)
        assert (a.class_ids != b.class_ids).mean() < IN_GRAPH_MISMATCH
        # the logits themselves: the compiled model's input is the raw uint8 BGR frame
        compiled = ov.compile_for_frames(image.shape[:2]).model
        assert tuple(compiled.inputs[0].get_shape()) == (1, *image.shape) and \
            compiled.inputs[0].get_element_type().to_dtype() == np.uint8
        in_graph = compiled({0: image[None]})[compiled.output("logits")]
        on_host = ort.infer({"image": host.pre(image)[0]})["logits"]
        assert float(np.abs(in_graph - on_host).max()) < IN_GRAPH_LOGIT_ATOL
        top2 = np.sort(on_host, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 2 * IN_GRAPH_LOGIT_ATOL  # not a near-tie: must agree exactly
        assert np.array_equal(in_graph.argmax(1)[clear], on_host.argmax(1)[clear])


def matched(mine: Detections, theirs: Detections, atol_px: float = 0.5) -> float:
    """Share of ``theirs`` with a detection in ``mine`` of the same class and a box within ``atol_px``."""
    hits = [bool(((np.abs(mine.boxes - box).max(axis=1) < atol_px) & (mine.class_ids == cls)).any())
            for box, cls in zip(theirs.boxes, theirs.class_ids, strict=True)]
    return float(np.mean(hits)) if hits else 1.0


def test_in_graph_detection_gives_the_host_boxes(bundles: dict[str, Path], tmp_path: Path) -> None:
    """CenterNet (stretch resize) on the same frames: the same detections, boxes within 0.5 source px.

    The untrained heatmap has hundreds of peaks decided by ``heat == maxpool(heat)``; a
    neighbour within the resize rounding (heat moves by ~0.005) can take a peak over, so
    ~1% of detections differ between the paths (measured 0.5-1.1% on these frames).
    With the host's own input tensor (preprocess=host) they agree exactly.
    """
    folder = copy_bundle(bundles["centernet"], tmp_path / "cn")
    meta = json.loads((folder / "meta.json").read_text())
    meta["decoder"]["max_detections"] = 1000  # no cut among near-equal scores
    (folder / "meta.json").write_text(json.dumps(meta))
    host = load_engine(folder, "ort").make_processor()
    graph = load_engine(folder, "openvino", threads=1, preprocess="graph").make_processor()
    same_input = load_engine(folder, "openvino", threads=1).make_processor()  # host preprocessing: the default
    rng = np.random.default_rng(0)
    for _ in range(3):
        image = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
        a, b, c = (p(Frame.captured(0, image)) for p in (graph, host, same_input))
        assert isinstance(a, Detections) and isinstance(b, Detections) and isinstance(c, Detections)
        assert len(b) > 100 and abs(len(a) - len(b)) <= 0.02 * len(b)
        assert matched(a, b) >= 0.97 and matched(b, a) >= 0.97
        assert len(c) == len(b) and matched(c, b, atol_px=0.01) == 1.0


def test_letterbox_bundles_stay_on_the_host(bundles: dict[str, Path]) -> None:
    ov = load_engine(bundles["yolo"], "openvino", cache=False)
    assert ov.describe()["preprocess"] == "host"  # the default
    host, proc = load_engine(bundles["yolo"], "ort").make_processor(), ov.make_processor()
    for image in frames(2):
        a, b = proc(Frame.captured(0, image)), host(Frame.captured(0, image))
        assert isinstance(a, Detections) and isinstance(b, Detections) and len(a) == len(b)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.05)
    msg = refused(bundles["yolo"], preprocess="graph")
    assert "preprocess=graph" in msg and "letterbox" in msg and "preprocess=host" in msg
    assert "a policy bundle takes no camera frame" in refused(bundles["policy"], preprocess="graph")


@pytest.mark.parametrize("options", [{"overlap": True, "preprocess": "graph"}, {"overlap": True, "preprocess": "host"},
                                     {"hint": "throughput", "threads": 2}])
def test_overlapping_requests_in_the_loop_give_the_sync_results(bundles: dict[str, Path],
                                                               options: dict[str, Any]) -> None:
    """Requests started in prepare and awaited in complete: every frame, in order, same class maps."""
    sync = load_engine(bundles["seg"], "openvino", cache=False, threads=1, preprocess=options.get("preprocess", "host"))
    eng = load_engine(bundles["seg"], "openvino", cache=False, **options)
    assert eng.describe()["overlap"] is True
    cam = SyntheticCapture(320, 180, 1e6)
    expected = [sync.make_processor()(Frame.captured(i, cam.frame(i))).class_ids.copy() for i in range(24)]
    got: dict[int, np.ndarray] = {}

    def keep(result: Any) -> None:
        got[result.frame.id] = result.output.class_ids

    source = Source(lambda: SyntheticCapture(320, 180, 1e6), description="synthetic", live=False, limit=24)
    report, error = run_loop(source, eng.make_processor(), on_result=keep)
    assert error is None and report.frames == 24 and sorted(got) == list(range(24))
    for i in range(24):
        np.testing.assert_array_equal(got[i], expected[i])


def test_compiled_model_cache_hit_and_stale_rebuild(bundles: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_bundle(bundles["seg_logits"], tmp_path / "seg")
    first = load_engine(folder, "openvino", threads=1).describe()
    assert first["from_cache"] is False and Path(first["cache"]).parent == folder / "engines" / "openvino"
    stored = json.loads(Path(first["cache"]).with_suffix(".json").read_text())
    assert stored["onnx_sha256"] == load_bundle(folder).onnx_sha256() and stored["precision"] == "fp32"
    again = load_engine(folder, "openvino", threads=1)
    assert again.describe()["from_cache"] is True and again.describe()["fingerprint"] == first["fingerprint"]
    assert load_engine(folder, "openvino", threads=1, cache=False).describe()["cache"] is None
    assert load_engine(folder, "openvino", threads=2).describe()["from_cache"] is False  # other config

    tiny.segmentation_bundle(folder, argmax=False, seed=5)  # new ONNX bytes, same meta
    fresh = load_engine(folder, "openvino", threads=1)
    assert fresh.describe()["from_cache"] is False and fresh.describe()["fingerprint"] != first["fingerprint"]
    feeds = fresh.sample_inputs(seed=1)
    new = load_engine(folder, "ort").infer(feeds)["logits"]
    np.testing.assert_allclose(fresh.infer(feeds)["logits"], new, atol=FP32_ATOL)
    assert float(np.abs(again.infer(feeds)["logits"] - new).max()) > 0.1  # the old model really differed


def test_a_cache_folder_without_its_fingerprint_is_never_loaded(bundles: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_bundle(bundles["seg"], tmp_path / "seg")
    cache = Path(load_engine(folder, "openvino", threads=1).describe()["cache"])
    sidecar = cache.with_suffix(".json")
    for damage in ('{"onnx_sha256": "0"}', None):  # a foreign fingerprint, then none at all
        if damage is None:
            sidecar.unlink()
        else:
            sidecar.write_text(damage)
        again = load_engine(folder, "openvino", threads=1).describe()
        assert again["from_cache"] is False and again["cache"] == str(cache)
        assert json.loads(sidecar.read_text())["precision"] == "fp32"  # rewritten after the rebuild


def test_fp16_ir_is_cached_and_regenerated(bundles: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_bundle(bundles["seg_logits"], tmp_path / "seg")
    load_engine(folder, "openvino", "fp16", threads=1)
    ir = folder / "engines" / "openvino" / "model.fp16.xml"
    record = json.loads(ir.with_suffix(".json").read_text())
    assert record["source_sha256"] == load_bundle(folder).onnx_sha256()
    stamp = ir.stat().st_mtime_ns
    assert load_engine(folder, "openvino", "fp16", threads=1).describe()["from_cache"] is True
    assert ir.stat().st_mtime_ns == stamp
    tiny.segmentation_bundle(folder, argmax=False, seed=5)
    fresh = load_engine(folder, "openvino", "fp16", threads=1)
    assert fresh.describe()["from_cache"] is False
    assert json.loads(ir.with_suffix(".json").read_text())["source_sha256"] == load_bundle(folder).onnx_sha256()
    feeds = fresh.sample_inputs(seed=1)
    new32 = load_engine(folder, "ort").infer(feeds)["logits"]
    assert float(np.abs(fresh.infer(feeds)["logits"] - new32).max()) < FP16_ATOL


def test_int8_missing_is_the_ort_bundle_error(bundles: dict[str, Path]) -> None:
    with pytest.raises(BundleError, match="no int8 model") as err:
        load_engine(bundles["seg"], "openvino", "int8")
    assert err.value.exit_code == 2


def test_bad_onnx_file_is_a_bundle_error(bundles: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_bundle(bundles["seg"], tmp_path / "seg")
    (folder / "model.onnx").write_bytes(b"not onnx at all\n")
    with pytest.raises(BundleError, match="not a valid ONNX model") as err:
        load_engine(load_bundle(folder, check_onnx=False), "openvino")
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


@pytest.mark.parametrize("key,value,expected", [
    ("threads", 0, f"int 1..{max_threads()}"),
    ("threads", "many", f"int 1..{max_threads()}"),
    ("streams", 0, f"int 1..{max_threads()}"),
    ("hint", "fast", "one of latency|throughput"),
    ("cache", "maybe", "bool (true or false)"),
    ("preprocess", "gpu", "one of host|graph"),
    ("overlap", 3, "bool (true or false)"),
    ("argmax", "rows", "one of last|channels"),
])
def test_bad_options_are_clear_errors(bundles: dict[str, Path], key: str, value: Any, expected: str) -> None:
    msg = refused(bundles["seg"], **{key: value})
    shown = repr(value) if isinstance(value, str) else str(value)
    assert f"engine option {key}={shown} for the openvino backend: expected {expected}" in msg


def test_unknown_option_lists_the_known_ones(bundles: dict[str, Path]) -> None:
    msg = refused(bundles["seg"], provider="cpu")
    assert "unknown engine option 'provider' for the openvino backend" in msg
    assert "(its options: threads, streams, hint, cache, preprocess, int8_float, overlap, argmax)" in msg
    with pytest.raises(DeviceError, match="cannot run on cuda:0"):
        load_engine(bundles["seg"], "openvino", device="cuda")


def test_options_reach_the_compiled_model(bundles: dict[str, Path]) -> None:
    info = load_engine(bundles["seg"], "openvino", cache=False, threads=1, hint="latency").describe()
    assert (info["threads"], info["streams"], info["hint"], info["overlap"]) == (1, 1, "latency", False)
    info = load_engine(bundles["seg"], "openvino", cache=False, threads=2, streams=2, hint="throughput").describe()
    assert (info["threads"], info["streams"], info["overlap"]) == (2, 2, True)
    assert load_engine(bundles["seg"], "openvino", cache=False, hint="throughput", overlap=False).describe()["overlap"] is False


def test_wrong_input_is_a_clear_error(bundles: dict[str, Path]) -> None:
    engine = load_engine(bundles["seg"], "openvino", cache=False)
    with pytest.raises(EngineError, match=r"input 'image' expects shape \[1, 3, 128, 256\]") as err:
        engine.infer({"image": np.zeros((1, 3, 64, 64), np.float32)})
    assert err.value.exit_code == 2


def test_auto_measures_the_bundle_keeps_the_fastest_and_remembers(bundles: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_bundle(bundles["seg"], tmp_path / "seg")
    engine = load_engine(folder, "auto", threads=1)
    info = engine.describe()
    record = json.loads((folder / "engines" / "auto.json").read_text())
    (key, rec), = record.items()
    assert set(rec["p50_ms"]) == {"ort", "openvino"}
    assert info["backend"] == rec["backend"] == min(rec["p50_ms"], key=rec["p50_ms"].get)
    assert info["chosen_by"].startswith(f"auto: {info['backend']} is the fastest installed CPU backend for this "
                                        "bundle at fp32 (engine p50 ")
    assert "measured now, kept in the bundle's engines/auto.json" in info["chosen_by"]
    # the next load takes the stored decision; a different thread count is another decision
    again = load_engine(folder, "auto", threads=1).describe()
    assert again["backend"] == info["backend"] and f"measured {rec['measured']}" in again["chosen_by"]
    load_engine(folder, "auto", threads=2)
    assert len(json.loads((folder / "engines" / "auto.json").read_text())) == 2
    # a record naming something else, or garbage, is measured again rather than trusted
    (folder / "engines" / "auto.json").write_text("{not json")
    assert "measured now" in load_engine(folder, "auto", threads=1).describe()["chosen_by"]


def test_auto_on_a_read_only_bundle_measures_each_time(bundles: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from edgepilot.runtime.engines import auto

    monkeypatch.setattr(auto, "store_choice", lambda *a: False)
    info = load_engine(copy_bundle(bundles["seg"], tmp_path / "seg"), "auto", threads=1).describe()
    assert "the bundle is read-only, so it is measured on every load" in info["chosen_by"]


def test_auto_options_narrow_the_candidates(bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPILOT_AUTO_MEASURE", "0")
    info = load_engine(bundles["seg"], "auto", cache=False, threads=1).describe()
    assert info["backend"] == "openvino" and info["chosen_by"].endswith("(ort takes no option 'cache')")
    info = load_engine(bundles["seg"], "auto", provider="cpu").describe()
    assert info["backend"] == "ort" and info["chosen_by"].endswith("(openvino takes no option 'provider')")
    msg = refused(bundles["seg"], "auto", provider="cpu", cache=False)
    assert msg.startswith("no backend auto can choose takes every engine option given (cache, provider)")
    # bad values are bad input, not a reason to try the next backend
    assert "threads" in refused(bundles["seg"], "auto", threads=0)


def test_auto_without_measuring_follows_the_static_order(bundles: dict[str, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPILOT_AUTO_MEASURE", "0")
    for precision in ("fp32", "fp16"):
        info = load_engine(bundles["seg"], "auto", precision).describe()
        assert info["backend"] == CPU_PREFERENCE[precision][0]
        assert info["chosen_by"].startswith(f"auto: {info['backend']} is the fastest installed CPU backend for "
                                            f"{precision} on the YOLOv8n-class benchmark")
    assert [name for name, _ in choose_backend("int8", "cpu")] == list(CPU_PREFERENCE["int8"])
    assert choose_backend("fp32", "cuda:0")[0][0] == "ort"


def test_auto_preference_follows_the_committed_benchmark() -> None:
    """CPU_PREFERENCE puts first a backend within 10% of the fastest engine p50 in cpu_compare.json."""
    results = Path(__file__).resolve().parents[2] / CPU_EVIDENCE
    if not results.is_file():
        pytest.skip(f"{CPU_EVIDENCE} not written yet (python benchmarks/bench_cpu_compare.py)")
    rows = [r for r in json.loads(results.read_text())["rows"] if r["model"] == "yolov8n" and r["variant"] == "default"]
    for precision, order in CPU_PREFERENCE.items():
        p50 = {r["backend"]: r["engine"]["p50_ms"] for r in rows if r["precision"] == precision}
        assert p50[order[0]] <= 1.1 * min(p50.values()), (precision, p50)


def test_auto_without_openvino_runs_ort_and_names_the_extra(bundles: dict[str, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    info = load_engine(bundles["seg"], "auto", "fp16").describe()  # fp16: openvino leads the static order
    assert info["backend"] == "ort" and "pip install 'edgepilot[openvino]'" in info["chosen_by"]


def test_auto_falls_back_when_openvino_cannot_compile(bundles: dict[str, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from edgepilot.runtime.engines.ops_openvino import OpenVinoEngine

    def broken(*args: Any, **kwargs: Any) -> None:
        raise EngineError("OpenVINO could not compile seg for the CPU: unsupported op")

    monkeypatch.setattr(OpenVinoEngine, "from_bundle", classmethod(broken))
    info = load_engine(bundles["seg"], "auto").describe()
    assert info["backend"] == "ort" and "openvino failed (OpenVINO could not compile" in info["chosen_by"]
    with pytest.raises(BundleError, match="no int8 model"):  # bad input is not papered over
        load_engine(bundles["seg"], "auto", "int8")


def test_run_with_backend_auto_reports_what_ran_and_why(bundles: dict[str, Path], tmp_path: Path) -> None:
    from edgepilot import cli

    report = tmp_path / "r.json"
    assert cli.main(["run", "synthetic:64x48@200:4", "--model", str(bundles["seg"]), "--backend", "auto",
                     "--no-progress", "--report", str(report)]) == 0
    engine = json.loads(report.read_text())["engine"]
    assert engine["backend"] in ("ort", "openvino")
    assert engine["chosen_by"].startswith(f"auto: {engine['backend']} is the fastest installed CPU backend")


def test_zz_ctrl_c_after_engines_were_released_does_not_crash() -> None:
    """Regression: once the engines above were garbage-collected, the next SIGINT crashed the
    process (a released Core unloaded libraries that had installed signal handlers). Runs last
    in this file on purpose; every engine above is gone by now."""
    import gc
    import signal

    from edgepilot.runtime.engines.ops_openvino import shared_core

    gc.collect()
    ov = pytest.importorskip("openvino")
    assert shared_core(ov) is shared_core(ov)
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_caller_defaults_apply_to_their_backend_only_and_never_narrow_auto(bundles: dict[str, Path],
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    throughput = {"openvino": {"hint": "throughput"}}
    assert load_engine(bundles["seg"], "openvino", defaults=throughput).describe()["hint"] == "throughput"
    assert load_engine(bundles["seg"], "openvino", defaults=throughput, hint="latency").describe()["hint"] == "latency"
    assert load_engine(bundles["seg"], "ort", defaults=throughput).backend == "ort"  # not an ort option: unused
    monkeypatch.setenv("EDGEPILOT_AUTO_MEASURE", "0")
    info = load_engine(bundles["seg"], "auto", "fp16", defaults=throughput).describe()
    assert info["backend"] == "openvino" and info["hint"] == "throughput" and "takes no option" not in info["chosen_by"]


def test_throughput_is_measured_where_requests_overlap(bundles: dict[str, Path]) -> None:
    ov = load_engine(bundles["seg"], "openvino", hint="throughput")
    fps = ov.throughput_fps(ov.sample_inputs(), 6)
    assert fps is not None and fps > 0
    assert load_engine(bundles["seg"], "openvino").throughput_fps(ov.sample_inputs(), 6) is None  # one at a time
    assert load_engine(bundles["seg"], "ort").throughput_fps(ov.sample_inputs(), 6) is None


@pytest.mark.parametrize("backend", ["openvino", "ort"])
def test_run_processes_a_file_for_throughput_and_a_live_source_for_latency(bundles: dict[str, Path],
                                                                           tmp_path: Path, backend: str) -> None:
    from edgepilot import cli
    from edgepilot.runtime.synthetic import write_pattern_clip

    clip = write_pattern_clip(tmp_path / "clip.avi", 6, (96, 128))
    hints, streams = [], []
    for source, extra in ((str(clip), []), (str(clip), ["--realtime"]), ("synthetic:64x48@200:4", [])):
        report = tmp_path / "r.json"
        assert cli.main(["run", source, "--model", str(bundles["seg"]), "--backend", backend, "--no-progress",
                         "--report", str(report), *extra]) == 0
        engine = json.loads(report.read_text())["engine"]
        hints.append(engine["hint"])
        streams.append(engine["streams"])
    assert hints == ["throughput", "latency", "latency"]
    if backend == "ort":  # one run per core (at most 4) in flight on a file, one at a time otherwise
        assert streams == [min(len(os.sched_getaffinity(0)), 4), 1, 1]


def test_int8_float_option_sets_the_precision_of_the_float_ops(int8_bundle: Path) -> None:
    half = load_engine(int8_bundle, "openvino", "int8", threads=1)
    caps = half.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    f32 = load_engine(int8_bundle, "openvino", "int8", threads=1, int8_float="f32")
    assert half.describe()["inference_precision"] == half_precision(caps)
    assert f32.describe()["inference_precision"] == "f32"
    assert half.describe()["fingerprint"] != f32.describe()["fingerprint"] or half_precision(caps) == "f32"
    feeds = half.sample_inputs(1)
    a, b = half.infer(feeds)["logits"], f32.infer(feeds)["logits"]
    assert float((np.argmax(a, 1) == np.argmax(b, 1)).mean()) > 0.9
    assert "int8_float" in refused(int8_bundle, precision="int8", int8_float="f64")


@pytest.fixture(scope="module")
def argmax_int8_bundle(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quantize(copy_bundle(bundles["seg"], tmp_path_factory.mktemp("ov") / "seg_ids_int8"))


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_argmax_over_the_last_axis_gives_the_same_class_ids(bundles: dict[str, Path], argmax_int8_bundle: Path,
                                                            precision: str) -> None:
    """The channels-last rewrite of the final argmax (a TopK in OpenVINO) changes no class id."""
    folder = argmax_int8_bundle if precision == "int8" else bundles["seg"]
    last = load_engine(folder, "openvino", precision, argmax="last", cache=False, threads=1)
    chans = load_engine(folder, "openvino", precision, argmax="channels", cache=False, threads=1)
    assert last.describe()["argmax"] == "last" and chans.describe()["argmax"] == "channels"
    assert last.describe()["fingerprint"] != chans.describe()["fingerprint"]  # never one cache entry for both
    rng = np.random.default_rng(1)
    name = load_bundle(folder).inputs[0].name
    for _ in range(3):
        x = {name: rng.standard_normal((1, 3, 128, 256)).astype(np.float32)}
        a, b = last.infer(x)["class_ids"], chans.infer(x)["class_ids"]
        assert a.shape == b.shape == (1, 128, 256) and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_argmax_default_follows_the_arithmetic(bundles: dict[str, Path]) -> None:
    """channels-last unless the whole model runs in 16-bit arithmetic (fp16 on a CPU with FP16 or BF16)."""
    fp32 = load_engine(bundles["seg"], "openvino", "fp32", cache=False)
    fp16 = load_engine(bundles["seg"], "openvino", "fp16", cache=False)
    assert fp32.describe()["argmax"] == "last"
    assert fp16.describe()["argmax"] == ("last" if fp16.inference_precision == "f32" else "channels")


def test_argmax_rewrite_leaves_graphs_without_a_channel_argmax_alone(bundles: dict[str, Path]) -> None:
    import openvino as ov

    from edgepilot.runtime.build.openvino import argmax_channels_last
    from edgepilot.runtime.engines.ops_openvino import shared_core

    core = shared_core(ov)  # never a Core of its own: see shared_core
    for name, expected in (("seg", 1), ("seg_logits", 0), ("centernet", 0)):
        model = core.read_model(str(bundles[name] / "model.onnx"))
        assert argmax_channels_last(ov, model) == expected, name
        if expected:
            assert [o.get_any_name() for o in model.outputs] == ["class_ids"]


def test_half_precision_prefers_bf16_where_the_cpu_has_both() -> None:
    """x86 CPUs that list FP16 (AVX512-FP16) list BF16 too, and run bf16 faster; ARM lists FP16 only."""
    assert half_precision(["FP32", "FP16", "BF16", "INT8"]) == "bf16"
    assert half_precision(["FP32", "BF16"]) == "bf16"
    assert half_precision(["FP32", "FP16"]) == "f16"
    assert half_precision(["FP32", "INT8"]) == "f32"


def test_a_16_bit_compile_that_fails_falls_back_to_f32_and_says_so(int8_bundle: Path, monkeypatch) -> None:
    """OpenVINO's CPU plugin can refuse a 16-bit graph (an INT8 model with an f16 rest on an AVX512-FP16
    Xeon: 'could not append an elementwise post-op'); the engine then compiles in f32 and reports it."""
    import edgepilot.runtime.engines.ops_openvino as ops

    real = ops.compile_cached
    tried: list[str] = []

    def compile_or_fail(ov: Any, core: Any, model: Any, config: Any, *args: Any, **kw: Any) -> Any:
        tried.append(config["INFERENCE_PRECISION_HINT"])
        if config["INFERENCE_PRECISION_HINT"] != "f32":
            raise EngineError("OpenVINO could not compile x for the CPU: could not append an elementwise post-op")
        return real(ov, core, model, config, *args, **kw)

    monkeypatch.setattr(ops, "half_precision", lambda caps: "f16")  # a 16-bit compile on any CPU
    monkeypatch.setattr(ops, "compile_cached", compile_or_fail)
    engine = load_engine(int8_bundle, "openvino", "int8", threads=1, cache=False)
    info = engine.describe()
    assert tried == ["f16", "f32"]
    assert info["inference_precision"] == "f32" and engine.config["INFERENCE_PRECISION_HINT"] == "f32"
    assert "f16 did not compile" in info["inference_precision_fallback"]
    assert "elementwise post-op" in info["inference_precision_fallback"]
    assert engine.infer(engine.sample_inputs(0))["logits"].shape == (1, 8, 128, 256)
    # an f32 compile that fails is still an error: nothing lower to fall back to
    tried.clear()
    monkeypatch.setattr(ops, "compile_cached", lambda *a, **k: (_ for _ in ()).throw(EngineError("broken")))
    with pytest.raises(EngineError, match="broken"):
        load_engine(int8_bundle, "openvino", "int8", threads=1, cache=False, int8_float="f32")
