"""``edgepilot build`` and ``export --engine``: the TensorRT build path against a fake tensorrt module,
and the trtexec script written where TensorRT is missing. Real builds are marked ``trt``."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgepilot import cli
from edgepilot.commands import build, export
from edgepilot.export import engine
from edgepilot.export.engine import BuildOptions, build_or_script, precisions_of
from edgepilot.runtime.build.cache import Fingerprint, read_sidecar
from edgepilot.runtime.build.fp16 import fp16_model
from edgepilot.runtime.bundle import Bundle, file_sha256, load_bundle
from edgepilot.runtime.errors import BundleError, DeviceError
from tests.export.fake_tensorrt import MISMATCHED, FakeTensorRT
from tests.export.helpers import with_int8

ROOT = Path(__file__).resolve().parents[2]
GPU = ("Fake Orin", "8.7")


@pytest.fixture()
def bundle(bundles: dict[str, Path], tmp_path: Path) -> Bundle:
    """A private copy of the tiny seg bundle with FP16 (converted) and stand-in INT8 graphs."""
    folder = shutil.copytree(bundles["seg"], tmp_path / "seg")
    fp16_model(load_bundle(folder))
    return load_bundle(with_int8(folder))


@pytest.fixture()
def gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "cuda_gpu", lambda index: GPU)


def test_commands_are_registered() -> None:
    assert build in cli.COMMANDS and cli.build_parser().parse_args(["build", "b"]).precision == "all"
    args = cli.build_parser().parse_args(["export", "--from-onnx", "m.onnx", "--out", "o", "--engine"])
    assert args.engine is True


def test_all_means_every_graph_the_bundle_has(bundles: dict[str, Path], bundle: Bundle) -> None:
    assert precisions_of(bundle) == ("fp32", "fp16", "int8")
    assert precisions_of(load_bundle(bundles["seg"])) == ("fp32", "fp16")  # fp16 is converted when missing
    assert precisions_of(bundle, "int8") == ("int8",)


def test_strongly_typed_builds_into_the_fingerprinted_cache(bundle: Bundle, gpu: None) -> None:
    trt = FakeTensorRT("10.3.0")
    result = build_or_script(bundle, "all", BuildOptions(workspace_mb=512), trt=trt)
    assert result.script is None and [e.fingerprint.precision for e in result.engines] == ["fp32", "fp16", "int8"]
    # no precision flag, no calibrator: each network is strongly typed and typed by its own graph
    assert trt.called("create_network") == [1 << 1] * 3 and trt.called("set_flag") == []
    graphs = {p: file_sha256(bundle.file(p)) for p in ("fp32", "fp16", "int8")}
    assert trt.called("parse") == list(graphs.values())
    assert trt.called("set_memory_pool_limit") == [("WORKSPACE", 512 << 20)] * 3
    assert trt.called("profile") == [{"image": ((1, 3, 128, 256),) * 3}] * 3
    for e in result.engines:
        p = e.fingerprint.precision
        assert e.built and e.path.parent == bundle.path / "engines" and e.path.suffix == ".engine"
        assert e.path.read_bytes() == f"engine of {graphs[p]}".encode()
        assert read_sidecar(e.path.with_suffix(".json")) == e.fingerprint == Fingerprint.make(
            graphs[p], "10.3.0", *GPU, p, {"image": (1, 3, 128, 256)}, "ab" * 32 if p == "int8" else None)
    # the timing cache is read, grown by each build and kept for the next
    assert (bundle.path / "engines" / "timing.cache").read_bytes() == b"[timing]" * 3
    again = FakeTensorRT("10.3.0")
    kept = build_or_script(bundle, "fp16", trt=again)
    assert not kept.engines[0].built and again.called("build") == []
    newer = FakeTensorRT("11.0.0")  # another TensorRT is another engine, built the same way
    rebuilt = build_or_script(bundle, "fp16", trt=newer)
    assert rebuilt.engines[0].built and newer.called("create_network") == [2] and newer.called("set_flag") == []


def test_a_timing_cache_of_another_gpu_is_replaced(bundle: Bundle, gpu: None, tmp_path: Path) -> None:
    cache = tmp_path / "caches" / "orin.timing"
    cache.parent.mkdir()
    cache.write_bytes(MISMATCHED)
    trt = FakeTensorRT()
    build_or_script(bundle, "fp32", BuildOptions(timing_cache=cache), trt=trt)
    assert trt.called("set_timing_cache") == [(MISMATCHED, False), (b"", False)]
    assert cache.read_bytes() == b"[timing]"


def test_bad_input_is_refused_before_building(bundles: dict[str, Path], bundle: Bundle, gpu: None) -> None:
    trt = FakeTensorRT()
    with pytest.raises(BundleError, match="no int8 model"):
        build_or_script(load_bundle(bundles["seg"]), "int8", trt=trt)
    with pytest.raises(DeviceError, match="built on a CUDA device, not cpu"):
        build_or_script(bundle, "fp32", BuildOptions(device="cpu"), trt=trt)
    with pytest.raises(Exception, match="pass a shape"):
        build_or_script(load_bundle(bundles["seg_dynamic"]), "fp32", trt=trt)
    assert trt.called("build") == []


def test_without_a_gpu_the_device_error_names_it(bundle: Bundle) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(DeviceError, match="cuda:0 is not an available CUDA device"):
        build_or_script(bundle, "fp32", trt=FakeTensorRT())


def test_without_tensorrt_build_writes_trtexec_and_exits_3(bundle: Bundle, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails even where TensorRT exists
    assert cli.main(["build", str(bundle.path), "--workspace-mb", "256"]) == build.NO_TENSORRT
    err = capsys.readouterr().err.strip()
    script = bundle.path / "engines" / "trtexec" / "trtexec.sh"
    assert "\n" not in err and err.startswith("TensorRT is not installed here") and str(script) in err
    assert "fp32, fp16, int8" in err and os.access(script, os.X_OK)
    text = script.read_text()
    for p, onnx in (("fp32", "model.onnx"), ("fp16", "model.fp16.onnx"), ("int8", "model.int8.onnx")):
        assert (f'"$TRTEXEC" --onnx={onnx} --saveEngine=engines/trtexec/{p}.engine ${{typed[@]+"${{typed[@]}}"}} '
                "--memPoolSize=workspace:256M --timingCacheFile=engines/trtexec/timing.cache\n") in text
    commands = [line for line in text.splitlines() if line.startswith('"$TRTEXEC" --onnx')]
    assert len(commands) == 3 and not any(f in c for c in commands for f in ("--fp16", "--int8", "--calib", "--best"))
    assert not list((bundle.path / "engines").glob("*.engine"))


def test_export_engine_calls_the_same_build(bundle: Bundle, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert export._engine(argparse.Namespace(engine=False), bundle.path) == 0
    assert not (bundle.path / "engines" / "trtexec").exists()
    assert export._engine(argparse.Namespace(engine=True), bundle.path) == build.NO_TENSORRT
    assert (bundle.path / "engines" / "trtexec" / "trtexec.sh").is_file()
    assert "TensorRT is not installed here" in capsys.readouterr().err


def test_build_with_tensorrt_prints_each_engine(bundle: Bundle, gpu: None, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT("10.3.0"))
    assert cli.main(["build", str(bundle.path), "--precision", "fp16"]) == 0
    out = capsys.readouterr().out
    assert "fp16" in out and "(built; TensorRT 10.3.0, Fake Orin)" in out
    assert cli.main(["build", str(bundle.path), "--precision", "fp16"]) == 0
    assert "up to date, kept" in capsys.readouterr().out


def test_build_subprocess_smoke(bundle: Bundle) -> None:
    if engine.import_tensorrt()[0] is not None:
        pytest.skip("TensorRT is installed here: the smoke test covers the machine without it")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "edgepilot", "build", str(bundle.path), "--precision", "fp16"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == build.NO_TENSORRT, proc.stderr
    assert proc.stderr.count("\n") == 1 and "trtexec.sh" in proc.stderr
    bad = subprocess.run([sys.executable, "-m", "edgepilot", "build", str(bundle.path / "nope")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1


@pytest.mark.trt
@pytest.mark.cuda
def test_real_tensorrt_build_is_what_the_trt_backend_loads(bundle: Bundle) -> None:
    pytest.importorskip("tensorrt", reason="needs TensorRT")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from edgepilot.runtime.engines import load_engine

    result = build_or_script(bundle, "all")
    assert all(e.built for e in result.engines)
    for e in result.engines:
        loaded = load_engine(bundle, "trt", e.fingerprint.precision, device="cuda", rebuild=False)
        assert loaded.describe()["engine"] == str(e.path) and loaded.describe()["built"] is False
