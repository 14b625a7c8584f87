"""highway-env's per-tick traffic searches vectorised: the same results, far fewer Python calls.

Two ``Road`` methods run O(N^2) Python work every tick. ``Road.step`` moves every
vehicle, then calls ``handle_collisions`` for every pair, most of which stop at a
bounding-circle test (centres farther apart than the half diagonals plus the first
vehicle's travel in ``dt``) that changes nothing; ``step_road`` does that test for
all pairs in one numpy expression and calls ``handle_collisions`` only for the pairs
that pass, in the original order. ``Road.neighbour_vehicles`` (IDM and MOBIL ask it
for the vehicles ahead and behind, several times per vehicle per tick) projects
every road user on a lane one call at a time; ``neighbour_vehicles`` projects them
all at once on straight lanes. Roads with fewer than ``VECTORISE_MIN`` road users keep
highway-env's loops (cheaper there). ``scenario.make_env`` binds both to each new road.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

# below this many road users highway-env's loops are cheaper than numpy's per-call overhead
VECTORISE_MIN = 8
# a pair this much (m) beyond the bounding-circle test still gets highway-env's exact check,
# so rounding differences between np.hypot and np.linalg.norm cannot drop a contact
SLACK_M = 1e-6


@functools.cache
def _highway_env_types() -> tuple[Any, Any, Any]:
    """(StraightLane, Road, Landmark), imported on first use: highway-env is an extra."""
    from highway_env.road.lane import StraightLane
    from highway_env.road.road import Road
    from highway_env.vehicle.objects import Landmark

    return StraightLane, Road, Landmark


def step_road(road: Any, dt: float) -> None:
    """Drop-in for ``highway_env.road.road.Road.step(dt)``: moves, then collides the near pairs."""
    vehicles, objects = road.vehicles, road.objects
    if len(vehicles) + len(objects) < VECTORISE_MIN:
        _highway_env_types()[1].step(road, dt)
        return
    for vehicle in vehicles:
        vehicle.step(dt)
    things = vehicles + objects
    n = len(vehicles)
    pos = np.array([t.position for t in things], dtype=np.float64)  # (M, 2)
    half_diag = np.array([t.diagonal for t in things], dtype=np.float64) / 2  # (M,)
    speed = np.array([v.speed for v in vehicles], dtype=np.float64)  # (N,)
    gap = np.hypot(pos[:n, None, 0] - pos[None, :, 0], pos[:n, None, 1] - pos[None, :, 1])  # (N, M)
    reach = half_diag[:n, None] + half_diag[None, :] + speed[:, None] * dt + SLACK_M
    near = np.triu(gap <= reach, k=1)  # pairs (i, j > i): vehicles after i, then every object
    for i, j in zip(*np.nonzero(near), strict=True):  # row-major: highway-env's call order
        things[i].handle_collisions(things[j], dt)


def neighbour_vehicles(road: Any, vehicle: Any, lane_index: Any = None) -> tuple[Any, Any]:
    """Drop-in for ``Road.neighbour_vehicles``: the nearest vehicle ahead and behind on a lane.

    On a straight lane (all of highway and merge's main road) every other road user is
    projected in one numpy expression instead of a ``local_coordinates`` call each; the
    choice is highway-env's (on the lane within 1 m, ahead: smallest ``s >= s_ego``, the
    last of equals; behind: largest ``s < s_ego``, the first of equals). Other lanes, and
    roads searching connected lanes, use highway-env's own method.
    """
    straight_lane, road_cls, landmark = _highway_env_types()
    lane_index = lane_index or vehicle.lane_index
    if not lane_index:
        return None, None
    lane = road.network.get_lane(lane_index)
    if (road.neighbour_vehicles_connected_lanes or type(lane) is not straight_lane
            or len(road.vehicles) + len(road.objects) < VECTORISE_MIN):
        return road_cls.neighbour_vehicles(road, vehicle, lane_index)
    s = lane.local_coordinates(vehicle.position)[0]
    others = [v for v in road.vehicles + road.objects if v is not vehicle and not isinstance(v, landmark)]
    if not others:
        return None, None
    delta = np.array([v.position for v in others], dtype=np.float64) - lane.start  # (K, 2)
    s_v, lat_v = delta @ lane.direction, delta @ lane.direction_lateral  # (K,) each
    on = ((np.abs(lat_v) <= lane.width_at(s) / 2 + 1)
          & (-lane.VEHICLE_LENGTH <= s_v) & (s_v < lane.length + lane.VEHICLE_LENGTH))
    front = np.flatnonzero(on & (s_v >= s))
    rear = np.flatnonzero(on & (s_v < s))
    v_front = others[front[s_v[front] == s_v[front].min()][-1]] if len(front) else None
    v_rear = others[rear[s_v[rear] == s_v[rear].max()][0]] if len(rear) else None
    return v_front, v_rear
