"""A fixed-length route ahead of the ego and progress along it.

The route is a polyline of points ``route_step_m`` apart, in CARLA world
coordinates (metres). Progress only moves forward and only to points near the
ego, so driving off and back, or crossing the route elsewhere, cannot skip it.
"""

from __future__ import annotations

import numpy as np

# The ego only advances along the route while this close to it (m): about a lane width.
REACH_M = 4.0
# How many points ahead of the current progress are searched; bounds skipping on loops.
LOOKAHEAD = 10


class Route:
    """Progress tracker over an (N, 2) array of route points in metres."""

    def __init__(self, points_m: np.ndarray, step_m: float) -> None:
        if points_m.ndim != 2 or points_m.shape[1] != 2 or len(points_m) < 2:
            raise ValueError(f"a route needs (N>=2, 2) points, got shape {points_m.shape}")
        self.points_m = points_m.astype(np.float64)
        self.step_m = step_m
        self.index = 0

    @property
    def length_m(self) -> float:
        return (len(self.points_m) - 1) * self.step_m

    @property
    def distance_m(self) -> float:
        """Distance covered along the route (m)."""
        return self.index * self.step_m

    @property
    def completion(self) -> float:
        """Share of the route covered, in [0, 1]."""
        return self.index / (len(self.points_m) - 1)

    def update(self, x_m: float, y_m: float) -> float:
        """Advance to the nearest point within the lookahead, if close enough; returns completion."""
        window = self.points_m[self.index : self.index + LOOKAHEAD + 1]
        dist = np.hypot(window[:, 0] - x_m, window[:, 1] - y_m)
        nearest = int(np.argmin(dist))
        if dist[nearest] <= REACH_M:
            self.index += nearest
        return self.completion


def route_points(start_waypoint: object, length_m: float, step_m: float) -> np.ndarray:
    """Follow ``waypoint.next(step_m)`` from a CARLA waypoint for ``length_m`` metres.

    Takes the first branch at junctions; stops early at a dead end. Returns (N, 2)
    points (x, y) in CARLA world metres.
    """
    points = []
    wp = start_waypoint
    for _ in range(int(length_m / step_m) + 1):
        loc = wp.transform.location  # type: ignore[attr-defined]
        points.append((loc.x, loc.y))
        following = wp.next(step_m)  # type: ignore[attr-defined]
        if not following:
            break
        wp = following[0]
    if len(points) < 2:
        points.append(points[0])
    return np.array(points, dtype=np.float64)
