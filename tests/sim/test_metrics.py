"""Driving-score arithmetic on hand-made event sequences."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepilot.sim.metrics import EpisodeMeter, summarise
from edgepilot.sim.types import EgoState, Events, Observation


def _obs(events: Events, completion: float, distance_m: float) -> Observation:
    return Observation(np.zeros((1, 1, 3), np.uint8), None, (), EgoState(0, 0, 0, 0), events, 0.0, 0,
                       {"route_completion": completion, "distance_m": distance_m})


def _run(seq: list[Events], completion: float, distance_m: float = 500.0):
    meter = EpisodeMeter()
    for e in seq:
        meter.update(_obs(e, completion, distance_m))
    return meter.score()


def test_one_vehicle_collision_lasting_many_ticks_counts_once():
    hit = Events(collision=True, collision_with="vehicle")
    s = _run([Events(), hit, hit, hit, Events()], completion=1.0)
    assert s.collisions["vehicle"] == 1
    assert s.infraction_penalty == pytest.approx(0.6) and s.driving_score == pytest.approx(0.6)
    assert s.collisions_per_km == pytest.approx(2.0)


def test_half_route_with_one_collision_scores_point_three():
    s = _run([Events(collision=True, collision_with="vehicle")], completion=0.5)
    assert s.driving_score == pytest.approx(0.3)


def test_penalties_multiply_and_off_road_share():
    seq = [Events(collision=True, collision_with="vehicle"), Events(off_road=True),
           Events(collision=True, collision_with="static"), Events(),
           Events(collision=True, collision_with="pedestrian")]
    s = _run(seq, completion=1.0)
    assert s.infraction_penalty == pytest.approx(0.6 * 0.65 * 0.5)
    assert s.off_road_share == pytest.approx(0.2)


def test_summary_means_and_json():
    a = _run([Events()], completion=1.0, distance_m=1000.0)
    b = _run([Events(collision=True, collision_with="vehicle")], completion=0.5, distance_m=1000.0)
    out = summarise([a, b])
    assert out["driving_score"] == pytest.approx((1.0 + 0.3) / 2)
    assert out["collisions_per_km"] == pytest.approx(0.5)
    json.dumps({"summary": out, "episodes": [a.to_dict(), b.to_dict()]})
