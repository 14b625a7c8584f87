"""Output paths are checked before work starts; reports are written whole."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edgepilot.runtime.errors import SinkError
from edgepilot.runtime.outputs import check_outputs, write_text_atomic
from tests.runtime.test_cli_run import edgepilot


def _refused(**kwargs: object) -> str:
    with pytest.raises(SinkError) as err:
        check_outputs(**kwargs)  # type: ignore[arg-type]
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    return str(err.value)


def test_check_outputs_names_the_option_and_the_problem(tmp_path: Path) -> None:
    check_outputs({"--report": tmp_path / "r.json", "--out": None}, folders={"--out": tmp_path / "new"})
    assert "--report" in _refused(outputs={"--report": tmp_path / "missing" / "r.json"})
    assert "does not exist" in _refused(outputs={"--report": tmp_path / "missing" / "r.json"})
    assert "is a folder" in _refused(outputs={"--jsonl": tmp_path})
    (tmp_path / "f").write_text("x")
    assert "is a file, not a folder" in _refused(outputs={}, folders={"--out": tmp_path / "f"})
    same = _refused(outputs={"--out": tmp_path / "a.json", "--report": tmp_path / "." / "a.json"})
    assert "--report" in same and "is also --out" in same
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"0")
    assert "is also SOURCE" in _refused(outputs={"--out": clip}, inputs={"SOURCE": str(clip)})


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: permissions cannot be tested as root")
def test_unwritable_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    assert "not writable" in _refused(outputs={"--report": ro / "r.json"})


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.json"
    write_text_atomic(target, "old\n")
    mode = target.stat().st_mode & 0o777

    def crash(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, "new\n")
    monkeypatch.undo()
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["report.json"]
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n" and target.stat().st_mode & 0o777 == mode


def test_run_refuses_a_bad_report_path_before_any_work(bundles: dict[str, Path], clip: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    p = edgepilot("run", str(clip), "--model", str(bundles["seg"]), "--report", str(tmp_path / "no" / "r.json"))
    assert p.returncode == 2 and "--report" in p.stderr and "does not exist" in p.stderr
    assert "Traceback" not in p.stderr and "frames in" not in p.stdout  # refused before the loop ran
    assert time.monotonic() - t0 < 30
    p = edgepilot("run", str(clip), "--model", str(bundles["seg"]), "--out", str(clip))
    assert p.returncode == 2 and "is also SOURCE" in p.stderr
