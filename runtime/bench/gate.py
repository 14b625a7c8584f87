"""The latency regression gate: compare a run with a stored baseline, robust to noisy machines.

Rule (per row, matched on backend, precision, shape and device kind):

1. Each run times R repeats of N calls. Calls during which the OS gave the
   CPU to another process (an involuntary context switch, see
   ``runtime.bench.measure``) are left out of each repeat's p50: they time the
   machine's load, not the engine (``clean_repeat_p50s_ms``). A row's level
   is the **fastest repeat's clean p50**. Load from other processes only ever
   adds time, so one clean repeat out of R is enough, while a real slowdown
   raises every call of every repeat. (The plain median of per-repeat p50s
   was tried first: with CPU hogs on a 2-core machine it flagged unchanged
   runs.)
2. Each run's noise is the spread of those clean per-repeat p50s:
   ``sigma = 1.4826 * MAD`` (a robust standard deviation). The noise band is
   ``noise_k * sqrt(sigma_base**2 + sigma_cur**2)`` (default ``noise_k = 3``).
3. The allowed slack is ``max(tolerance * base, min(noise band, max_band * base))``:
   at least the tolerance, widened by measured noise, but never beyond
   ``max_band`` (default 0.5) so a noisy machine cannot hide a 2x slowdown.
4. A row **fails** if ``cur - base > slack``. A failing row is **re-measured once**
   (fresh warm-up and repeats) and is a regression only if it fails again:
   a burst of load from another process rarely lasts through both.

Rows in the run but not in the baseline are reported and do not fail. A
baseline recorded on another device class (CPU model for ``cpu`` rows, GPU name
for ``cuda`` rows) raises GateError (exit 2): latencies across machines are not
comparable, so record a baseline per device class. An unreadable baseline is
GateError too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgepilot.runtime.bench.report import BenchRow, RowKey
from edgepilot.runtime.errors import GateError

MAD_TO_SIGMA = 1.4826  # MAD of a normal sample times this estimates its standard deviation


@dataclass(frozen=True, slots=True)
class GateRule:
    """Gate parameters: ``tolerance`` and ``max_band`` are fractions of the baseline p50."""

    tolerance: float = 0.10
    noise_k: float = 3.0
    max_band: float = 0.5


@dataclass(frozen=True, slots=True)
class Verdict:
    """One compared row: levels and slack in ms, ``ratio = cur_ms / base_ms``."""

    key: RowKey
    base_ms: float
    cur_ms: float
    slack_ms: float
    noise_ms: float
    regressed: bool
    remeasured: bool = False

    @property
    def ratio(self) -> float:
        return self.cur_ms / self.base_ms if self.base_ms > 0 else math.inf


@dataclass(frozen=True, slots=True)
class GateResult:
    """All verdicts, plus rows the baseline lacks and rows either side did not measure."""

    verdicts: tuple[Verdict, ...]
    missing: tuple[RowKey, ...] = ()
    unmeasured: tuple[RowKey, ...] = ()

    @property
    def regressions(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.regressed)

    @property
    def passed(self) -> bool:
        return not self.regressions


def robust_level(repeat_p50s_ms: Sequence[float]) -> tuple[float, float]:
    """(level, noise sigma) in ms: the fastest per-repeat p50, and 1.4826 * MAD of the per-repeat p50s."""
    x = np.asarray(repeat_p50s_ms, np.float64)
    if x.size == 0:
        raise GateError("a row has no per-repeat p50s: re-record it with this version of edgepilot")
    med = float(np.median(x))
    return float(x.min()), MAD_TO_SIGMA * float(np.median(np.abs(x - med)))


def compare(key: RowKey, base_p50s_ms: Sequence[float], cur_p50s_ms: Sequence[float],
            rule: GateRule = GateRule()) -> Verdict:
    """Apply steps 1-3 of the rule to one row (no re-measure)."""
    base, sigma_b = robust_level(base_p50s_ms)
    cur, sigma_c = robust_level(cur_p50s_ms)
    noise = rule.noise_k * math.hypot(sigma_b, sigma_c)
    slack = max(rule.tolerance * base, min(noise, rule.max_band * base))
    return Verdict(key, base, cur, slack, noise, cur - base > slack)


def check_device_classes(baseline: dict[str, Any], current: dict[str, str], kinds: set[str]) -> None:
    """GateError if, for a device kind both runs used, the baseline's device class differs."""
    recorded = baseline.get("system", {}).get("device_classes", {})
    for kind in sorted(kinds):
        if kind in recorded and kind in current and recorded[kind] != current[kind]:
            raise GateError(
                f"baseline was recorded on {kind} {recorded[kind]!r} but this run is on {current[kind]!r}: "
                "latencies from different machines are not comparable; record a baseline here with "
                "--update-baseline")


# Settings that change what a latency *means*: a paced run includes queueing.
# Engine options (threads, provider) are not here on purpose: changing them is a
# configuration change whose effect on latency is exactly what the gate judges.
MEASUREMENT_SETTINGS = ("rate_hz",)


def check_settings(baseline: dict[str, Any], current: dict[str, Any]) -> None:
    """GateError (exit 2) if the baseline was measured in another mode (``MEASUREMENT_SETTINGS``)."""
    recorded = baseline.get("settings", {})
    for name in MEASUREMENT_SETTINGS:
        if name in recorded and recorded[name] != current.get(name):
            raise GateError(
                f"baseline was measured with {name}={recorded[name]!r} but this run uses "
                f"{current.get(name)!r}: rerun with the baseline's setting or record a new baseline "
                "with --update-baseline")


def gate(baseline: dict[str, Any], rows: Sequence[BenchRow], rule: GateRule = GateRule(),
         remeasure: Callable[[RowKey], BenchRow] | None = None) -> GateResult:
    """Compare measured ``rows`` with a loaded baseline report (``load_report``), re-measuring failures.

    ``remeasure(key)`` times the row again; without it, a first failure is final.
    """
    base_rows = {r.key: r for r in baseline["rows"] if r.ok}
    verdicts, missing, unmeasured = [], [], []
    for row in rows:
        if not row.ok:
            unmeasured.append(row.key)
        elif row.key not in base_rows:
            missing.append(row.key)
        else:
            verdicts.append(_judge(base_rows[row.key], row, rule, remeasure))
    return GateResult(tuple(verdicts), tuple(missing), tuple(unmeasured))


def _judge(base: BenchRow, row: BenchRow, rule: GateRule,
           remeasure: Callable[[RowKey], BenchRow] | None) -> Verdict:
    first = compare(row.key, _p50s(base), _p50s(row), rule)
    if not first.regressed or remeasure is None:
        return first
    again = remeasure(row.key)
    if not again.ok:
        return first
    second = compare(row.key, _p50s(base), _p50s(again), rule)
    return Verdict(row.key, second.base_ms, second.cur_ms, second.slack_ms, second.noise_ms,
                   second.regressed, remeasured=True)


def _p50s(row: BenchRow) -> tuple[float, ...]:
    """The per-repeat p50s the gate judges: clean ones when recorded."""
    return row.clean_repeat_p50s_ms or row.repeat_p50s_ms


def format_result(result: GateResult, rule: GateRule) -> str:
    """Human-readable gate summary: one line per compared row, then missing rows and the verdict."""
    lines = [f"latency gate (tolerance {rule.tolerance:.0%}, noise k {rule.noise_k:g}, "
             f"max band {rule.max_band:.0%}; level = fastest repeat's clean p50):"]
    for v in result.verdicts:
        tag = "REGRESSION" if v.regressed else "ok"
        again = " (confirmed on re-measure)" if v.remeasured and v.regressed else (
            " (passed on re-measure)" if v.remeasured else "")
        lines.append(f"  {tag:<10} {v.key.label}: baseline p50 {v.base_ms:.3f} ms, current {v.cur_ms:.3f} ms, "
                     f"ratio {v.ratio:.2f} (allowed +{v.slack_ms:.3f} ms, noise band {v.noise_ms:.3f} ms){again}")
    for key in result.missing:
        lines.append(f"  new        {key.label}: not in the baseline (not gated)")
    for key in result.unmeasured:
        lines.append(f"  skipped    {key.label}: not measured in this run (not gated)")
    n = len(result.regressions)
    lines.append(f"gate: {'FAIL' if n else 'pass'} ({n} regression{'s' if n != 1 else ''} "
                 f"in {len(result.verdicts)} compared row{'s' if len(result.verdicts) != 1 else ''})")
    return "\n".join(lines)
