"""Progress: a bar on a terminal, one summary line in a log."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from edgepilot.runtime.progress import progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_gets_one_summary_line_and_no_carriage_returns() -> None:
    log = io.StringIO()
    bar = progress(5, "datagen", "frame", stream=log)
    for _ in range(5):
        bar.update()
    bar.close()
    bar.close()  # idempotent
    text = log.getvalue()
    assert "\r" not in text and text.count("\n") == 1
    assert text.startswith("datagen: 5/5 frames in ") and "frames/s" in text


def test_terminal_gets_a_redrawing_bar_and_disabled_gets_nothing() -> None:
    tty = _Tty()
    bar = progress(3, "bench", "row", stream=tty)
    bar.update(3)
    bar.close()
    assert "\r" in tty.getvalue()
    quiet = io.StringIO()
    off = progress(3, "bench", "row", enabled=False, stream=quiet)
    off.update()
    off.close()
    assert quiet.getvalue() == ""


def test_run_into_a_log_writes_no_bar_redraws(bundles: dict[str, Path], clip: Path) -> None:
    """Regression: a tqdm bar in a log file filled it with carriage-return redraws."""
    proc = subprocess.run([sys.executable, "-m", "edgepilot", "run", str(clip), "--model", str(bundles["seg"])],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("run: ")] == [
        next(ln for ln in proc.stderr.splitlines() if ln.startswith("run: 30/30 frames in "))]
