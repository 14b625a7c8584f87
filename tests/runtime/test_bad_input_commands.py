"""Bad input to every command, by category: one ``error:`` line, exit 2, no traceback, quickly.

Run in-process through ``edgepilot.cli.main`` (an exception other than the
typed errors would escape and fail the test, which is what a traceback is).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edgepilot import cli

SEG = "{seg}"
CASES = [
    # category: numeric and choice options
    ("options", ["run", "synthetic:64x48@30:3", "--model", SEG, "--max-frames", "0"], "out of range"),
    ("options", ["run", "synthetic:64x48@30:3", "--model", SEG, "--max-frames", "abc"], "not an integer"),
    ("options", ["run", "synthetic:64x48@30:3", "--model", SEG, "--backend", "tpu"], "invalid choice"),
    ("options", ["run", "synthetic:64x48@30:3", "--model", SEG, "--shape", "99999x2"], "must be in 1..16384"),
    ("options", ["bench", "--model", SEG, "--rate", "0"], "out of range"),
    ("options", ["bench", "--model", SEG, "--rate", "inf"], "out of range"),
    ("options", ["bench", "--model", SEG, "--tolerance", "nan"], "out of range"),
    ("options", ["bench", "--model", SEG, "--iters", "-1"], "out of range"),
    ("options", ["bench", "--model", SEG, "--backends", "ort,gpu"], "unknown backend gpu"),
    ("options", ["bench", "--model", SEG, "--precisions", "fp64"], "unknown precision fp64"),
    ("options", ["datagen", "--out", "{tmp}/d", "--size", "8x8"], "each side in 16..4096"),
    ("options", ["datagen", "--out", "{tmp}/d", "--frames", "-3"], "out of range"),
    ("options", ["demo", "--frames", "0", "--out", "{tmp}/demo"], "out of range"),
    ("options", ["run"], "the following arguments are required"),
    ("options", ["nosuchcommand"], "invalid choice"),
    # category: engine options
    ("engine", ["run", "synthetic:64x48@30:3", "--model", SEG, "--backend", "null", "--engine-opt", "threads=2"],
     "unknown engine option 'threads' for the null backend"),
    ("engine", ["run", "synthetic:64x48@30:3", "--model", SEG, "--engine-opt", "threads=100000"], "expected int 1.."),
    ("engine", ["run", "synthetic:64x48@30:3", "--model", SEG, "--engine-opt", "threads=abc"], "threads='abc'"),
    ("engine", ["run", "synthetic:64x48@30:3", "--model", SEG, "--engine-opt", "noequals"], "KEY=VALUE"),
    # category: bundles
    ("bundle", ["run", "synthetic:64x48@30:3", "--model", "{tmp}/nope"], "does not exist"),
    ("bundle", ["info", "--model", "{tmp}/nope"], "does not exist"),
    ("bundle", ["bench", "--model", "{tmp}/nope"], "does not exist"),
    ("bundle", ["run", "synthetic:64x48@30:3", "--model", "{policy}"], "is a policy bundle"),
    # category: outputs
    ("outputs", ["run", "synthetic:64x48@30:3", "--model", SEG, "--report", "{tmp}/no/r.json"], "does not exist"),
    ("outputs", ["run", "synthetic:64x48@30:3", "--model", SEG, "--jsonl", "{tmp}"], "is a folder"),
    ("outputs", ["run", "synthetic:64x48@30:3", "--model", SEG, "--out", "{tmp}/a.avi", "--jsonl", "{tmp}/a.avi"],
     "is also --out"),
    ("outputs", ["bench", "--model", SEG, "--out", "{tmp}/no/b.json"], "does not exist"),
    ("outputs", ["run", "synthetic:64x48@30:3", "--model", SEG, "--out", "{tmp}/a.gif"], "unknown video extension"),
    ("outputs", ["bench", "--model", SEG, "--update-baseline"], "--update-baseline needs --baseline"),
    ("outputs", ["datagen", "--out", "{file}"], "is not a folder"),
    # category: sources
    ("sources", ["run", "{tmp}/missing.mp4", "--model", SEG], "missing.mp4"),
    ("sources", ["run", "synthetic:0x48@30", "--model", SEG], "synthetic"),
    # found by our own sweep: a numpy out-of-memory traceback, a matplotlib traceback, a FileExistsError
    ("sources", ["run", "synthetic:100000x100000@30:1", "--model", SEG], "W, H in 8..16384"),
    ("outputs", ["bench", "--model", SEG, "--plot", "{tmp}/p.txt"], "unknown image extension '.txt'"),
    ("outputs", ["demo", "--loop", "--out", "{file}", "--frames", "2"], "is a file, not a folder"),
    ("options", ["datagen", "--scenario", "nowhere", "--out", "{tmp}/d", "--frames", "2"],
     "choose one of highway, merge, racetrack, roundabout or"),
    ("sources", ["run", "0", "--model", SEG, "--open-timeout", "0"], "out of range"),
    ("sources", ["run", "0", "--model", SEG, "--read-timeout", "nan"], "out of range"),
]


@pytest.mark.parametrize(("category", "argv", "expect"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_gives_one_error_line_and_exit_2(bundles: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str], category: str,
                                                   argv: list[str], expect: str) -> None:
    (tmp_path / "file").write_text("not a folder")
    subs = {"seg": str(bundles["seg"]), "policy": str(bundles["policy"]), "tmp": str(tmp_path),
            "file": str(tmp_path / "file")}
    args = [a.format(**subs) for a in argv]
    t0 = time.monotonic()
    code = cli.main(args)
    elapsed = time.monotonic() - t0
    captured = capsys.readouterr()
    errors = [ln for ln in captured.err.splitlines() if ln.startswith("error:")]
    assert code == 2, (args, captured.err)
    assert len(errors) == 1 and expect in errors[0], captured.err
    assert "Traceback" not in captured.err and "usage:" not in captured.err
    assert elapsed < 10, f"{category}: took {elapsed:.1f} s to refuse"
