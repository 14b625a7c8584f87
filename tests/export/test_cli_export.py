"""``edgepilot export`` end to end on a two-step detector, then ``edgepilot info --model`` on the result."""

from __future__ import annotations

import json

import pytest

from edgepilot import cli
from edgepilot.cli import main
from edgepilot.commands import export


def test_export_is_a_registered_command():
    assert export in cli.COMMANDS


def test_export_command_writes_a_bundle_info_accepts(det_ckpt, frames_dir, tmp_path, capsys):
    out = tmp_path / "det"
    rc = main(["export", str(det_ckpt), "--task", "det", "--out", str(out), "--val", str(frames_dir),
               "--int8", "--calib", str(frames_dir), "--methods", "MinMax", "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "fp32" in printed and "int8" in printed and "AP50" in printed and "max abs err" in printed
    meta = json.loads((out / "meta.json").read_text())
    assert set(meta["accuracy"]) == {"fp32", "fp16", "int8"} and "map50_95" in meta["accuracy"]["int8"]
    assert meta["parity"]["fp32"]["passed"] and meta["calibration"]["method"] == "MinMax"
    assert main(["info", "--model", str(out)]) == 0
    assert main(["export", str(det_ckpt), "--task", "det", "--out", str(out), "--val", str(frames_dir)]) == 2
    assert main(["export", str(det_ckpt), "--task", "det", "--out", str(tmp_path / "x"), "--int8",
                 "--val", str(frames_dir)]) == 2


def test_missing_parent_folders_are_created_and_a_file_is_refused(tmp_path):
    from edgepilot.export.bundle import prepare_out
    from edgepilot.runtime.errors import EdgepilotError

    prepare_out(tmp_path / "models" / "seg", force=False)  # regression: "models" used to be required
    assert (tmp_path / "models" / "seg").is_dir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(EdgepilotError, match="is a file, not a folder"):
        prepare_out(tmp_path / "f", force=False)
