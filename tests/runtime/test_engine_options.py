"""Declared engine options: unknown keys and bad values refused (exit 2) before any session; good ones applied."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgepilot.runtime.engines import Engine, describe_options, engine_class, load_engine
from edgepilot.runtime.engines.ops_ort import OrtEngine
from edgepilot.runtime.engines.ops_trt import TrtEngine
from edgepilot.runtime.engines.options import Option, coerce, max_threads, validate_options
from edgepilot.runtime.errors import DeviceError, EngineError

CORES = os.cpu_count() or 1
TOO_MANY = 100_000


@pytest.fixture(scope="module")
def torch_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1x1-conv segmentation bundle with model.pt2, for the torch backend."""
    torch = pytest.importorskip("torch")
    from edgepilot.export.tiny import PREPROCESS, SEG_CLASSES, SEG_PALETTE
    from edgepilot.export.torch_export import export_bundle

    torch.manual_seed(0)
    meta = {"name": "opt-seg", "task": "segmentation", "decoder": {"type": "logits", "output": "logits"},
            "classes": SEG_CLASSES, "palette": SEG_PALETTE, "preprocess": PREPROCESS}
    model = torch.nn.Conv2d(3, len(SEG_CLASSES), 1)  # image [1, 3, 16, 32] -> logits [1, 8, 16, 32]
    return export_bundle(model, torch.randn(1, 3, 16, 32), tmp_path_factory.mktemp("opt") / "seg", meta)


def refused(bundle: Path, backend: str, **options: Any) -> str:
    """The one-line message of the EngineError (exit 2) that building this engine raises."""
    with pytest.raises(EngineError) as err:
        load_engine(bundle, backend, **options)
    assert err.value.exit_code == 2 and not isinstance(err.value, DeviceError)
    assert "\n" not in str(err.value)
    return str(err.value)


def session_threads(engine: Engine) -> int:
    """The intra-op thread count the onnxruntime session was created with (0: onnxruntime's default)."""
    assert isinstance(engine, OrtEngine)
    return int(engine.session.get_session_options().intra_op_num_threads)


@pytest.mark.parametrize("backend", ["null", "ort", "torch"])
def test_unknown_key_is_refused_with_the_known_list(bundles: dict[str, Path], backend: str) -> None:
    # no model.pt2 in this bundle: the option is refused before the torch backend looks for one
    msg = refused(bundles["seg"], backend, threadz=2)
    assert "'threadz'" in msg and f"the {backend} backend" in msg
    for option in engine_class(backend).OPTIONS:
        assert option.name in msg


@pytest.mark.parametrize("backend,key,value,expected", [
    ("null", "delay_ms", -1, "float 0..60000"),
    ("null", "delay_ms", float("nan"), "float 0..60000"),
    ("null", "delay_ms", float("inf"), "float 0..60000"),
    ("null", "delay_ms", "soon", "float 0..60000"),
    ("null", "nan", "maybe", "bool (true or false)"),
    ("null", "nan", 2, "bool (true or false)"),
    ("ort", "threads", "abc", f"int 1..{max_threads()}"),
    ("ort", "threads", 0, f"int 1..{max_threads()}"),
    ("ort", "threads", -3, f"int 1..{max_threads()}"),
    ("ort", "threads", 2.5, f"int 1..{max_threads()}"),
    ("ort", "threads", True, f"int 1..{max_threads()}"),
    ("ort", "provider", "directml", "one of auto|cpu|cuda|tensorrt"),
    ("torch", "threads", "abc", f"int 1..{max_threads()}"),
    ("torch", "cuda_graph", "maybe", "bool (true or false)"),
])
def test_bad_value_is_refused_with_type_and_range(bundles: dict[str, Path], backend: str, key: str,
                                                  value: Any, expected: str) -> None:
    msg = refused(bundles["seg"], backend, **{key: value})
    shown = repr(value) if isinstance(value, str) else str(value)
    assert f"engine option {key}={shown} for the {backend} backend: expected {expected}" in msg


@pytest.mark.parametrize("backend", ["ort", "torch"])
def test_huge_thread_count_is_refused_fast_without_a_session(bundles: dict[str, Path], backend: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: threads=100000 hung and took 2 GB; now it is one line naming the core count."""
    ort = pytest.importorskip("onnxruntime")

    def no_session(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a session was created for a refused option")

    monkeypatch.setattr(ort, "InferenceSession", no_session)
    start = time.perf_counter()
    msg = refused(bundles["seg"], backend, threads=TOO_MANY)
    assert time.perf_counter() - start < 0.5
    assert f"threads={TOO_MANY}" in msg and f"this machine's {CORES} cores" in msg


def test_max_threads_scales_with_cores_and_is_capped() -> None:
    assert (max_threads(1), max_threads(2), max_threads(64), max_threads(1000)) == (4, 8, 256, 256)
    assert max_threads() == min(4 * CORES, 256)


def test_ort_threads_reach_the_session(bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEPILOT_ORT_THREADS", raising=False)
    assert session_threads(load_engine(bundles["seg"], "ort")) == 0  # unset: onnxruntime picks
    engine = load_engine(bundles["seg"], "ort", threads=1)
    assert engine.options == {"provider": "auto", "threads": 1, "spin": True, "hint": "latency", "streams": None,
                              "preprocess": "auto"}
    assert session_threads(engine) == 1
    as_text = load_engine(bundles["seg"], "ort", threads="2", provider="CPU", spin="false")
    assert as_text.options == {"provider": "cpu", "threads": 2, "spin": False, "hint": "latency", "streams": None,
                               "preprocess": "auto"}
    assert session_threads(as_text) == 2
    spin = as_text.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
    assert spin == "0" and as_text.describe()["spin"] is False


def test_ort_threads_from_the_environment_are_checked_too(bundles: dict[str, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPILOT_ORT_THREADS", "1")
    assert session_threads(load_engine(bundles["seg"], "ort")) == 1
    given = load_engine(bundles["seg"], "ort", threads=2)  # an explicit option wins over the variable
    assert session_threads(given) == 2
    for bad in ("abc", "0", str(TOO_MANY)):
        monkeypatch.setenv("EDGEPILOT_ORT_THREADS", bad)
        msg = refused(bundles["seg"], "ort")
        assert f"$EDGEPILOT_ORT_THREADS (option threads)={bad!r}" in msg
        assert f"expected int 1..{max_threads()}" in msg


def test_null_delay_is_coerced_and_applied(bundles: dict[str, Path]) -> None:
    engine = load_engine(bundles["seg"], "null", delay_ms=2)
    assert engine.options == {"delay_ms": 2.0, "nan": False} and isinstance(engine.options["delay_ms"], float)
    feeds = engine.sample_inputs()
    start = time.perf_counter()
    engine.infer(feeds)
    assert (time.perf_counter() - start) * 1e3 >= 2.0


@pytest.mark.parametrize("value,is_nan", [(True, True), ("true", True), (1, True), ("false", False), (0, False)])
def test_null_nan_accepts_bool_spellings(bundles: dict[str, Path], value: Any, is_nan: bool) -> None:
    engine = load_engine(bundles["seg_logits"], "null", nan=value)
    assert engine.options["nan"] is is_nan
    assert bool(np.isnan(engine.infer(engine.sample_inputs())["logits"]).all()) is is_nan


def test_torch_threads_are_applied(torch_bundle: Path) -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        engine = load_engine(torch_bundle, "torch", threads=1)
        assert engine.options == {"threads": 1, "cuda_graph": False}
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)  # a per-process setting: leave it as other tests found it


def test_torch_cuda_graph_on_cpu_is_refused_before_loading(bundles: dict[str, Path]) -> None:
    with pytest.raises(DeviceError, match="cuda_graph needs --device cuda"):
        load_engine(bundles["seg"], "torch", cuda_graph="true")  # this bundle has no model.pt2 to load


def test_trt_declaration_validates_without_an_engine(tmp_path: Path) -> None:
    """TensorRT cannot run here: its declared options go through the same validation directly."""
    specs = TrtEngine.OPTIONS
    assert validate_options(specs, {}, "trt") == {"rebuild": True, "engine": None, "workspace_mb": 1024}
    given = {"rebuild": "false", "engine": str(tmp_path / "x.engine"), "workspace_mb": 16.0}
    assert validate_options(specs, given, "trt") == {"rebuild": False, "engine": tmp_path / "x.engine",
                                                     "workspace_mb": 16}
    for key, value, expected in [("rebuild", "maybe", "bool (true or false)"), ("workspace_mb", 8, "int 16..1048576"),
                                 ("workspace_mb", 1 << 21, "int 16..1048576"), ("engine", "", "path"),
                                 ("engine", 3, "path")]:
        with pytest.raises(EngineError, match="expected " + expected.replace("(", r"\(").replace(")", r"\)")) as err:
            validate_options(specs, {key: value}, "trt")
        assert err.value.exit_code == 2 and f"engine option {key}=" in str(err.value)
    with pytest.raises(EngineError, match=r"unknown engine option 'threads' for the trt backend "
                                          r"\(its options: rebuild, engine, workspace_mb\)") as err:
        validate_options(specs, {"threads": 2}, "trt")
    assert err.value.exit_code == 2


@pytest.mark.parametrize("backend", ["null", "ort", "torch", "trt"])
def test_declarations_are_consistent(backend: str) -> None:
    specs = engine_class(backend).OPTIONS
    assert specs and len({s.name for s in specs}) == len(specs)
    for spec in specs:
        assert spec.help and not spec.help.endswith(".")
        if spec.default is not None:  # every default passes its own declaration unchanged
            assert coerce(spec, spec.default, spec.name, backend) == spec.default


def test_describe_options_gives_one_line_per_option() -> None:
    lines = describe_options("ort")
    assert lines == [
        "provider: auto|cpu|cuda|tensorrt, onnxruntime execution provider; auto takes TensorRT, then CUDA, "
        "on a cuda device and CPU on cpu (default: auto)",
        f"threads: int 1..{max_threads()}, intra-op threads (default: onnxruntime's)",
        "spin: bool, intra-op threads spin-wait between calls (session.intra_op.allow_spinning): lowest "
        "back-to-back latency; false frees the cores for the loop's own threads (default: true)",
        "hint: latency|throughput, latency (one run at a time on all threads) or throughput (CPU: several runs "
        "in flight, the cores shared among them; frames overlap in the threaded loop) (default: latency)",
        f"streams: int 1..{max_threads()}, runs in flight with hint=throughput (default: one per core, at most 4)",
        "preprocess: auto|host|graph, where a frame is normalised: host (numpy, into the float input) or graph "
        "(the frame goes in as uint8 and the model's first ops normalise it, in onnxruntime's threads; CPU "
        "provider); auto: graph with hint=throughput, host otherwise (default: auto)"]
    assert describe_options("null")[0].startswith("delay_ms: float 0..60000, ") and \
        describe_options("null")[0].endswith("(default: 0)")
    assert [line.split(":")[0] for line in describe_options("trt")] == ["rebuild", "engine", "workspace_mb"]
    with pytest.raises(EngineError, match="unknown backend 'tflite'"):
        describe_options("tflite")


def test_option_declaration_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        Option("x", "complex", "a number")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs choices"):
        Option("x", "choice", "one of nothing")
