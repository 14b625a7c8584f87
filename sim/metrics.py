"""CARLA Leaderboard-style driving metrics from a sequence of observations.

Driving score = route completion x infraction penalty, where the penalty is the
product of a coefficient per infraction (vehicle collision 0.60, static 0.65,
pedestrian 0.50, red light 0.70). A collision counts once per contact: the
rising edge of ``events.collision``, however many ticks the contact lasts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from edgepilot.sim.types import Observation

PENALTY = {"vehicle": 0.60, "static": 0.65, "pedestrian": 0.50, "red_light": 0.70}


@dataclass(frozen=True, slots=True)
class EpisodeScore:
    """One episode; distances in metres, shares in 0..1."""

    route_completion: float
    infraction_penalty: float
    driving_score: float
    collisions: dict[str, int]
    distance_m: float
    collisions_per_km: float
    off_road_share: float
    lane_invasions: int
    steps: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EpisodeMeter:
    """Feed every observation of an episode to ``update``, then call ``score``."""

    collisions: dict[str, int] = field(default_factory=lambda: {k: 0 for k in PENALTY})
    steps: int = 0
    off_road_steps: int = 0
    lane_invasions: int = 0
    route_completion: float = 0.0
    distance_m: float = 0.0
    _in_contact: bool = False

    def update(self, obs: Observation) -> None:
        ev = obs.events
        if ev.collision and not self._in_contact:
            kind = ev.collision_with if ev.collision_with in PENALTY else "static"
            self.collisions[kind] += 1
        self._in_contact = ev.collision
        self.steps += 1
        self.off_road_steps += int(ev.off_road)
        self.lane_invasions += int(ev.lane_invasion)
        self.route_completion = float(obs.info.get("route_completion", self.route_completion))
        self.distance_m = float(obs.info.get("distance_m", self.distance_m))

    def add_red_light(self) -> None:
        """Backends with traffic lights report running one here."""
        self.collisions["red_light"] += 1

    def score(self) -> EpisodeScore:
        penalty = math.prod(PENALTY[k] ** n for k, n in self.collisions.items())
        n_coll = sum(n for k, n in self.collisions.items() if k != "red_light")
        km = self.distance_m / 1000.0
        return EpisodeScore(
            route_completion=self.route_completion,
            infraction_penalty=penalty,
            driving_score=self.route_completion * penalty,
            collisions=dict(self.collisions),
            distance_m=self.distance_m,
            collisions_per_km=n_coll / km if km > 0 else 0.0,
            off_road_share=self.off_road_steps / max(self.steps, 1),
            lane_invasions=self.lane_invasions,
            steps=self.steps,
        )


def summarise(scores: list[EpisodeScore]) -> dict:
    """Means over episodes (JSON-serialisable); collisions per km over the total distance."""
    if not scores:
        return {"episodes": 0}
    n = len(scores)
    km = sum(s.distance_m for s in scores) / 1000.0
    coll = sum(sum(v for k, v in s.collisions.items() if k != "red_light") for s in scores)
    return {
        "episodes": n,
        "driving_score": sum(s.driving_score for s in scores) / n,
        "route_completion": sum(s.route_completion for s in scores) / n,
        "infraction_penalty": sum(s.infraction_penalty for s in scores) / n,
        "collisions_per_km": coll / km if km > 0 else 0.0,
        "off_road_share": sum(s.off_road_share for s in scores) / n,
        "distance_m": km * 1000.0,
    }
