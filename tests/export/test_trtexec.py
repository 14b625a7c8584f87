"""trtexec command lines per precision and TensorRT version, and the generated script run against a
stand-in trtexec (``helpers.fake_trtexec``) that prints TensorRT 8, 10 or 11's banner and records its arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepilot.export.trtexec import (
    TrtexecJob,
    build_script,
    shapes_spec,
    trtexec_command,
    typed_flags,
)
from edgepilot.runtime.errors import EngineError
from tests.export.helpers import check_script, fake_trtexec, run_script

JOBS = [TrtexecJob("fp32", "model.onnx", "engines/trtexec/fp32.engine"),
        TrtexecJob("fp16", "model.fp16.onnx", "engines/trtexec/fp16.engine"),
        TrtexecJob("int8", "model.int8.onnx", "engines/trtexec/int8.engine", "image:1x3x256x512")]

@pytest.mark.parametrize("major,typed", [(10, ["--stronglyTyped"]), (11, []), (12, [])])
def test_commands_per_version(major: int, typed: list[str]) -> None:
    fp16, int8 = (trtexec_command(j, workspace_mb=2048, timing_cache="t.cache", major=major) for j in JOBS[1:])
    assert fp16 == ["trtexec", "--onnx=model.fp16.onnx", "--saveEngine=engines/trtexec/fp16.engine", *typed,
                    "--memPoolSize=workspace:2048M", "--timingCacheFile=t.cache"]
    assert int8 == ["trtexec", "--onnx=model.int8.onnx", "--saveEngine=engines/trtexec/int8.engine", *typed,
                    "--memPoolSize=workspace:2048M", "--timingCacheFile=t.cache", "--shapes=image:1x3x256x512"]
    assert not {"--fp16", "--int8", "--best", "--calib"} & {a.split("=")[0] for a in fp16 + int8}
    assert typed_flags(major) == typed


def test_tensorrt_8_is_refused() -> None:
    with pytest.raises(EngineError, match="TensorRT 8 has no strongly typed networks"):
        typed_flags(8)
    assert shapes_spec({"image": (1, 3, 128, 256), "speed": [1, 1]}) == "image:1x3x128x256,speed:1x1"


@pytest.fixture()
def script(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle" / "engines" / "trtexec"
    folder.mkdir(parents=True)
    path = folder / "trtexec.sh"
    path.write_text(build_script(JOBS, workspace_mb=1024, timing_cache="engines/trtexec/timing.cache",
                                 workdir="../..", title="test"))
    return path


def test_script_passes_bash_n_and_shellcheck(script: Path) -> None:
    check_script(script)


@pytest.mark.parametrize("banner,version,typed", [("100300", "10.3.0", "--stronglyTyped "),
                                                   ("101303", "10.13.3", "--stronglyTyped "),
                                                   ("110400", "11.4.0", "")])
def test_script_branches_on_the_version_it_finds(script: Path, tmp_path: Path, banner: str, version: str,
                                                 typed: str) -> None:
    proc, calls = run_script(script, fake_trtexec(tmp_path), banner)
    assert proc.returncode == 0, proc.stderr
    assert f"(TensorRT {version})" in proc.stdout
    assert calls == [f"--onnx={j.onnx} --saveEngine={j.engine} {typed}--memPoolSize=workspace:1024M "
                     f"--timingCacheFile=engines/trtexec/timing.cache" + (f" --shapes={j.shapes}" if j.shapes else "")
                     for j in JOBS]
    assert (script.parent / "fp16.engine").is_file()  # paths are relative to the bundle, wherever it is run from


def test_script_refuses_tensorrt_8_and_an_unknown_version(script: Path, tmp_path: Path) -> None:
    trtexec = fake_trtexec(tmp_path)
    proc, calls = run_script(script, trtexec, "8602")
    assert proc.returncode == 2 and calls == []
    assert "TensorRT 8.6.2 has no strongly typed networks" in proc.stderr and "JetPack 6.1+" in proc.stderr
    proc, calls = run_script(script, trtexec, "")  # no banner, no dpkg package, no Python bindings
    if proc.returncode == 0:
        pytest.skip("this machine has TensorRT packages the script found instead")
    assert proc.returncode == 2 and calls == [] and "set TRT_VERSION" in proc.stderr
    proc, calls = run_script(script, trtexec, "", TRT_VERSION="11.0")
    assert proc.returncode == 0 and len(calls) == 3 and "--stronglyTyped" not in calls[0]


def test_script_says_when_trtexec_is_missing(script: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "trtexec"
    proc, calls = run_script(script, fake_trtexec(tmp_path), "100300", TRTEXEC=str(missing))
    assert proc.returncode == 2 and calls == [] and f"trtexec not found at {missing}" in proc.stderr
