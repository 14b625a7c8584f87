"""``edgepilot deploy jetson``: the folder's contents, its scripts (bash -n, shellcheck, a stand-in
trtexec), the run command as ``edgepilot run`` parses it, and bad input leaving nothing behind."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgepilot import cli
from edgepilot.commands import deploy
from edgepilot.export.jetson import CsiCamera, JetsonDeploy, run_command, write_jetson_folder
from edgepilot.runtime.build.fp16 import fp16_model
from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.errors import BundleError, EdgepilotError, EngineError
from tests.export.helpers import check_script, fake_trtexec, run_script, with_int8

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=60/1 ! "
            "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
            "appsink drop=true max-buffers=1")


@pytest.fixture()
def bundle(bundles: dict[str, Path], tmp_path: Path) -> Path:
    """The tiny seg bundle as an export leaves it: FP16 graph with its sidecar, a stand-in INT8 graph."""
    folder = shutil.copytree(bundles["seg"], tmp_path / "seg")
    fp16_model(load_bundle(folder))
    return with_int8(folder)


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_deploy_is_a_registered_command() -> None:
    assert deploy in cli.COMMANDS
    args = cli.build_parser().parse_args(["deploy", "jetson", "b", "--out", "o"])
    assert (args.target, args.precision, args.camera_width, args.camera_height, args.fps) == \
        ("jetson", "fp16", 1920, 1080, 30)


def test_the_folder_holds_the_bundle_scripts_and_readme(bundle: Path, tmp_path: Path) -> None:
    out = write_jetson_folder(bundle, tmp_path / "jetson", JetsonDeploy("int8", CsiCamera(1280, 720, 60, 1)))
    assert listing(out) == ["README.md", "build_engine.sh", "deploy.json", "model", "model/calibration.json",
                            "model/meta.json", "model/model.fp16.json", "model/model.fp16.onnx",
                            "model/model.int8.onnx", "model/model.onnx", "run.sh"]
    for name in ("meta.json", "model.onnx", "model.int8.onnx", "model.fp16.onnx"):
        assert (out / "model" / name).read_bytes() == (bundle / name).read_bytes()
    assert load_bundle(out / "model").task == "segmentation"  # a bundle edgepilot run loads as it is
    assert os.access(out / "run.sh", os.X_OK) and os.access(out / "build_engine.sh", os.X_OK)
    info = json.loads((out / "deploy.json").read_text())
    assert info["precision"] == "int8" and info["camera"] == {"width": 1280, "height": 720, "fps": 60, "sensor_id": 1}
    assert info["trtexec"] == {"onnx": "model/model.int8.onnx", "engine": "model/engines/trtexec/int8.engine"}
    readme = (out / "README.md").read_text()
    for needed in ("JetPack 6.1", "python3-libnvinfer", "jetson-ai-lab", "Jetson_Zoo", "onnxruntime-gpu",
                   "--system-site-packages", "GStreamer", "--stronglyTyped", info["run"], "Not verified"):
        assert needed in readme, needed
    assert not list(tmp_path.glob(".jetson*")), "the staging folder is gone"


def test_run_sh_is_the_exact_edgepilot_run_command(bundle: Path, tmp_path: Path) -> None:
    out = write_jetson_folder(bundle, tmp_path / "j", JetsonDeploy("fp16", CsiCamera(1280, 720, 60, 1)))
    check_script(out / "run.sh")
    (line,) = [x for x in (out / "run.sh").read_text().splitlines() if x.startswith("exec ")]
    argv = shlex.split(line)[1:]
    assert argv[-1] == "$@" and argv[:-1] == run_command(JetsonDeploy("fp16", CsiCamera(1280, 720, 60, 1)))
    args = cli.build_parser().parse_args(argv[1:-1])  # what edgepilot run makes of it
    assert args.source == PIPELINE and "!" in args.source  # "!" is how sources.open_source spots GStreamer
    assert (args.model, args.backend, args.precision, args.device) == ("model", "trt", "fp16", "cuda:0")


def test_build_engine_sh_runs_trtexec_for_tensorrt_10_and_11(bundle: Path, tmp_path: Path) -> None:
    out = write_jetson_folder(bundle, tmp_path / "j", JetsonDeploy("fp16"))
    script = out / "build_engine.sh"
    check_script(script)
    trtexec = fake_trtexec(tmp_path)
    tail = "--memPoolSize=workspace:1024M --timingCacheFile=model/engines/trtexec/timing.cache"
    for banner, typed in (("100300", "--stronglyTyped "), ("110000", "")):
        proc, calls = run_script(script, trtexec, banner, "--trtexec")
        assert proc.returncode == 0, proc.stderr
        assert calls == [f"--onnx=model/model.fp16.onnx --saveEngine=model/engines/trtexec/fp16.engine {typed}{tail}"]
    assert (out / "model" / "engines" / "trtexec" / "fp16.engine").is_file()
    proc, calls = run_script(script, trtexec, "8602", "--trtexec")
    assert proc.returncode == 2 and calls == [] and "JetPack 6.1+" in proc.stderr
    proc, _ = run_script(script, trtexec, "100300", "--bogus")
    assert proc.returncode == 2 and "usage:" in proc.stderr


def test_build_engine_sh_prefers_edgepilot_build_where_tensorrt_imports(bundle: Path, tmp_path: Path) -> None:
    out = write_jetson_folder(bundle, tmp_path / "j", JetsonDeploy("fp32", workspace_mb=2048))
    text = (out / "build_engine.sh").read_text()
    assert "exec python3 -m edgepilot build model --precision fp32 --workspace-mb 2048\n" in text
    if subprocess.run(["python3", "-c", "import tensorrt"], capture_output=True).returncode == 0:
        pytest.skip("TensorRT imports here: the script would build with edgepilot")
    proc, calls = run_script(out / "build_engine.sh", fake_trtexec(tmp_path), "100300")
    assert proc.returncode == 0 and len(calls) == 1 and "--onnx=model/model.onnx" in calls[0]


def test_dynamic_bundles_need_and_pass_a_shape(bundles: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="pass a shape"):
        write_jetson_folder(bundles["seg_dynamic"], tmp_path / "a", JetsonDeploy("fp32"))
    assert not (tmp_path / "a").exists()
    out = write_jetson_folder(bundles["seg_dynamic"], tmp_path / "b", JetsonDeploy("fp32", hw=(256, 512)))
    assert "--shape 256x512" in (out / "run.sh").read_text()
    assert "--shapes=image:1x3x256x512" in (out / "build_engine.sh").read_text()


def test_bad_input_leaves_nothing_behind(bundles: dict[str, Path], bundle: Path, tmp_path: Path) -> None:
    plain = shutil.copytree(bundles["seg"], tmp_path / "plain")
    for name in ("model.fp16.onnx", "model.fp16.json"):  # other tests may have converted the shared bundle's
        (plain / name).unlink(missing_ok=True)
    cases = [
        (tmp_path / "nope", tmp_path / "o1", "fp16", BundleError, "does not exist"),
        (plain, tmp_path / "o2", "int8", BundleError, "no int8 model"),
        (plain, tmp_path / "o3", "fp16", BundleError, "no current FP16 graph"),
    ]
    for src, out, precision, error, message in cases:
        before = listing(tmp_path)
        with pytest.raises(error, match=message):
            write_jetson_folder(src, out, JetsonDeploy(precision))
        assert listing(tmp_path) == before
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    for force, message in ((False, "not empty: pass --force"), (True, "has no deploy.json")):
        with pytest.raises(EdgepilotError, match=message):
            write_jetson_folder(bundle, taken, force=force)
    assert listing(taken) == ["notes.txt"]


def test_force_replaces_an_earlier_deploy_folder(bundle: Path, tmp_path: Path) -> None:
    out = write_jetson_folder(bundle, tmp_path / "j", JetsonDeploy("int8"))
    (out / "stale.txt").write_text("x")
    write_jetson_folder(bundle, out, JetsonDeploy("fp32"), force=True)
    assert not (out / "stale.txt").exists() and json.loads((out / "deploy.json").read_text())["precision"] == "fp32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j", "seg"]


def test_deploy_subprocess_smoke(bundle: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "edgepilot", "deploy", "jetson", str(bundle), "--out", str(tmp_path / "j"),
           "--camera-width", "1280", "--camera-height", "720", "--fps", "60", "--sensor-id", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and PIPELINE in (tmp_path / "j" / "run.sh").read_text()
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and again.stderr.startswith("error: --out") and again.stderr.count("\n") == 1
    bad = subprocess.run(cmd[:5] + ["--fps", "0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
