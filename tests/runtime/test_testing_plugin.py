"""The ``latency_gate`` pytest fixture, run in an inner pytest session via ``pytester``."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TEST_FILE = """
def test_seg_latency(latency_gate):
    latency_gate({bundle!r}, baseline="baselines/seg.json", backend="null", precision="fp32",
                 iters=30, warmup=3, repeats=5, delay_ms={delay_ms})
"""


def _plugin_args() -> list[str]:
    """Load the plugin by module when the edgepilot entry point is not installed (a source checkout)."""
    names = {ep.name for ep in importlib.metadata.entry_points(group="pytest11")}
    return [] if "edgepilot" in names else ["-p", "edgepilot.runtime.testing"]


def _run(pytester: pytest.Pytester, bundle: Path, delay_ms: float, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_latency=TEST_FILE.format(bundle=str(bundle), delay_ms=delay_ms))
    return pytester.runpytest(*_plugin_args(), "-rs", *args)


def test_fixture_writes_baseline_then_passes_then_catches_slowdown(
        pytester: pytest.Pytester, bundles: dict[str, Path]) -> None:
    baseline = pytester.path / "baselines" / "seg.json"
    first = _run(pytester, bundles["seg"], 2.0)
    first.assert_outcomes(skipped=1)
    first.stdout.fnmatch_lines(["*wrote latency baseline for null/fp32/native/cpu*"])
    rows = json.loads(baseline.read_text())["rows"]
    assert len(rows) == 1 and 1.9 < min(rows[0]["repeat_p50s_ms"]) < 4.0

    _run(pytester, bundles["seg"], 2.0).assert_outcomes(passed=1)

    slow = _run(pytester, bundles["seg"], 4.0)
    slow.assert_outcomes(failed=1)
    slow.stdout.fnmatch_lines(["*REGRESSION null/fp32/native/cpu*ratio*confirmed on re-measure*"])

    before = baseline.read_text()
    updated = _run(pytester, bundles["seg"], 4.0, "--update-latency-baselines")
    updated.assert_outcomes(skipped=1)
    assert baseline.read_text() != before
    assert min(json.loads(baseline.read_text())["rows"][0]["repeat_p50s_ms"]) > 3.9


def test_plugin_import_is_light() -> None:
    import os
    import subprocess
    import sys

    code = "import sys, edgepilot.runtime.testing; print(sorted(m for m in ('numpy', 'onnxruntime', 'torch', 'matplotlib', 'edgepilot.runtime.bench.suite') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2], env={**os.environ, "PYTHONPATH": "."})
    assert out.stdout.strip() == "[]"


def test_a_misspelt_engine_option_fails_the_test_instead_of_skipping(
        pytester: pytest.Pytester, bundles: dict[str, Path]) -> None:
    pytester.makepyfile(test_typo=f"""
def test_seg_latency(latency_gate):
    latency_gate({str(bundles["seg"])!r}, baseline="b.json", backend="null", delay_mss=2)
""")
    result = pytester.runpytest(*_plugin_args())
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unknown engine option 'delay_mss' for the null backend*"])
