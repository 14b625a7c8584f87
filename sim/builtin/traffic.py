"""highway-env's per-tick traffic searches vectorised: the same results, far fewer Python calls.

Two ``Road`` methods run O(N^2) Python work every tick. ``Road.step`` moves every
vehicle, then calls ``handle_collisions`` for every pair, most of which stop at a
bounding-circle test (centres farther apart than the half diagonals plus the first
vehicle's travel in ``dt``) that changes nothing; ``step_road`` does that test for
all pairs in one numpy expression and calls ``handle_collisions`` only for the pairs
that pass, in the original order. ``Road.neighbour_vehicles`` (IDM and MOBIL ask it
for the vehicles ahead and behind, several times per vehicle per tick) projects
every road user on a lane one call at a time; ``neighbour_vehicles`` projects them
all at once on straight lanes; while ``act_road`` runs (every vehicle deciding, nobody
moving) the road users' positions are gathered once for all those searches instead of
once per search, and each lane's projection, sorted along it, is kept for the next
search on that lane (a bisection). Roads with fewer than ``VECTORISE_MIN`` road users keep highway-env's
loops (cheaper there). ``scenario.make_env`` binds the three to each new road.

``closest_lane_index`` replaces ``RoadNetwork.get_closest_lane_index`` on networks of
``PRUNE_MIN_LANES`` lanes or more; every vehicle calls it after every move, and it
measures its distance to every lane of the network (32 in the roundabout): it measures, with highway-env's own function, only
the lanes that could be the closest, the others ruled out by a lower bound (below); on
smaller networks of straight lanes only (highway's three) ``closest_straight_lane_index``
measures each lane in plain floats instead of highway-env's numpy calls.
The traffic's vehicles themselves are ``sim.builtin.idm.FastIDMVehicle``.
"""

from __future__ import annotations

import bisect
import functools
import math
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


def act_road(road: Any) -> None:
    """Drop-in for ``Road.act()``: every vehicle decides, with positions gathered once.

    Nothing moves while vehicles decide (``Vehicle.act`` only stores an action, MOBIL
    only a target lane), so one snapshot of the road users serves every
    ``neighbour_vehicles`` search of this call; it is dropped on the way out, so a
    search at any other time (a test placing vehicles, the privileged view) reads the
    road afresh.
    """
    road._neighbour_snapshot = _snapshot(road) if len(road.vehicles) + len(road.objects) >= VECTORISE_MIN else None
    try:
        for vehicle in road.vehicles:
            vehicle.act()
    finally:
        road._neighbour_snapshot = None


def _snapshot(road: Any) -> tuple[list[Any], np.ndarray, np.ndarray, dict]:
    """(road users, their (M, 2) positions, (M,) not-a-Landmark mask, per-lane cache of
    ``_lane_order``), vehicles then objects."""
    landmark = _highway_env_types()[2]
    things = road.vehicles + road.objects
    positions = np.array([t.position for t in things], dtype=np.float64)
    return things, positions, np.array([not isinstance(t, landmark) for t in things]), {}


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
    projected in one numpy expression instead of a ``local_coordinates`` call each, and
    while ``act_road`` runs that projection is kept per lane (sorted along it) for every
    later search on the lane, so a search is a bisection; the choice is highway-env's (on
    the lane within 1 m, ahead: smallest ``s >= s_ego``, the last of equals; behind:
    largest ``s < s_ego``, the first of equals). Other lanes, and roads searching
    connected lanes, use highway-env's own method.
    """
    straight_lane, road_cls, _ = _highway_env_types()
    lane_index = lane_index or vehicle.lane_index
    if not lane_index:
        return None, None
    lane = road.network.get_lane(lane_index)
    if (road.neighbour_vehicles_connected_lanes or type(lane) is not straight_lane
            or len(road.vehicles) + len(road.objects) < VECTORISE_MIN):
        return road_cls.neighbour_vehicles(road, vehicle, lane_index)
    s = lane.local_coordinates(vehicle.position)[0]
    snapshot = getattr(road, "_neighbour_snapshot", None) or _snapshot(road)
    things = snapshot[0]
    keys, ids = _lane_order(snapshot, lane, lane_index)
    try:  # the searching vehicle is never its own neighbour
        me = things.index(vehicle)
    except ValueError:
        me = -1  # a vehicle not (or no longer) on the road searches too
    n, p = len(keys), bisect.bisect_left(keys, s)
    # equal keys sit in index order and the searcher is at most one of them, so the last
    # (first) of a run of equals is its end (start), or the one beside it if that is the searcher
    front = rear = None
    j = p + (p < n and ids[p] == me)  # ahead: the first key >= s that is not the searcher
    if j < n:
        end = bisect.bisect_right(keys, keys[j]) - 1
        front = ids[end] if ids[end] != me else ids[end - 1]
    j = p - 1 - (p > 0 and ids[p - 1] == me)  # behind: the last key < s that is not the searcher
    if j >= 0:
        start = bisect.bisect_left(keys, keys[j])
        rear = ids[start] if ids[start] != me else ids[start + 1]
    return (None if front is None else things[front]), (None if rear is None else things[rear])


def _lane_order(snapshot: Any, lane: Any, lane_index: Any) -> tuple[list[float], list[int]]:
    """(s along the straight ``lane``, road-user index) of the users on it within 1 m, sorted by
    s and then index; kept in the snapshot's cache, which lives as long as the snapshot."""
    things, positions, candidate, cache = snapshot
    hit = cache.get(lane_index)
    if hit is None:
        delta = positions - lane.start  # (M, 2)
        s_v, lat_v = delta @ lane.direction, delta @ lane.direction_lateral  # (M,) each
        on = np.flatnonzero(candidate & (np.abs(lat_v) <= lane.width_at(0.0) / 2 + 1)
                            & (-lane.VEHICLE_LENGTH <= s_v) & (s_v < lane.length + lane.VEHICLE_LENGTH))
        on = on[np.argsort(s_v[on], kind="stable")]  # by s, equals in index order
        hit = cache[lane_index] = (s_v[on].tolist(), on.tolist())
    return hit


# below this many lanes highway-env's loop over them is cheaper than the bounds' numpy calls
# (3 lanes, highway: 14 vs 26 us a call; 9, merge: 52 vs 32 us; 32, roundabout: 255 vs 22 us)
PRUNE_MIN_LANES = 6
# a lower bound this much (m) below the exact one, so float rounding cannot rule out the closest lane
BOUND_SLACK_M = 1e-6
# centreline samples per lane for its bounding circle
BOUND_SAMPLES = 65


def closest_lane_index(network: Any, position: Any, heading: float | None = None) -> Any:
    """Drop-in for ``RoadNetwork.get_closest_lane_index``: the same lane, fewer distances measured.

    highway-env's distance from a position to a lane is ``|r| + (s beyond the lane's
    ends) [+ heading difference]`` in the lane's own coordinates (s along, r across).
    On straight and circular lanes that is at least the Euclidean distance to some
    point of the centreline (|r| is the distance to the centreline point at s; going on
    along the lane to its end point adds no more than the excess of s), so at least
    ``|position - c| - R`` for a circle (c, R) holding the centreline. On a sine lane
    r is measured from the sine at s, whose slope is at most A * w (amplitude times
    pulsation), so the bound shrinks by 1 / (1 + A * w); any other lane kind has bound
    0, always measured. The lane with the smallest bound is measured first; every
    lane whose bound is not above that distance is then measured with highway-env's
    ``distance_with_heading``, and the first of the smallest distances in the
    network's lane order wins, as in highway-env's ``argmin``. The bounds are
    computed on the first call: highway-env builds a road network once, at reset.
    """
    bounds = getattr(network, "_lane_bounds", None)
    if bounds is None:
        bounds = network._lane_bounds = _lane_bounds(network)
    indexes, lanes, centres, radii, shrink = bounds
    gap = np.hypot(centres[:, 0] - position[0], centres[:, 1] - position[1]) - radii
    lower = np.maximum(gap, 0.0) * shrink - BOUND_SLACK_M  # (L,)
    first = int(np.argmin(lower))
    best = lanes[first].distance_with_heading(position, heading)
    best_k = first
    for k in np.flatnonzero(lower <= best).tolist():
        if k == first:
            continue
        d = lanes[k].distance_with_heading(position, heading)
        if d < best or (d == best and k < best_k):
            best, best_k = d, k
    return indexes[best_k]


# two lanes' float distances this close (m) are re-measured by highway-env's own search, so the
# rounding of plain float arithmetic (vs numpy's dot) can never pick another lane than it would
TIE_SLACK_M = 1e-6


def closest_straight_lane_index(network: Any, position: Any, heading: float | None = None) -> Any:
    """Drop-in for ``RoadNetwork.get_closest_lane_index`` on a small network of straight lanes
    (highway's three): each lane's distance in plain float arithmetic instead of highway-env's
    numpy calls on two-element arrays (timeit on one highway vehicle, Zen 3: 4.6 us a call
    against highway-env's 19.7 us).

    The formula is highway-env's (``|r| + (s beyond the ends) + |wrapped heading difference|``);
    float rounding may differ from numpy's in the last bits, so when the two smallest distances
    are within ``TIE_SLACK_M`` highway-env's own search decides: the lane is always its lane.
    """
    lanes = getattr(network, "_straight_lanes", None)
    if lanes is None:
        lanes = network._straight_lanes = [
            (idx, float(ln.start[0]), float(ln.start[1]), float(ln.direction[0]), float(ln.direction[1]),
             float(ln.direction_lateral[0]), float(ln.direction_lateral[1]), float(ln.length), float(ln.heading))
            for idx, ln in network.lanes_dict().items()]
    px, py = float(position[0]), float(position[1])
    best = second = math.inf
    best_idx = None
    for idx, sx, sy, dx, dy, lx, ly, length, lane_heading in lanes:
        ex, ey = px - sx, py - sy
        s = ex * dx + ey * dy
        d = abs(ex * lx + ey * ly) + max(s - length, 0.0) + max(-s, 0.0)
        if heading is not None:
            d += abs((heading - lane_heading + math.pi) % (2 * math.pi) - math.pi)
        if d < best:
            best, second, best_idx = d, best, idx
        elif d < second:
            second = d
    if second - best <= TIE_SLACK_M or not math.isfinite(best):
        return type(network).get_closest_lane_index(network, position, heading)
    return best_idx


def all_straight(network: Any) -> bool:
    """Is every lane of ``network`` a finite ``StraightLane`` (``closest_straight_lane_index`` applies)?"""
    straight = _highway_env_types()[0]
    return all(type(lane) is straight and math.isfinite(lane.length) for lane in network.lanes_list())


def _lane_bounds(network: Any) -> tuple[list[Any], list[Any], np.ndarray, np.ndarray, np.ndarray]:
    """(lane indexes, lanes, (L, 2) centres, (L,) radii, (L,) bound factors), in highway-env's order.

    A centre and radius hold the centreline: the radius reaches the farthest of
    ``BOUND_SAMPLES`` points along it plus half the longest step between two of them
    (a centreline point is within half a step, along the curve, of a sample).
    """
    straight, _, _ = _highway_env_types()
    from highway_env.road.lane import CircularLane, SineLane

    indexes, lanes, centres, radii, shrink = [], [], [], [], []
    for _from, to_dict in network.graph.items():
        for _to, lane_list in to_dict.items():
            for _id, lane in enumerate(lane_list):
                indexes.append((_from, _to, _id))
                lanes.append(lane)
                kind = type(lane)
                if kind not in (straight, CircularLane, SineLane) or not math.isfinite(lane.length):
                    centres.append((0.0, 0.0))
                    radii.append(math.inf)  # never ruled out
                    shrink.append(1.0)
                    continue
                pts = np.array([lane.position(s, 0.0) for s in np.linspace(0.0, lane.length, BOUND_SAMPLES)])
                centre = (pts.min(axis=0) + pts.max(axis=0)) / 2
                step = float(np.max(np.hypot(*np.diff(pts, axis=0).T))) if len(pts) > 1 else 0.0
                slope = abs(lane.amplitude * lane.pulsation) if kind is SineLane else 0.0
                # a step along the curve: the chord, or up to the arc/sine length between samples
                along = step * (math.pi / 2 if kind is CircularLane else 1.0 + slope)
                centres.append(tuple(centre))
                radii.append(float(np.max(np.hypot(*(pts - centre).T))) + along / 2)
                shrink.append(1.0 / (1.0 + slope))
    return indexes, lanes, np.array(centres, np.float64), np.array(radii, np.float64), np.array(shrink)
