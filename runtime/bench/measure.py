"""Timing an engine: back-to-back or paced at a camera rate.

Back-to-back (the default) times ``engine.infer`` on fixed sample inputs, one
call after another: latency is the engine's own service time.

Paced (``rate_hz``) models a camera: request k *arrives* at ``t0 + k / rate_hz``
whether or not the engine is free, and waits in an unbounded FIFO queue until
the engine is. Latency is completion minus scheduled arrival, so when the
engine is slower than the frame period the queue grows and latency climbs
frame after frame; when it is faster, latency equals service time. Each repeat
starts with an empty queue.

Every clock read is preceded by ``engine.synchronize()`` so GPU work queued
by ``infer`` is counted.

Each call is also tagged *preempted* when the process's involuntary context
switch count (``getrusage().ru_nivcsw``, read outside the timed region) rose
during it: the OS took the CPU away for another process. Those calls measure
the machine's load, not the engine; ``clean_repeat_p50s_ms`` leaves them out
and is what the regression gate judges.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgepilot.runtime.engines.base import Engine

# Sleeping overshoots by up to ~0.1 ms on Linux; spin the last stretch so
# paced arrivals start on schedule.
_SPIN_S = 0.5e-3
# A repeat with fewer clean calls than this share is judged on all its calls.
MIN_CLEAN_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class Timing:
    """Latency samples in ms, one tuple per repeat (no clipping of any sample).

    ``preempted`` mirrors ``repeats_ms``: True where the call lost the CPU to
    another process (empty when not recorded).
    """

    repeats_ms: tuple[tuple[float, ...], ...]
    preempted: tuple[tuple[bool, ...], ...] = ()

    @property
    def samples_ms(self) -> np.ndarray:
        """All samples of all repeats, in order, as float64 ms."""
        return np.concatenate([np.asarray(r, np.float64) for r in self.repeats_ms])

    @property
    def repeat_p50s_ms(self) -> tuple[float, ...]:
        """The median latency of each repeat in ms, over all its calls."""
        return tuple(float(np.median(r)) for r in self.repeats_ms)

    @property
    def preempted_share(self) -> float:
        """Share of calls that lost the CPU to another process (0 when not recorded)."""
        flags = [f for rep in self.preempted for f in rep]
        return float(np.mean(flags)) if flags else 0.0

    @property
    def clean_repeat_p50s_ms(self) -> tuple[float, ...]:
        """Per-repeat median over calls not preempted; all calls where under MIN_CLEAN_SHARE were clean."""
        if not self.preempted:
            return self.repeat_p50s_ms
        out = []
        for lat, pre in zip(self.repeats_ms, self.preempted, strict=True):
            x, clean = np.asarray(lat), ~np.asarray(pre, bool)
            out.append(float(np.median(x[clean] if clean.mean() >= MIN_CLEAN_SHARE else x)))
        return tuple(out)


def time_engine(engine: Engine, iters: int = 100, repeats: int = 5, warmup: int = 10,
                rate_hz: float | None = None) -> Timing:
    """Warm ``engine`` up with ``warmup`` calls, then time ``repeats`` x ``iters`` calls.

    ``rate_hz`` switches from back-to-back to paced arrivals (see module doc).
    """
    if iters < 1 or repeats < 1:
        raise ValueError(f"iters and repeats must be >= 1, got {iters} and {repeats}")
    feeds = engine.sample_inputs()
    for _ in range(warmup):
        engine.infer(feeds)
    engine.synchronize()
    runs, flags = [], []
    for _ in range(repeats):
        samples, pre = (_paced(engine, feeds, iters, rate_hz) if rate_hz is not None
                        else _back_to_back(engine, feeds, iters))
        runs.append(tuple(samples))
        flags.append(tuple(pre))
    return Timing(tuple(runs), tuple(flags))


def _switches() -> int:
    """Involuntary context switches of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


def _back_to_back(engine: Engine, feeds: Mapping[str, np.ndarray], iters: int) -> tuple[list[float], list[bool]]:
    out, pre = [], []
    clock = time.perf_counter
    for _ in range(iters):
        engine.synchronize()
        c0 = _switches()
        t0 = clock()
        engine.infer(feeds)
        engine.synchronize()
        out.append((clock() - t0) * 1e3)
        pre.append(_switches() > c0)
    return out, pre


def _paced(engine: Engine, feeds: Mapping[str, np.ndarray], iters: int,
           rate_hz: float) -> tuple[list[float], list[bool]]:
    if rate_hz <= 0:
        raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
    period_s = 1.0 / rate_hz
    clock = time.perf_counter
    out, pre = [], []
    engine.synchronize()
    t0 = clock()
    for k in range(iters):
        arrival = t0 + k * period_s
        _wait_until(arrival)
        c0 = _switches()
        engine.infer(feeds)
        engine.synchronize()
        out.append((clock() - arrival) * 1e3)
        pre.append(_switches() > c0)
    return out, pre


def _wait_until(deadline_s: float) -> None:
    """Return at ``deadline_s`` (perf_counter seconds), or at once if it has passed (a queued request)."""
    remaining = deadline_s - time.perf_counter()
    if remaining > _SPIN_S:
        time.sleep(remaining - _SPIN_S)
    while time.perf_counter() < deadline_s:
        pass
