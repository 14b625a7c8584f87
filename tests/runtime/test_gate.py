"""The regression gate: the rule on known numbers, and real slowdowns caught under a noisy machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgepilot.runtime.bench.gate import GateRule, compare, format_result, gate, robust_level
from edgepilot.runtime.bench.report import BenchRow, RowKey, load_report, write_report
from edgepilot.runtime.bench.suite import BenchSettings, build_report, gate_run, run_bench
from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.errors import GateError

ROOT = Path(__file__).resolve().parents[2]
KEY = RowKey("null", "fp32", "native", "cpu")
# Several repeats: one undisturbed repeat is enough for the gate's level (the fastest repeat's p50).
TIMING = {"iters": 30, "warmup": 3, "repeats": 5}


def _row(p50s: tuple[float, ...], key: RowKey = KEY) -> BenchRow:
    return BenchRow(key, "cpu", "ok", repeat_p50s_ms=p50s, latency_ms={"p50": p50s[0]})


def test_robust_level_is_fastest_repeat_and_scaled_mad() -> None:
    assert robust_level([9.0, 2.0, 2.0]) == (2.0, 0.0)
    level, sigma = robust_level([3.0, 1.0, 2.0, 5.0, 4.0])
    assert level == 1.0 and sigma == pytest.approx(1.4826)


def test_compare_tolerance_noise_band_and_cap() -> None:
    assert not compare(KEY, (2.0,) * 5, (2.19,) * 5).regressed  # +9.5% < 10%
    v = compare(KEY, (2.0,) * 5, (4.0,) * 5)
    assert v.regressed and v.ratio == pytest.approx(2.0) and v.slack_ms == pytest.approx(0.2)
    # A busy machine: some repeats slowed by other processes, the fastest one clean.
    assert not compare(KEY, (2.0, 2.1, 7.0, 9.0, 2.05), (6.0, 2.08, 8.0, 9.5, 7.5)).regressed
    noisy = (2.0, 2.4, 2.8, 2.2, 2.6)  # sigma = 1.4826 * 0.2
    assert not compare(KEY, noisy, tuple(x * 1.2 for x in noisy)).regressed  # +20% inside the noise band
    # Noise far beyond the cap: the band stops at 50%, so a 2x slowdown is still caught.
    wild = (1.0, 2.0, 4.0, 8.0, 16.0)
    assert compare(KEY, wild, tuple(2 * x for x in wild)).regressed
    assert compare(KEY, wild, tuple(2 * x for x in wild), GateRule(max_band=0.5)).slack_ms == pytest.approx(0.5)


def test_gate_reports_missing_and_unmeasured_rows() -> None:
    other = RowKey("ort", "fp32", "native", "cpu")
    skipped = BenchRow(RowKey("trt", "fp16", "native", "cpu"), "cpu", "skipped", "no TensorRT")
    result = gate({"rows": [_row((2.0,) * 3)]}, [_row((2.05,) * 3), _row((1.0,) * 3, other), skipped])
    assert result.passed and [v.key for v in result.verdicts] == [KEY]
    assert result.missing == (other,) and result.unmeasured == (skipped.key,)
    text = format_result(result, GateRule())
    assert "ort/fp32/native/cpu: not in the baseline" in text and "gate: pass" in text


def test_failing_row_is_remeasured_once() -> None:
    calls: list[RowKey] = []

    def remeasure(key: RowKey) -> BenchRow:
        calls.append(key)
        return _row((2.02,) * 3)

    transient = gate({"rows": [_row((2.0,) * 3)]}, [_row((3.0,) * 3)], remeasure=remeasure)
    assert calls == [KEY] and transient.passed and transient.verdicts[0].remeasured
    confirmed = gate({"rows": [_row((2.0,) * 3)]}, [_row((3.0,) * 3)], remeasure=lambda k: _row((3.1,) * 3))
    assert not confirmed.passed and confirmed.verdicts[0].cur_ms == pytest.approx(3.1)


def _measure(bundle_path: Path, delay_ms: float) -> tuple[list[BenchRow], BenchSettings]:
    settings = BenchSettings(**TIMING, engine_options={"delay_ms": delay_ms})
    return run_bench(load_bundle(bundle_path), ["null"], ["fp32"], [None], settings, progress=False), settings


def test_gate_passes_unchanged_and_catches_2x_slowdown(bundles: dict[str, Path], tmp_path: Path) -> None:
    bundle = load_bundle(bundles["seg"])
    base_rows, settings = _measure(bundles["seg"], 2.0)
    path = write_report(build_report(bundle, base_rows, settings), tmp_path / "base.json")
    baseline = load_report(path)
    same_rows, same = _measure(bundles["seg"], 2.0)
    assert gate_run(bundle, baseline, same_rows, same, GateRule()).passed
    slow_rows, slow = _measure(bundles["seg"], 4.0)
    result = gate_run(bundle, baseline, slow_rows, slow, GateRule())
    assert [v.key for v in result.regressions] == [KEY]
    assert result.regressions[0].remeasured and result.regressions[0].ratio > 1.8


def test_device_class_mismatch_is_gate_error(bundles: dict[str, Path], tmp_path: Path) -> None:
    bundle = load_bundle(bundles["seg"])
    rows, settings = _measure(bundles["seg"], 0.0)
    report = build_report(bundle, rows, settings)
    report["system"]["device_classes"]["cpu"] = "Some Other CPU 9000"
    baseline = load_report(write_report(report, tmp_path / "other.json"))
    with pytest.raises(GateError, match="Some Other CPU 9000"):
        gate_run(bundle, baseline, rows, settings, GateRule())


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edgepilot.cli", "bench", "--no-progress", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_cli_gate_exit_codes(bundles: dict[str, Path], tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    common = ["--model", str(bundles["seg"]), "--backends", "null", "--iters", "30", "--repeats", "5",
              "--baseline", str(base)]
    wrote = _cli(*common, "--engine-opt", "delay_ms=2", "--update-baseline")
    assert wrote.returncode == 0, wrote.stderr
    assert json.loads(base.read_text())["rows"][0]["engine"]["backend"] == "null"
    same = _cli(*common, "--engine-opt", "delay_ms=2")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "gate: pass" in same.stdout
    slow = _cli(*common, "--engine-opt", "delay_ms=4")
    assert slow.returncode == 1, slow.stdout + slow.stderr
    assert "REGRESSION null/fp32/native/cpu" in slow.stdout and "gate: FAIL (1 regression" in slow.stdout


@pytest.mark.parametrize("content", ["not json {", json.dumps({"rows": []}), json.dumps({"format": "edgepilot-bench", "rows": [{}]})])
def test_cli_bad_baseline_is_exit_2_one_line(bundles: dict[str, Path], tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    res = _cli("--model", str(bundles["seg"]), "--backends", "null", "--iters", "2", "--baseline", str(bad))
    assert res.returncode == 2
    assert res.stderr.startswith(f"error: baseline {bad}") and len(res.stderr.strip().splitlines()) == 1


def test_gate_judges_clean_p50s_when_recorded() -> None:
    base = BenchRow(KEY, "cpu", "ok", repeat_p50s_ms=(2.0,) * 3, clean_repeat_p50s_ms=(2.0,) * 3)
    loaded = BenchRow(KEY, "cpu", "ok", repeat_p50s_ms=(5.0,) * 3, clean_repeat_p50s_ms=(2.01,) * 3)
    assert gate({"rows": [base]}, [loaded]).passed
    slow = BenchRow(KEY, "cpu", "ok", repeat_p50s_ms=(5.0,) * 3, clean_repeat_p50s_ms=(4.0,) * 3)
    assert gate({"rows": [base]}, [slow]).verdicts[0].cur_ms == 4.0


def test_a_baseline_measured_in_another_mode_is_refused() -> None:
    from edgepilot.runtime.bench.gate import check_settings
    from edgepilot.runtime.errors import GateError

    check_settings({"settings": {"rate_hz": None}}, {"rate_hz": None, "engine_options": {"threads": 2}})
    with pytest.raises(GateError, match="rate_hz=None but this run uses 30") as info:
        check_settings({"settings": {"rate_hz": None}}, {"rate_hz": 30})
    assert info.value.exit_code == 2


def test_same_cpu_name_with_other_isa_is_gate_error(bundles: dict[str, Path], tmp_path: Path) -> None:
    """A Zen 3 and a Zen 4 VM both read "AMD EPYC": the baseline's ISA must match too."""
    from dataclasses import replace

    from edgepilot.runtime.host import cpu_info

    bundle = load_bundle(bundles["seg"])
    rows, settings = _measure(bundles["seg"], 0.0)
    report = build_report(bundle, rows, settings)
    here = cpu_info()
    other_isa = ("avx2",) if "avx512_bf16" in here.isa else (*here.isa, "avx512_bf16")
    report["system"]["device_classes"]["cpu"] = replace(here, isa=other_isa).cls
    baseline = load_report(write_report(report, tmp_path / "other_isa.json"))
    with pytest.raises(GateError, match="not comparable"):
        gate_run(bundle, baseline, rows, settings, GateRule())
