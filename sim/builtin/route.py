"""The ego's route through highway-env's lane graph and the privileged view along it.

All public results are in our world frame (x east, y north, heading ccw); the
lane graph itself lives in highway-env's frame (y down), converted here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgepilot.sim.builtin.geometry import to_world

PATH_STEP_M = 2.0
PATH_LENGTH_M = 60.0
CORRIDOR_M = 2.0  # a vehicle this close to the path ahead counts as in the way


@dataclass(frozen=True, slots=True)
class Privileged:
    """Ground truth for the scripted driver; lateral > 0 means the ego is left of centre."""

    lateral_offset_m: float
    heading_error_rad: float  # ego heading minus lane heading, ccw positive
    lane_heading_rad: float
    curvature_ahead_1pm: float  # max |curvature| of the path ahead, signed, left positive
    path_xy: np.ndarray  # (K, 2) world points on the lane centre ahead, PATH_STEP_M apart
    lead_gap_m: float  # bumper to bumper; inf when the path ahead is clear
    lead_speed_mps: float
    ego_speed_mps: float
    target_speed_mps: float
    lane_index: tuple = ()  # highway-env's index of the ego's lane
    lanes: tuple[LaneOption, ...] = ()  # the lanes beside it (``privileged_view(lanes=True)``)


def wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


class Route:
    """Follows the lane graph from the ego's start, optionally towards a destination node."""

    def __init__(self, network, start_index: tuple, destination: str = "") -> None:
        self.network = network
        self.edges: list[tuple] = []
        if destination:
            nodes = [start_index[0]] + network.shortest_path(start_index[1], destination)
            self.edges = [(a, b, None) for a, b in zip(nodes[:-1], nodes[1:], strict=False)]

    def length_from(self, lane_index: tuple, s_m: float) -> float:
        """Metres of route left from ``s_m`` on ``lane_index`` to the destination."""
        total, found = 0.0, False
        for a, b, _ in self.edges:
            found = found or (a, b) == lane_index[:2]
            if found:
                total += self.network.get_lane((a, b, lane_index[2] if (a, b) == lane_index[:2] else 0)).length
        return max(total - s_m, 0.0)

    def _route_lane(self, lane_index: tuple, position_hw: np.ndarray) -> tuple:
        """The lane to follow from ``lane_index``: itself, or the route's lane out of its start
        node when it has left the route there. highway-env names the closest lane, and at an
        exit that begins a few metres past the end of the ring lane, that is the ring."""
        if not self.edges or self._remaining(lane_index) is not None:
            return lane_index
        for a, b, _ in self.edges:
            if a == lane_index[0]:
                ids = range(len(self.network.graph[a][b]))
                return (a, b, min(ids, key=lambda i: self.network.get_lane((a, b, i)).distance(position_hw)))
        return lane_index

    def _remaining(self, lane_index: tuple) -> list[tuple] | None:
        for i, (a, b, _) in enumerate(self.edges):
            if (a, b) == lane_index[:2]:
                return list(self.edges[i:])
        return None

    def path(self, lane_index: tuple, position_hw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lane-centre points (K, 2) and headings (K,) ahead, in highway-env's frame.

        Always K = PATH_LENGTH_M / PATH_STEP_M points: where the road ends, the last
        lane is extrapolated.
        """
        pts, heads = self._walk(lane_index, position_hw, PATH_STEP_M, int(PATH_LENGTH_M / PATH_STEP_M),
                                extrapolate=True)
        return np.array(pts), np.array(heads)

    def polyline(self, lane_index: tuple, position_hw: np.ndarray, length_m: float) -> np.ndarray:
        """The route as (N, 2) world points: from the ego's projection on its lane centre,
        along the route for ``length_m`` metres (fewer where the road ends), at most
        PATH_STEP_M apart. Route progress is measured on it (``sim.route``).
        """
        n = max(int(np.ceil(length_m / PATH_STEP_M)), 1)
        lane = self.network.get_lane(lane_index)
        start = lane.position(lane.local_coordinates(position_hw)[0], 0.0)
        pts, _ = self._walk(lane_index, position_hw, length_m / n, n, extrapolate=False)
        return to_world(np.array([start, *pts]))

    def _walk(self, lane_index: tuple, position_hw: np.ndarray, step_m: float, n: int,
              extrapolate: bool) -> tuple[list[np.ndarray], list[float]]:
        """Up to ``n`` lane-centre points ``step_m`` apart ahead of ``position_hw`` and their
        headings (highway-env frame); at the road's end, extrapolate or stop."""
        lane_index = self._route_lane(lane_index, position_hw)
        lane = self.network.get_lane(lane_index)
        s = lane.local_coordinates(position_hw)[0]
        route = self._remaining(lane_index)
        pts, heads = [], []
        for _ in range(n):
            s += step_m
            while s > lane.length:
                nxt = self.network.next_lane(lane_index, route=route, position=lane.position(lane.length, 0))
                if nxt == lane_index:
                    break  # the road ends
                s -= lane.length
                lane_index, lane = nxt, self.network.get_lane(nxt)
            if s > lane.length and not extrapolate:
                pts.append(lane.position(lane.length, 0.0))
                heads.append(lane.heading_at(lane.length))
                break
            pts.append(lane.position(s, 0.0))
            heads.append(lane.heading_at(s))
        return pts, heads


def privileged_view(ego, road, route: Route, target_speed_mps: float, lanes: bool = False) -> Privileged:
    """What a driver with perfect knowledge sees, computed from highway-env's state; with
    ``lanes``, also the lanes beside the ego's and their traffic (``lane_options``)."""
    lane = ego.lane
    s, lat = lane.local_coordinates(ego.position)
    lane_heading = -lane.heading_at(s)
    path_hw, heads_hw = route.path(ego.lane_index, ego.position)
    path = to_world(path_hw)
    heads = -np.unwrap(np.concatenate([[lane.heading_at(s)], heads_hw]))
    curv = np.diff(heads) / PATH_STEP_M
    k = curv[np.argmax(np.abs(curv))] if len(curv) else 0.0
    gap, lead_speed = _lead(ego, road, path_hw)
    return Privileged(
        lateral_offset_m=-float(lat),
        heading_error_rad=wrap(-ego.heading - lane_heading),
        lane_heading_rad=wrap(lane_heading),
        curvature_ahead_1pm=float(k),
        path_xy=path,
        lead_gap_m=gap,
        lead_speed_mps=lead_speed,
        ego_speed_mps=float(ego.speed),
        target_speed_mps=target_speed_mps,
        lane_index=tuple(ego.lane_index),
        lanes=lane_options(ego, road, route) if lanes else (),
    )


def _lead(ego, road, path_hw: np.ndarray) -> tuple[float, float]:
    """Gap (m) to and speed of the nearest vehicle on the path ahead, or (inf, 0)."""
    others = [v for v in road.vehicles if v is not ego] + list(road.objects)
    if not others or not len(path_hw):
        return math.inf, 0.0
    pos = np.array([v.position for v in others])  # (V, 2)
    d = np.linalg.norm(pos[:, None] - path_hw[None], axis=2)  # (V, K)
    near = d.min(axis=1) < CORRIDOR_M + np.array([v.WIDTH / 2 for v in others])
    if not near.any():
        return math.inf, 0.0
    along = (d.argmin(axis=1) + 1) * PATH_STEP_M
    along = np.where(near, along, np.inf)
    i = int(np.argmin(along))
    gap = along[i] - (ego.LENGTH + others[i].LENGTH) / 2
    return float(max(gap, 0.0)), float(getattr(others[i], "speed", 0.0))


@dataclass(frozen=True, slots=True)
class LaneOption:
    """A lane beside the ego's on a straight stretch, for an overtaking driver (world frame).

    Gaps are bumper to bumper along the lane (inf when nothing is there); ``side`` is -1 for
    the lane on the ego's left, +1 for the one on its right.
    """

    lane_index: tuple
    side: int
    path_xy: np.ndarray  # (K, 2) lane-centre points ahead, as Privileged.path_xy
    lead_gap_m: float
    lead_speed_mps: float
    rear_gap_m: float
    rear_speed_mps: float
    lateral_offset_m: float  # the ego's offset from this lane's centre, left positive


LANE_HALF_CATCH_M = 2.5  # a vehicle this close to a lane's centre line counts as in that lane


def lane_options(ego, road, route: Route) -> tuple[LaneOption, ...]:
    """The drivable lanes beside the ego's, with the traffic ahead of and behind the ego in them.

    Only straight lanes of the ego's own road segment that are not ``forbidden`` (highway-env
    marks the merge's ramp so) count, so curved roads (racetrack, roundabout) have none.
    """
    from highway_env.road.lane import StraightLane

    a, b, i = ego.lane_index
    if not isinstance(ego.lane, StraightLane):
        return ()
    lanes = road.network.graph[a][b]
    others = [v for v in road.vehicles if v is not ego] + list(road.objects)
    options = []
    for j in (i - 1, i + 1):
        if not 0 <= j < len(lanes):
            continue
        lane = lanes[j]
        if not isinstance(lane, StraightLane) or getattr(lane, "forbidden", False):
            continue
        s_ego, lat_ego = lane.local_coordinates(ego.position)
        lead = (math.inf, 0.0)
        rear = (math.inf, 0.0)
        for v in others:
            s, lat = lane.local_coordinates(v.position)
            if abs(lat) > LANE_HALF_CATCH_M:
                continue
            gap = abs(s - s_ego) - (ego.LENGTH + v.LENGTH) / 2
            speed = float(getattr(v, "speed", 0.0))
            if s >= s_ego and gap < lead[0]:
                lead = (max(gap, 0.0), speed)
            elif s < s_ego and gap < rear[0]:
                rear = (max(gap, 0.0), speed)
        path_hw, _ = route.path((a, b, j), ego.position)
        # highway-env's frame has y down: lane index i - 1 lies on the ego's left
        options.append(LaneOption(lane_index=(a, b, j), side=-1 if j < i else 1, path_xy=to_world(path_hw),
                                  lead_gap_m=float(lead[0]), lead_speed_mps=lead[1],
                                  rear_gap_m=float(rear[0]), rear_speed_mps=rear[1],
                                  lateral_offset_m=-float(lat_ego)))
    return tuple(options)
