"""pytest plugin (entry point ``edgepilot``): the ``latency_gate`` fixture for latency regression tests.

Usage in any test suite::

    def test_seg_latency(latency_gate):
        latency_gate("models/seg", baseline="tests/baselines/seg.json", backend="ort",
                     precision="fp32", tolerance=0.10, iters=50, repeats=5)

It benches one row and judges it with the same rule as ``edgepilot bench
--baseline`` (shared code, see ``runtime.bench.gate``). When the baseline file,
or this row in it, is missing, or with ``pytest --update-latency-baselines``,
it writes the row into the baseline and skips with a message saying so. A
relative baseline path is taken from the pytest rootdir.

pytest loads this module in every run, so it imports nothing heavy at import
time: the benchmark code is imported when the fixture is first called.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from edgepilot.runtime.bench.gate import GateResult
    from edgepilot.runtime.bench.report import BenchRow

UPDATE_OPTION = "--update-latency-baselines"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgepilot")
    group.addoption(UPDATE_OPTION, action="store_true", default=False,
                    help="(re)write latency baselines used by the latency_gate fixture instead of gating")


@pytest.fixture
def latency_gate(request: pytest.FixtureRequest) -> Callable[..., GateResult]:
    """A function ``(bundle, baseline, backend, precision, ...) -> GateResult`` that fails the test on a regression."""
    update = bool(request.config.getoption(UPDATE_OPTION))
    root = Path(request.config.rootpath)

    def check(bundle: str | Path, baseline: str | Path, backend: str = "ort", precision: str = "fp32",
              shape: str = "native", device: str = "cpu", tolerance: float = 0.10, iters: int = 50,
              warmup: int = 5, repeats: int = 5, noise_k: float = 3.0, max_band: float = 0.5,
              **engine_options: Any) -> GateResult:
        from edgepilot.runtime.bench.gate import GateRule, format_result
        from edgepilot.runtime.bench.report import load_report
        from edgepilot.runtime.bench.suite import BenchSettings, bench_row, gate_run
        from edgepilot.runtime.bundle import load_bundle
        from edgepilot.runtime.engines import engine_class
        from edgepilot.runtime.engines.options import validate_options
        from edgepilot.runtime.options import parse_shape

        loaded = load_bundle(bundle)
        # a typo in an option is the test's bug: fail here (EngineError) instead of skipping the row
        validate_options(engine_class(backend).OPTIONS, engine_options, backend)
        settings = BenchSettings(iters, warmup, repeats, device, engine_options=dict(engine_options))
        row = bench_row(loaded, backend, precision, parse_shape(shape), settings)
        if not row.ok:
            pytest.skip(f"latency row {row.key.label} cannot be built here: {row.reason}")
        path = Path(baseline) if Path(baseline).is_absolute() else root / baseline
        stored = load_report(path) if path.is_file() else None
        if update or stored is None or all(r.key != row.key for r in stored["rows"]):
            _write_baseline(loaded, path, stored, row, settings)
            pytest.skip(f"wrote latency baseline for {row.key.label} to {path} "
                        f"(p50 {row.latency_ms['p50']:.3f} ms); later runs gate against it")
        rule = GateRule(tolerance, noise_k, max_band)
        result = gate_run(loaded, stored, [row], settings, rule)
        if not result.passed:
            pytest.fail(format_result(result, rule), pytrace=False)
        return result

    return check


def _write_baseline(bundle: Any, path: Path, stored: dict[str, Any] | None, row: BenchRow,
                    settings: Any) -> None:
    """Write ``row`` into the baseline at ``path``, keeping the stored rows with other keys."""
    from edgepilot.runtime.bench.report import write_report
    from edgepilot.runtime.bench.suite import build_report

    others = [r for r in (stored["rows"] if stored else []) if r.key != row.key]
    write_report(build_report(bundle, [*others, row], settings, ["pytest", UPDATE_OPTION]), path)
