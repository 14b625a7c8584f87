"""Smoke tests of `edgepilot train` and `edgepilot eval` through the CLI, on a tiny budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgepilot import cli


@pytest.mark.parametrize("task", ["seg", "det"])
def test_train_then_eval_through_the_cli(datagen_dir: Path, tmp_path: Path, task: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / task
    sets = [f"data=[{datagen_dir}]", f"out={out}", "height=64", "width=128", "epochs=1", "batch_size=2",
            "warmup_steps=1", "max_steps=2", "threads=1", "checkpoint_minutes=60"]
    argv = ["train", task, "--no-progress", *[x for s in sets for x in ("--set", s)]]
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 2 and Path(summary["last"]).is_file()
    report = tmp_path / "eval.json"
    assert cli.main(["eval", task, summary["last"], "--data", str(datagen_dir), "--out", str(report)]) == 0
    scores = json.loads(report.read_text())
    key = "miou" if task == "seg" else "map50"
    assert 0.0 <= scores[key] <= 1.0 and scores["checkpoint"] == summary["last"]


def test_bad_train_and_eval_input_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "seg", "--set", "epochz=3"]) == 2
    assert cli.main(["eval", "seg", str(tmp_path / "none.pt"), "--data", str(tmp_path)]) == 2
    assert cli.main(["train", "seg", "--set", "noequals"]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 3 and "epochz" in errors[0] and "does not exist" in errors[1]
