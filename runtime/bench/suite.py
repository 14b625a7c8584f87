"""Running a benchmark: one row per (backend, precision, shape), then the report and the gate.

Shared by ``edgepilot bench``, the pytest ``latency_gate`` fixture and
``benchmarks/run_all.py`` so all three measure and judge the same way.
"""

from __future__ import annotations

import datetime
import itertools
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from edgepilot.runtime.bench.gate import (
    GateResult,
    GateRule,
    check_device_classes,
    check_settings,
    gate,
)
from edgepilot.runtime.bench.measure import time_engine
from edgepilot.runtime.bench.report import (
    FORMAT,
    VERSION,
    BenchRow,
    RowKey,
    measured_row,
    row_to_json,
    skipped_row,
)
from edgepilot.runtime.bench.system import device_classes, system_info
from edgepilot.runtime.bundle import Bundle, file_sha256
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.engines.base import parse_device
from edgepilot.runtime.errors import EdgepilotError
from edgepilot.runtime.options import NATIVE, parse_shape
from edgepilot.runtime.progress import progress as progress_bar


@dataclass(frozen=True, slots=True)
class BenchSettings:
    """How each row is timed. ``rate_hz`` None = back-to-back; ``deadline_ms`` None = no miss share."""

    iters: int = 100
    warmup: int = 10
    repeats: int = 5
    device: str = "cpu"
    rate_hz: float | None = None
    deadline_ms: float | None = None
    engine_options: dict[str, Any] = field(default_factory=dict)


def shape_label(hw: tuple[int, int] | None) -> str:
    return NATIVE if hw is None else f"{hw[0]}x{hw[1]}"


def bench_row(bundle: Bundle, backend: str, precision: str, hw: tuple[int, int] | None,
              settings: BenchSettings) -> BenchRow:
    """Build, warm up and time one row; a row that cannot be built is returned skipped with the reason."""
    key = RowKey(backend, precision, shape_label(hw), parse_device(settings.device).kind)
    try:
        engine = load_engine(bundle, backend, precision, settings.device, hw, **settings.engine_options)
    except (EdgepilotError, ImportError) as exc:
        reason = str(exc) if isinstance(exc, EdgepilotError) else f"backend {backend!r} is not available ({exc})"
        return skipped_row(key, settings.device, reason)
    try:
        timing = time_engine(engine, settings.iters, settings.repeats, settings.warmup, settings.rate_hz)
        return measured_row(key, settings.device, timing, engine.describe(), settings.deadline_ms)
    finally:
        engine.close()


def run_bench(bundle: Bundle, backends: Sequence[str], precisions: Sequence[str],
              shapes: Sequence[tuple[int, int] | None], settings: BenchSettings,
              progress: bool = True) -> list[BenchRow]:
    """Every (backend, precision, shape) row in that order, with progress on stderr (runtime.progress)."""
    combos = list(itertools.product(backends, precisions, shapes))
    bar = progress_bar(len(combos), "bench", "row", enabled=progress)
    rows = []
    try:
        for b, p, hw in combos:
            rows.append(bench_row(bundle, b, p, hw, settings))
            bar.update()
    finally:
        bar.close()
    return rows


def build_report(bundle: Bundle, rows: Sequence[BenchRow], settings: BenchSettings,
                 command: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON-ready report (see runtime.bench.report for the keys)."""
    cuda_used = any(r.key.device_kind == "cuda" and r.ok for r in rows)
    return {
        "format": FORMAT, "version": VERSION,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": list(sys.argv if command is None else command),
        "bundle": {"name": bundle.name, "task": bundle.task, "sha256": file_sha256(bundle.file("fp32"))},
        "settings": {k: v for k, v in asdict(settings).items()},
        "system": system_info(cuda_used),
        "rows": [row_to_json(r) for r in rows],
    }


def gate_run(bundle: Bundle, baseline: dict[str, Any], rows: Sequence[BenchRow], settings: BenchSettings,
             rule: GateRule) -> GateResult:
    """Gate measured rows against a loaded baseline, re-measuring a failing row once (same settings)."""
    kinds = {r.key.device_kind for r in rows if r.ok}
    check_device_classes(baseline, device_classes("cuda" in kinds), kinds)
    check_settings(baseline, asdict(settings))

    def remeasure(key: RowKey) -> BenchRow:
        hw = None if key.shape == NATIVE else parse_shape(key.shape)
        return bench_row(bundle, key.backend, key.precision, hw, settings)

    return gate(baseline, rows, rule, remeasure)

