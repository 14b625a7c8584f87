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
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from runtime.engines.base import Engine

# Sleeping overshoots by up to ~0.1 ms on Linux; spin the last stretch so
# paced arrivals start on schedule.
_SPIN_S = 0.5e-3


@dataclass(frozen=True, slots=True)
class Timing:
    """Latency samples in ms, one tuple per repeat (no clipping of any sample)."""

    repeats_ms: tuple[tuple[float, ...], ...]

    @property
    def samples_ms(self) -> np.ndarray:
        """All samples of all repeats, in order, as float64 ms."""
        return np.concatenate([np.asarray(r, np.float64) for r in self.repeats_ms])

    @property
    def repeat_p50s_ms(self) -> tuple[float, ...]:
        """The median latency of each repeat in ms: the gate's noise estimate comes from their spread."""
        return tuple(float(np.median(r)) for r in self.repeats_ms)


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
    runs = []
    for _ in range(repeats):
        samples = _paced(engine, feeds, iters, rate_hz) if rate_hz else _back_to_back(engine, feeds, iters)
        runs.append(tuple(samples))
    return Timing(tuple(runs))


def _back_to_back(engine: Engine, feeds: Mapping[str, np.ndarray], iters: int) -> list[float]:
    out = []
    clock = time.perf_counter
    for _ in range(iters):
        engine.synchronize()
        t0 = clock()
        engine.infer(feeds)
        engine.synchronize()
        out.append((clock() - t0) * 1e3)
    return out


def _paced(engine: Engine, feeds: Mapping[str, np.ndarray], iters: int, rate_hz: float) -> list[float]:
    if rate_hz <= 0:
        raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
    period_s = 1.0 / rate_hz
    clock = time.perf_counter
    out = []
    engine.synchronize()
    t0 = clock()
    for k in range(iters):
        arrival = t0 + k * period_s
        _wait_until(arrival)
        engine.infer(feeds)
        engine.synchronize()
        out.append((clock() - arrival) * 1e3)
    return out


def _wait_until(deadline_s: float) -> None:
    """Return at ``deadline_s`` (perf_counter seconds), or at once if it has passed (a queued request)."""
    remaining = deadline_s - time.perf_counter()
    if remaining > _SPIN_S:
        time.sleep(remaining - _SPIN_S)
    while time.perf_counter() < deadline_s:
        pass
