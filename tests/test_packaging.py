"""The installed import name is ``edgepilot`` alone (README, "Layout").

The wheel is built from this checkout (the library folders reach it through
the symlinks in ``edgepilot/``), then installed into a fresh virtual
environment next to PyPI's ``perception``, a popular package whose name our
``perception/`` folder would otherwise take.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("runtime", "sim", "perception", "export")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (found,) = out.glob("edgepilot-*.whl")
    return found


def test_wheel_has_one_top_level_package_with_every_library_module(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["edgepilot"]
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"edgepilot"}
    for lib in LIBRARIES:
        sources = {str(p.relative_to(ROOT)) for p in (ROOT / lib).rglob("*.py") if "__pycache__" not in p.parts}
        assert sources, lib
        assert {f"edgepilot/{s}" for s in sources} <= set(names), f"{lib}/ modules missing from the wheel"
    assert "edgepilot/runtime/bundle.schema.json" in names  # package data: load_bundle needs it


def _perception_wheel(dest: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                           "-d", str(dest), "perception"], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"PyPI's perception could not be downloaded here: {proc.stderr.strip()[-300:]}")
    (found,) = dest.glob("perception-*.whl")
    return found


@pytest.mark.slow
def test_wheel_and_pypi_perception_install_side_by_side(wheel: Path, tmp_path: Path) -> None:
    other = _perception_wheel(tmp_path / "dl")
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=300)
    py = env / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel), str(other)],
                   check=True, timeout=300, capture_output=True)
    # Dependencies (numpy, cv2, ...) come from this test's environment, appended after the fresh
    # venv's own site-packages: a path in a .pth file adds the folder, not the .pth hooks inside it,
    # so this checkout's editable install cannot leak in.
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    deps = subprocess.run([sys.executable, "-c", "import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "zz_deps.pth").write_text(deps + "\n")
    probe = ("import perception, edgepilot, edgepilot.perception, edgepilot.runtime.bundle, edgepilot.cli, "
             "edgepilot.sim.types; "
             "print(perception.__version__, perception.__file__); "
             "print(edgepilot.perception.__file__); print(edgepilot.runtime.bundle.__file__)")
    out = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    pypi_line, ours, bundle = out.stdout.splitlines()
    assert pypi_line.split()[1].startswith(site) and "edgepilot" not in pypi_line
    assert ours.startswith(site) and ours.endswith("edgepilot/perception/__init__.py")
    assert bundle.startswith(site)
    cli = subprocess.run([str(env / "bin" / "edgepilot"), "--help"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert cli.returncode == 0 and "COMMAND" in cli.stdout, cli.stderr
