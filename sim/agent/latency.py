"""Actuation delay for ``edgepilot drive --latency-aware``: the runtime's speed felt by the score.

A synchronous simulator waits for the agent, so inference time is invisible to it. Here each
tick's measured latency ``L`` (perception + observation + policy, times ``--latency-scale``)
becomes simulated time:

- the agent sees frame ``t`` (time ``t * dt``) and its control lands at ``t * dt + L``; until
  then the control in effect holds;
- the agent is busy until it lands, so the frames of the ticks in between are skipped (it
  could not have seen them): it next sees the first frame at or after the landing time;
- a step lasts ``dt``; the control applied to it is the time-weighted mean of the controls
  in effect during it (so a 20 ms delay in a 50 ms step applies 40 % of the old control and
  60 % of the new one).

:class:`DelayedActuator` is pure arithmetic over (tick, latency, control) sequences, tested
on known sequences in ``tests/sim/test_agent_latency.py``. With every latency 0 it applies
each control in its own tick, as the plain synchronous loop does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edgepilot.sim.types import Control

EPS_S = 1e-9


@dataclass
class DelayedActuator:
    """``ready(tick)``: may the agent see this tick's frame? ``submit(tick, latency_s, control)``
    when it has acted on it; ``control_for(tick)``: what the simulator applies in this step."""

    dt_s: float
    current: Control = field(default_factory=Control)  # in effect now
    pending: list[tuple[float, Control]] = field(default_factory=list)  # (landing time s, control)
    busy_until_s: float = 0.0
    skipped: int = 0  # frames the agent could not see

    def reset(self) -> None:
        self.current, self.pending, self.busy_until_s, self.skipped = Control(), [], 0.0, 0

    def ready(self, tick: int) -> bool:
        if tick * self.dt_s + EPS_S >= self.busy_until_s:
            return True
        self.skipped += 1
        return False

    def submit(self, tick: int, latency_s: float, control: Control) -> None:
        if not math.isfinite(latency_s) or latency_s < 0:
            raise ValueError(f"a latency is a finite number of seconds >= 0, got {latency_s}")
        lands = tick * self.dt_s + latency_s
        self.pending.append((lands, control))
        self.pending.sort(key=lambda p: p[0])
        self.busy_until_s = lands

    def control_for(self, tick: int) -> Control:
        """The time-weighted control over the step [tick dt, (tick + 1) dt)."""
        start, end = tick * self.dt_s, (tick + 1) * self.dt_s
        t, acc = start, [0.0, 0.0, 0.0]
        while self.pending and self.pending[0][0] < end - EPS_S:
            lands, control = self.pending.pop(0)
            lands = max(lands, start)
            _add(acc, self.current, lands - t)
            t, self.current = lands, control
        _add(acc, self.current, end - t)
        return Control(acc[0] / self.dt_s, acc[1] / self.dt_s, acc[2] / self.dt_s).clipped()


def _add(acc: list[float], control: Control, seconds: float) -> None:
    if seconds > 0:
        acc[0] += control.steer * seconds
        acc[1] += control.throttle * seconds
        acc[2] += control.brake * seconds
