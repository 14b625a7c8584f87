"""Benchmark statistics, rows, report keys, paced arrivals and the CLI smoke run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgepilot.runtime.bench.measure import Timing, time_engine
from edgepilot.runtime.bench.report import RowKey, format_table, measured_row
from edgepilot.runtime.bench.suite import BenchSettings, build_report, run_bench
from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.errors import EdgepilotError
from edgepilot.runtime.options import parse_shape
from edgepilot.runtime.telemetry import summarize_ms

ROOT = Path(__file__).resolve().parents[2]
ROW_KEYS = {"backend", "precision", "shape", "device", "device_kind", "status", "reason", "engine",
            "latency_ms", "fps", "deadline_miss_share", "repeat_p50s_ms", "clean_repeat_p50s_ms",
            "preempted_share"}


def test_p50_of_1_to_100_and_no_outlier_clipping() -> None:
    s = summarize_ms(np.arange(1, 101, dtype=float))
    assert s["p50"] == pytest.approx(50.5)
    assert s["max"] == 100 and s["min"] == 1 and s["n"] == 100
    with_outlier = summarize_ms([*range(1, 101), 1e6])
    assert with_outlier["max"] == 1e6
    assert with_outlier["mean"] == pytest.approx((5050 + 1e6) / 101)


def test_measured_row_fps_miss_share_and_repeat_p50s() -> None:
    timing = Timing(((1.0, 2.0, 3.0, 4.0), (10.0, 20.0, 30.0, 40.0)))
    row = measured_row(RowKey("null", "fp32", "native", "cpu"), "cpu", timing, {}, deadline_ms=2.5)
    assert row.repeat_p50s_ms == (2.5, 25.0)
    assert row.latency_ms["mean"] == pytest.approx(13.75)
    assert row.fps == pytest.approx(1000 / 13.75)
    assert row.deadline_miss_share == pytest.approx(6 / 8)
    assert row.latency_ms["max"] == 40.0


def test_clean_p50s_leave_out_preempted_calls() -> None:
    timing = Timing(((2.0, 2.0, 9.0, 9.0, 9.0), (2.0, 2.0, 2.0, 2.0, 50.0), (7.0, 8.0, 9.0, 10.0, 11.0)),
                    ((False, False, True, True, True), (False,) * 4 + (True,), (False,) + (True,) * 4))
    assert timing.repeat_p50s_ms == (9.0, 2.0, 9.0)
    # Repeat 3 has 1 clean call in 5 (20%): just enough to be judged on it alone.
    assert timing.clean_repeat_p50s_ms == (2.0, 2.0, 7.0)
    assert timing.preempted_share == pytest.approx(8 / 15)
    assert Timing(((1.0, 3.0),)).clean_repeat_p50s_ms == (2.0,)  # nothing recorded: all calls


def test_parse_shape() -> None:
    assert parse_shape("256x512") == (256, 512)
    assert parse_shape("native") is None
    for bad in ("256", "axb", "0x4"):
        with pytest.raises(EdgepilotError):
            parse_shape(bad)


def test_report_has_documented_keys_and_values_in_range(bundles: dict[str, Path]) -> None:
    bundle = load_bundle(bundles["seg_dynamic"])
    settings = BenchSettings(iters=10, warmup=2, repeats=3, deadline_ms=1.5, engine_options={"delay_ms": 1.0})
    rows = run_bench(bundle, ["null"], ["fp32"], [(64, 128), (32, 64)], settings, progress=False)
    report = json.loads(json.dumps(build_report(bundle, rows, settings, ["edgepilot", "bench"])))
    assert {"format", "version", "date", "command", "bundle", "settings", "system", "rows"} <= report.keys()
    assert report["command"] == ["edgepilot", "bench"]
    assert report["system"]["device_classes"]["cpu"]
    assert report["system"]["versions"]["python"] and report["system"]["versions"]["numpy"]
    assert report["system"]["memory"]["peak_rss_mb"] > 1
    assert [r["shape"] for r in report["rows"]] == ["64x128", "32x64"]
    for r in report["rows"]:
        assert set(r) == ROW_KEYS and r["status"] == "ok" and r["reason"] == ""
        lat = r["latency_ms"]
        assert 1.0 <= lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
        assert lat["n"] == 30 and len(r["repeat_p50s_ms"]) == 3 == len(r["clean_repeat_p50s_ms"])
        assert 0.0 <= r["preempted_share"] <= 1.0 and min(r["clean_repeat_p50s_ms"]) >= 1.0
        assert 0 < r["fps"] <= 1000 and r["fps"] == pytest.approx(1000 / lat["mean"])
        assert r["deadline_miss_share"] <= 0.5  # 1 ms busy-wait is mostly under a 1.5 ms deadline
    assert "null/fp32/64x128/cpu" in format_table(rows)


def test_rows_that_cannot_be_built_are_skipped_with_reason(bundles: dict[str, Path]) -> None:
    bundle = load_bundle(bundles["seg"])
    rows = run_bench(bundle, ["ort", "torch", "nope"], ["int8"], [None], BenchSettings(iters=2, repeats=1),
                     progress=False)
    assert [r.status for r in rows] == ["skipped"] * 3
    assert "int8" in rows[0].reason
    assert "torch" in rows[1].reason and "nope" in rows[2].reason
    assert all(math.isnan(r.fps) and r.repeat_p50s_ms == () for r in rows)


def test_paced_at_100hz_latency_is_service_time(bundles: dict[str, Path]) -> None:
    engine = load_engine(bundles["seg"], "null", delay_ms=5.0)
    timing = time_engine(engine, iters=8, repeats=10, warmup=1, rate_hz=100.0)
    # Period 10 ms > service 5 ms: no queue, latency is the service time. The fastest
    # repeat is judged because other processes on a shared machine can stall a repeat
    # (a stall queues every later request: that is what paced mode measures).
    assert 5.0 <= min(timing.repeat_p50s_ms) < 7.0
    assert float(timing.samples_ms.min()) >= 5.0


def test_paced_at_400hz_queueing_grows(bundles: dict[str, Path]) -> None:
    engine = load_engine(bundles["seg"], "null", delay_ms=5.0)
    lat = time_engine(engine, iters=30, repeats=1, warmup=1, rate_hz=400.0).samples_ms
    # Service 5 ms, period 2.5 ms: request k waits about 2.5 * k ms before it starts.
    assert float(np.median(lat)) > 20.0
    assert lat[-1] > lat[0] + 50.0
    assert lat[-1] >= 5.0 + 2.5 * 29 - 1.0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edgepilot.cli", "bench", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_smoke_writes_json_and_png(bundles: dict[str, Path], tmp_path: Path) -> None:
    out, png = tmp_path / "x.json", tmp_path / "x.png"
    res = _cli("--model", str(bundles["seg"]), "--backends", "null,ort", "--iters", "20", "--repeats", "2",
               "--out", str(out), "--plot", str(png), "--no-progress")
    assert res.returncode == 0, res.stderr
    report = json.loads(out.read_text())
    assert [(r["backend"], r["status"]) for r in report["rows"]] == [("null", "ok"), ("ort", "ok")]
    assert report["rows"][1]["engine"]["provider"] == "CPUExecutionProvider"
    assert report["rows"][1]["latency_ms"]["n"] == 40
    assert "ort/fp32/native/cpu" in res.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 200_000


def test_cli_bad_model_is_exit_2_one_line(tmp_path: Path) -> None:
    res = _cli("--model", str(tmp_path / "nope"), "--backends", "null", "--iters", "2")
    assert res.returncode == 2
    assert res.stderr.startswith("error:") and len(res.stderr.strip().splitlines()) == 1


def test_run_all_suite_reads_yaml_and_writes_report(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    assert spec and spec.loader
    run_all = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = run_all  # dataclasses resolve their module by name
    spec.loader.exec_module(run_all)
    default = run_all.load_config(ROOT / "configs" / "bench" / "default.yaml")
    assert "null" in default.backends and default.iters == 200
    cfg_path = tmp_path / "suite.yaml"
    cfg_path.write_text(f'backends: ["null"]\nshapes: [32x64]\niters: 5\nrepeats: 2\nwarmup: 1\n'
                        f'out: {tmp_path / "r.json"}\nplot: ""\n')
    cfg = run_all.load_config(cfg_path)
    assert cfg.precisions == ("fp32",)  # not in the YAML: the dataclass default
    assert run_all.bench_engines(cfg) == 0
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert [(r["shape"], r["latency_ms"]["n"]) for r in rows] == [("32x64", 10)]
