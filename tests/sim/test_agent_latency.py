"""DelayedActuator (``--latency-aware``): known (tick, latency, control) sequences at dt = 0.05 s."""

from __future__ import annotations

import math

import pytest

from edgepilot.sim.agent.latency import DelayedActuator
from edgepilot.sim.types import Control

DT = 0.05
OLD = Control(steer=-0.5, throttle=0.2, brake=0.0)
NEW = Control(steer=0.5, throttle=0.8, brake=0.5)


def mix(old: Control, new: Control, new_share: float) -> tuple[float, float, float]:
    """The time-weighted control: ``new_share`` of the step under ``new``, the rest under ``old``."""
    return tuple((1 - new_share) * getattr(old, k) + new_share * getattr(new, k)  # type: ignore[return-value]
                 for k in ("steer", "throttle", "brake"))


def as_tuple(c: Control) -> tuple[float, float, float]:
    return (c.steer, c.throttle, c.brake)


def test_zero_latency_applies_each_control_in_its_own_tick():
    """With latency 0 every tick's control is applied whole, in that same tick (the synchronous loop)."""
    controls = [Control(0.1 * k - 0.3, 0.1 * k, 0.05 * k) for k in range(6)]
    act = DelayedActuator(DT)
    applied = []
    for tick, control in enumerate(controls):
        assert act.ready(tick)
        act.submit(tick, 0.0, control)
        applied.append(act.control_for(tick))
    for got, want in zip(applied, controls, strict=True):
        assert as_tuple(got) == pytest.approx(as_tuple(want), abs=1e-12)
    assert act.skipped == 0
    assert act.pending == []


def test_20ms_latency_blends_40_percent_old_60_percent_new_then_new():
    """A 20 ms delay in a 50 ms step: 0.4 * old + 0.6 * new in that step, only new in the next."""
    act = DelayedActuator(DT)
    assert act.ready(0)
    act.submit(0, 0.0, OLD)
    assert as_tuple(act.control_for(0)) == pytest.approx(as_tuple(OLD), abs=1e-12)
    assert act.ready(1)
    act.submit(1, 0.02, NEW)
    blended = act.control_for(1)
    assert as_tuple(blended) == pytest.approx(mix(OLD, NEW, 0.6), abs=1e-9)
    assert blended.steer == pytest.approx(0.4 * -0.5 + 0.6 * 0.5)  # 0.1: not either control
    assert act.ready(2)  # landed at 0.07 s, before tick 2 (0.10 s)
    assert as_tuple(act.control_for(2)) == pytest.approx(as_tuple(NEW), abs=1e-9)
    assert act.skipped == 0


def test_120ms_latency_skips_two_frames_and_lands_inside_tick_2():
    """Seen at t=0, a 120 ms decision lands at 0.12 s: ticks 1 and 2 are skipped (agent busy),
    tick 0 and 1 apply the old control, tick 2 is 60 % new, tick 3 the agent is ready again."""
    act = DelayedActuator(DT, current=OLD)
    applied, ready = [], []
    for tick in range(4):
        ready.append(act.ready(tick))
        if ready[-1] and tick == 0:
            act.submit(tick, 0.12, NEW)
        applied.append(act.control_for(tick))
    assert ready == [True, False, False, True]
    assert act.skipped == 2
    assert as_tuple(applied[0]) == pytest.approx(as_tuple(OLD), abs=1e-9)
    assert as_tuple(applied[1]) == pytest.approx(as_tuple(OLD), abs=1e-9)
    assert as_tuple(applied[2]) == pytest.approx(mix(OLD, NEW, 0.6), abs=1e-9)
    assert as_tuple(applied[3]) == pytest.approx(as_tuple(NEW), abs=1e-9)
    act.reset()
    assert act.skipped == 0 and act.pending == [] and act.ready(1)


@pytest.mark.parametrize("latency", [-0.01, math.nan, math.inf])
def test_negative_or_nan_latency_is_refused(latency):
    """A latency must be a finite number of seconds >= 0: anything else is a ValueError, nothing queued."""
    act = DelayedActuator(DT)
    with pytest.raises(ValueError, match="latency"):
        act.submit(0, latency, NEW)
    assert act.pending == []
