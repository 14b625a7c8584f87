"""The folder to copy to a Jetson: the bundle's graphs, an engine build script, a camera run script.

:func:`write_jetson_folder` writes ``out``::

    out/model/            the bundle: meta.json, its ONNX graphs, the FP16 sidecar and calibration record
    out/build_engine.sh   builds the TensorRT engine for the chosen precision, on the Jetson
    out/run.sh            ``edgepilot run`` on the CSI camera (nvarguscamerasrc) with the trt backend
    out/README.md         JetPack set-up and the two steps (``jetson_readme``)
    out/deploy.json       what was written, from what (so ``force`` recognises a folder it may replace)

Everything is checked first (a bundle, the precision's graph in it, ``out``
empty or a previous deploy folder with ``force``), then written to a staging
folder beside ``out`` and renamed into place, so bad input or a failure
leaves nothing behind. Engines are not copied: one is valid only on the GPU
and TensorRT version it was built with, so it is built on the Jetson.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from edgepilot.export.engine import TIMING_CACHE, TRTEXEC_DIR, trtexec_jobs
from edgepilot.export.jetson_readme import jetson_readme
from edgepilot.export.trtexec import TrtexecJob, build_script
from edgepilot.runtime.build.fp16 import sidecar_path
from edgepilot.runtime.bundle import FILES, Bundle, file_sha256, load_bundle
from edgepilot.runtime.errors import BundleError, EdgepilotError

MODEL_DIR = "model"
MANIFEST = "deploy.json"
FORMAT = "edgepilot-jetson"
# nvarguscamerasrc takes seconds to start a sensor; edgepilot run's default open timeout (5 s) is tight
OPEN_TIMEOUT_S = 15


@dataclass(frozen=True, slots=True)
class CsiCamera:
    """A CSI camera as nvarguscamerasrc captures it: ``sensor_id``, size in pixels, ``fps`` frames/s."""

    width: int = 1920
    height: int = 1080
    fps: int = 30
    sensor_id: int = 0

    def pipeline(self) -> str:
        """The GStreamer source for ``edgepilot run``: NVMM capture, nvvidconv to BGRx, BGR for OpenCV,
        and an appsink that keeps only the newest frame (a live source drops, it does not queue)."""
        return (f"nvarguscamerasrc sensor-id={self.sensor_id} ! "
                f"video/x-raw(memory:NVMM),width={self.width},height={self.height},framerate={self.fps}/1 ! "
                "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
                "appsink drop=true max-buffers=1")


@dataclass(frozen=True, slots=True)
class JetsonDeploy:
    """What to deploy: the engine ``precision``, the camera, the builder workspace (MB) and,
    for bundles with dynamic H, W, the model input size ``hw``."""

    precision: str = "fp16"
    camera: CsiCamera = field(default_factory=CsiCamera)
    workspace_mb: int = 1024
    hw: tuple[int, int] | None = None


def _shape_args(deploy: JetsonDeploy) -> list[str]:
    return ["--shape", f"{deploy.hw[0]}x{deploy.hw[1]}"] if deploy.hw else []


def run_command(deploy: JetsonDeploy) -> list[str]:
    """The ``edgepilot run`` argv of ``run.sh`` (run from the deploy folder)."""
    return ["edgepilot", "run", deploy.camera.pipeline(), "--model", MODEL_DIR, "--backend", "trt",
            "--precision", deploy.precision, "--device", "cuda:0", *_shape_args(deploy),
            "--open-timeout", str(OPEN_TIMEOUT_S)]


def build_command(deploy: JetsonDeploy) -> list[str]:
    """The ``edgepilot`` arguments ``build_engine.sh`` runs where edgepilot and TensorRT's Python import."""
    return ["build", MODEL_DIR, "--precision", deploy.precision, "--workspace-mb", str(deploy.workspace_mb),
            *_shape_args(deploy)]


def check_precision(bundle: Bundle, precision: str) -> None:
    """The bundle must hold the graph ``precision`` builds from (the FP16 one current with model.onnx):
    a Jetson may lack onnx and onnxruntime to convert it. BundleError (exit 2) otherwise."""
    if precision == "int8":
        bundle.file("int8")
    elif precision == "fp16":
        fp16, sidecar = bundle.path_of("fp16"), sidecar_path(bundle)
        try:
            source = json.loads(sidecar.read_text()).get("source_sha256")
        except (OSError, ValueError, AttributeError):
            source = None
        if not fp16.is_file() or source != file_sha256(bundle.file("fp32")):
            raise BundleError(f"bundle {bundle.path} has no current FP16 graph ({fp16.name} with {sidecar.name}): "
                              "re-export it with edgepilot export, or choose --precision fp32")
    elif precision != "fp32":
        raise BundleError(f"unknown precision {precision!r}: use fp16, int8 or fp32")


def bundle_files(bundle: Bundle) -> list[Path]:
    """The bundle's files a Jetson needs, relative to the bundle: meta.json, every ONNX graph it has,
    the FP16 sidecar and the calibration record (no torch program, no engines)."""
    paths = [bundle.path_of(role) for role in ("meta", "fp32", "fp16", "int8", "calibration")]
    paths.append(sidecar_path(bundle))
    return [p.relative_to(bundle.path) for p in paths if p.is_file()]


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise EdgepilotError(f"--out {out} is a file, not a folder; give a folder", exit_code=2)
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise EdgepilotError(f"--out {out} is not empty: pass --force to replace it", exit_code=2)
        if not (out / MANIFEST).is_file():
            raise EdgepilotError(f"--out {out} is not empty and has no {MANIFEST}, so it is not a folder "
                                 "edgepilot deploy wrote: refusing to replace it; give an empty or new folder",
                                 exit_code=2)


def trtexec_job(bundle: Bundle, deploy: JetsonDeploy) -> TrtexecJob:
    """build_engine.sh's trtexec job, paths relative to the deploy folder (BundleError/EngineError
    for a precision or shape the bundle cannot build: raised before anything is written)."""
    engines = f"{MODEL_DIR}/{FILES['engines']}/{TRTEXEC_DIR}"
    (job,) = trtexec_jobs(bundle, [deploy.precision], deploy.hw, engines)
    return TrtexecJob(job.precision, f"{MODEL_DIR}/{job.onnx}", f"{engines}/{job.precision}.engine", job.shapes)


def scripts(bundle: Bundle, deploy: JetsonDeploy, job: TrtexecJob) -> dict[str, str]:
    """The text of build_engine.sh and run.sh."""
    cache = f"{PurePosixPath(job.engine).parent}/{TIMING_CACHE}"
    build = build_script([job], workspace_mb=deploy.workspace_mb, timing_cache=cache, workdir=".",
                         edgepilot_build=build_command(deploy),
                         title=f"Build the TensorRT {deploy.precision} engine of {bundle.name!r} on this Jetson "
                               "(written by edgepilot deploy jetson)")
    cam = deploy.camera
    run = "\n".join([
        "#!/usr/bin/env bash",
        f"# Run {bundle.name!r} on CSI camera {cam.sensor_id} ({cam.width}x{cam.height} at {cam.fps} FPS) with "
        f"TensorRT {deploy.precision} (written by edgepilot deploy jetson).",
        "# Without ./build_engine.sh first, the first run builds the engine (minutes); later runs load it.",
        "# Extra arguments go to edgepilot run: ./run.sh --show, ./run.sh --out annotated.mp4 --max-frames 300",
        "set -euo pipefail",
        'cd "$(dirname "${BASH_SOURCE[0]}")"',
        f'exec {shlex.join(run_command(deploy))} "$@"',
    ]) + "\n"
    return {"build_engine.sh": build, "run.sh": run}


def manifest(bundle: Bundle, deploy: JetsonDeploy, job: TrtexecJob, files: list[Path]) -> dict[str, Any]:
    """deploy.json: the source bundle, the choices, the copied files and the commands of the scripts."""
    return {"format": FORMAT, "version": 1, "bundle": bundle.name, "source": str(bundle.path.resolve()),
            "precision": deploy.precision, "camera": asdict(deploy.camera), "workspace_mb": deploy.workspace_mb,
            "shape": list(deploy.hw) if deploy.hw else None,
            "files": [f"{MODEL_DIR}/{p.as_posix()}" for p in files],
            "run": shlex.join(run_command(deploy)), "build": shlex.join(["python3", "-m", "edgepilot", *build_command(deploy)]),
            "trtexec": {"onnx": job.onnx, "engine": job.engine}}


def _fill(folder: Path, name: str, bundle: Bundle, deploy: JetsonDeploy, job: TrtexecJob) -> None:
    files = bundle_files(bundle)
    for rel in files:
        (folder / MODEL_DIR / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(bundle.path / rel, folder / MODEL_DIR / rel)
    for script, text in scripts(bundle, deploy, job).items():
        (folder / script).write_text(text)
        os.chmod(folder / script, 0o755)
    info = manifest(bundle, deploy, job, files)
    (folder / "README.md").write_text(jetson_readme(info, folder=name))
    (folder / MANIFEST).write_text(json.dumps(info, indent=2) + "\n")


def _swap(staging: Path, out: Path) -> None:
    """Put ``staging`` where ``out`` is; a previous ``out`` is moved aside first and deleted after."""
    if not out.exists():
        os.replace(staging, out)
        return
    old = out.with_name(f".{out.name}.old{os.getpid()}")
    os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old)


def write_jetson_folder(bundle_path: str | Path, out: str | Path, deploy: JetsonDeploy | None = None, *,
                        force: bool = False) -> Path:
    """Write the Jetson folder for ``bundle_path`` at ``out`` and return ``out``.

    Raises BundleError (not a bundle, the precision's graph missing) or
    EdgepilotError (``out`` a file, or not empty without ``force``; with it,
    only a previous deploy folder is replaced), exit 2, before writing anything.
    """
    deploy = deploy or JetsonDeploy()
    bundle = load_bundle(bundle_path)
    check_precision(bundle, deploy.precision)
    out = Path(out)
    _check_out(out, force)
    job = trtexec_job(bundle, deploy)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would otherwise become the folder's mode
        _fill(staging, out.name, bundle, deploy, job)
        _swap(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
