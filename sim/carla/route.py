"""The CARLA route: a fixed-length polyline that follows the lane ahead of a spawn point.

Progress along it is measured by ``sim.route.RouteProgress``, the definition
every backend shares.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def route_points(start_waypoint: Any, length_m: float, step_m: float) -> np.ndarray:
    """Follow ``waypoint.next(step_m)`` from a CARLA waypoint for up to ``length_m`` metres.

    Takes the first branch at junctions and stops early at a dead end (``next``
    returns ``[]``). Returns (N, 2) points (x, y) in CARLA world metres, N >= 1;
    N == 1 means the start is itself a dead end.
    """
    points = []
    wp = start_waypoint
    for _ in range(int(length_m / step_m) + 1):
        loc = wp.transform.location
        points.append((loc.x, loc.y))
        following = wp.next(step_m)
        if not following:
            break
        wp = following[0]
    return np.array(points, dtype=np.float64).reshape(-1, 2)
