"""Static world geometry built once per episode from highway-env's road network.

Everything returned is in our right-handed world frame (x east, y north, z up):
highway-env draws with y pointing down, so its (x, y) is our (x, -y) and its
heading is our -heading. Ground surfaces are flat quads; props are oriented boxes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgepilot.sim.builtin.appearance import Appearance
from edgepilot.sim.builtin.scenario import SceneryConfig
from edgepilot.sim.tags import TAG_IDS

STRAIGHT_STEP_M = 20.0
CURVED_STEP_M = 4.0
DASH_M, DASH_PERIOD_M, LINE_W_M = 3.0, 9.0, 0.15
STRIPED, CONTINUOUS = 1, 2  # highway_env.road.lane.LineType; 3 (CONTINUOUS_LINE) draws like 2


def to_world(xy_hw: np.ndarray) -> np.ndarray:
    """highway-env (x, y-down) positions (..., 2) -> world (x, y-up)."""
    return np.asarray(xy_hw, dtype=np.float64) * np.array([1.0, -1.0])


@dataclass(frozen=True, slots=True)
class GroundLayer:
    """Flat quads on z = 0 sharing one tag; ``rgb`` None means a textured surface (labels only)."""

    tag: int
    polys: np.ndarray  # (Q, 4, 2) world xy, convex, in drawing order
    rgb: np.ndarray | None  # (Q, 3) base colours
    centres: np.ndarray  # (Q, 2)
    radii: np.ndarray  # (Q,)

    @classmethod
    def build(cls, tag: int, polys: list[np.ndarray], rgb: np.ndarray | None) -> GroundLayer:
        """``polys``: quads (4, 2) or blocks of quads (Q, 4, 2), concatenated in order."""
        blocks = [np.asarray(p, dtype=np.float64).reshape(-1, 4, 2) for p in polys]
        arr = np.concatenate(blocks) if blocks else np.zeros((0, 4, 2))
        centres = arr.mean(axis=1)
        radii = np.linalg.norm(arr - centres[:, None], axis=2).max(axis=1) if len(arr) else np.zeros(0)
        colours = None if rgb is None else np.broadcast_to(rgb, (len(arr), 3)).astype(np.float64)
        return cls(tag, arr, colours, centres, radii)


@dataclass(frozen=True, slots=True)
class BoxSet:
    """N oriented boxes standing on the ground (props or vehicles)."""

    centre: np.ndarray  # (N, 2) world xy
    yaw: np.ndarray  # (N,) rad ccw from east
    half_len: np.ndarray  # (N,) along yaw
    half_wid: np.ndarray  # (N,)
    z0: np.ndarray  # (N,) bottom height
    z1: np.ndarray  # (N,) top height
    tag: np.ndarray  # (N,) CARLA tag ids
    rgb: np.ndarray  # (N, 3) base colours
    actor_id: np.ndarray  # (N,) -1 for props

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> BoxSet:
        """rows of (x, y, yaw, half_len, half_wid, z0, z1, tag, rgb, actor_id)."""
        if not rows:
            z = np.zeros(0)
            return cls(np.zeros((0, 2)), z, z, z, z, z, z.astype(int), np.zeros((0, 3)), z.astype(int))
        cols = list(zip(*rows, strict=True))
        yaw, half_len, half_wid, z0, z1 = (np.array(c, dtype=np.float64) for c in cols[2:7])
        return cls(np.stack([cols[0], cols[1]], axis=1).astype(np.float64), yaw, half_len, half_wid,
                   z0, z1, np.array(cols[7], dtype=int), np.array(cols[8], dtype=np.float64),
                   np.array(cols[9], dtype=int))

    def __len__(self) -> int:
        return len(self.yaw)


@dataclass(frozen=True, slots=True)
class StaticWorld:
    road: GroundLayer
    sidewalks: GroundLayer
    lines: GroundLayer
    props: BoxSet


def _lane_range(lane, origin_hw: np.ndarray, extent_m: float) -> tuple[float, float, float]:
    """The longitudinal span of ``lane`` worth building and its sampling step."""
    straight = type(lane).__name__ == "StraightLane"
    if not straight:
        return 0.0, float(lane.length), CURVED_STEP_M
    s0 = lane.local_coordinates(origin_hw)[0]
    return max(0.0, s0 - extent_m * 0.2), min(float(lane.length), s0 + extent_m), STRAIGHT_STEP_M


def _samples(lo: float, hi: float, step: float) -> np.ndarray:
    n = max(int(np.ceil((hi - lo) / step)), 1)
    return np.linspace(lo, hi, n + 1)


def _positions(lane, s: np.ndarray, lateral: float) -> np.ndarray:
    """``lane.position(s_i, lateral)`` for every s_i: (N, 2) in highway-env's frame.

    A straight lane is one numpy expression doing highway-env's own arithmetic in its
    order (the same numbers, without a Python call per point); other lanes call it per point.
    """
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    if type(lane).__name__ == "StraightLane":
        return lane.start + s[:, None] * lane.direction + lateral * lane.direction_lateral
    return np.array([lane.position(si, lateral) for si in s]).reshape(-1, 2)


def _strip(lane, s: np.ndarray, lat0: float, lat1: float) -> np.ndarray:
    """(len(s) - 1, 4, 2) quads between lateral offsets lat0 and lat1 (highway-env lateral)."""
    a, b = to_world(_positions(lane, s, lat0)), to_world(_positions(lane, s, lat1))
    return np.stack([a[:-1], a[1:], b[1:], b[:-1]], axis=1)


def _lane_line(lane, side: int, kind: int, lo: float, hi: float, step: float) -> np.ndarray:
    """(Q, 4, 2) quads of one lane line: one per dash, or a strip along the samples."""
    lat = (-1 if side == 0 else 1) * lane.width_at(lo) / 2
    lat0, lat1 = lat - LINE_W_M / 2, lat + LINE_W_M / 2
    if kind == STRIPED:
        starts = np.arange(np.ceil(lo / DASH_PERIOD_M) * DASH_PERIOD_M, hi - DASH_M, DASH_PERIOD_M)
        ends = starts + DASH_M
        corners = [_positions(lane, starts, lat0), _positions(lane, ends, lat0),
                   _positions(lane, ends, lat1), _positions(lane, starts, lat1)]
        return to_world(np.stack(corners, axis=1))
    return _strip(lane, _samples(lo, hi, step), lat0, lat1)


class RoadMask:
    """Is a world point on (or near) any lane? Lanes sampled as discs every metre."""

    def __init__(self, lanes: list, origin_hw: np.ndarray, extent_m: float) -> None:
        pts, radii = [np.zeros((0, 2))], [np.zeros(0)]
        for lane in lanes:
            lo, hi, _ = _lane_range(lane, origin_hw, extent_m)
            s = np.arange(lo, hi + 1.0, 1.0)
            pts.append(_positions(lane, s, 0.0))
            radii.append(np.array([lane.width_at(si) / 2 for si in s]) if type(lane).__name__ != "StraightLane"
                         else np.full(len(s), lane.width_at(lo) / 2))  # a straight lane's width is constant
        points, radii_m = to_world(np.concatenate(pts)), np.concatenate(radii)
        # sorted along the axis the road spreads most, so the discs near a point are one slice
        self._axis = int(np.argmax(np.ptp(points, axis=0))) if len(points) else 0
        order = np.argsort(points[:, self._axis], kind="stable")
        self.points, self.radii = points[order], radii_m[order]
        self._keys = self.points[:, self._axis]
        self._max_radius = float(self.radii.max()) if len(self.radii) else 0.0

    def clearance(self, xy: np.ndarray, cap_m: float = 2.0) -> np.ndarray:
        """(N, 2) world points -> (N,) distance to the nearest lane edge (m, negative inside),
        capped at ``cap_m``: exact below it, ``cap_m`` where every edge is farther.

        Only discs within ``cap_m + max radius`` along the sorted axis can be nearer than the
        cap, so each point is compared with one slice of the sorted discs, not all of them.
        """
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        out = np.full(len(xy), cap_m)
        if not len(self.points) or not len(xy):
            return out
        reach = cap_m + self._max_radius
        lo = np.searchsorted(self._keys, xy[:, self._axis] - reach, side="left")
        hi = np.searchsorted(self._keys, xy[:, self._axis] + reach, side="right")
        for chunk in np.array_split(np.arange(len(xy)), max(int((hi - lo).sum() // 1_000_000), 1)):
            counts = hi[chunk] - lo[chunk]
            has = chunk[counts > 0]
            counts = counts[counts > 0]
            if not len(has):
                continue
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])  # offset of each slice
            query = np.repeat(has, counts)  # (K,) query per candidate
            disc = np.arange(int(counts.sum())) - np.repeat(starts - lo[has], counts)  # (K,)
            d = np.hypot(*(xy[query] - self.points[disc]).T) - self.radii[disc]
            out[has] = np.minimum(np.minimum.reduceat(d, starts), cap_m)
        return out


def _edges(lanes: list, mask: RoadMask, origin_hw: np.ndarray, extent_m: float) -> Iterator:
    """(lane, side, lo, hi, step) for every lane side with no road beyond it."""
    for lane in lanes:
        lo, hi, step = _lane_range(lane, origin_hw, extent_m)
        mid = (lo + hi) / 2
        for side in (0, 1):
            sign = -1 if side == 0 else 1
            probe = to_world(np.array([lane.position(mid, sign * (lane.width_at(mid) / 2 + 1.5))]))
            if mask.clearance(probe)[0] > 0.5:
                yield lane, side, lo, hi, step


def build_static_world(road, scenery: SceneryConfig, look: Appearance, origin_hw: np.ndarray,
                       rng: np.random.Generator) -> StaticWorld:
    """Road surface, lane lines, sidewalks and props for one episode."""
    lanes = road.network.lanes_list()
    mask = RoadMask(lanes, origin_hw, scenery.extent_m)
    road_q, line_q, walk_q, props = [], [], [], []
    for lane in lanes:
        lo, hi, step = _lane_range(lane, origin_hw, scenery.extent_m)
        half = lane.width_at(lo) / 2 + 0.05  # a sliver of overlap hides seams between lanes
        road_q.append(_strip(lane, _samples(lo, hi, step), -half, half))
        for side, kind in enumerate(lane.line_types):
            if kind in (STRIPED, CONTINUOUS, CONTINUOUS + 1):
                line_q.append(_lane_line(lane, side, STRIPED if kind == STRIPED else CONTINUOUS, lo, hi, step))
    for lane, side, lo, hi, step in _edges(lanes, mask, origin_hw, scenery.extent_m):
        sign = -1 if side == 0 else 1
        half = lane.width_at(lo) / 2
        if scenery.sidewalks:
            walk_q.append(_strip(lane, _samples(lo, hi, step), sign * (half + 0.3), sign * (half + 3.0)))
        props += _edge_props(lane, sign, half, lo, hi, scenery, look, rng)
    boxes = BoxSet.from_rows(props)
    keep = _clear_of_road(boxes, mask)
    return StaticWorld(
        road=GroundLayer.build(TAG_IDS["Roads"], road_q, None),
        sidewalks=GroundLayer.build(TAG_IDS["SideWalks"], walk_q, None),  # textured by the renderer
        lines=GroundLayer.build(TAG_IDS["RoadLine"], line_q, np.array(look.line_rgb)),
        props=BoxSet(*(getattr(boxes, f)[keep] for f in BoxSet.__slots__)),
    )


def _clear_of_road(boxes: BoxSet, mask: RoadMask) -> np.ndarray:
    """(N,) bool: the footprint's centre and corners keep 0.3 m from every lane."""
    if not len(boxes):
        return np.zeros(0, dtype=bool)
    c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
    ok = mask.clearance(boxes.centre) > 0.3
    for sl, sw in ((1, 1), (1, -1), (-1, -1), (-1, 1)):
        lx, ly = sl * boxes.half_len, sw * boxes.half_wid
        corner = boxes.centre + np.stack([c * lx - s * ly, s * lx + c * ly], axis=1)
        ok &= mask.clearance(corner) > 0.3
    return ok


def _edge_props(lane, sign: int, half: float, lo: float, hi: float, sc: SceneryConfig,
                look: Appearance, rng: np.random.Generator) -> list[tuple]:
    """Guard rails, poles with signs, trees and buildings beside one road edge."""
    rows: list[tuple] = []

    def put(s: float, lateral: float, hl: float, hw: float, z0: float, z1: float, tag: str,
            rgb: np.ndarray) -> None:
        x, y = to_world(lane.position(s, sign * lateral))
        yaw = -lane.heading_at(s)
        rows.append((x, y, yaw, hl, hw, z0, z1, TAG_IDS[tag], rgb, -1))

    if sc.guard_rails:
        rails = np.arange(lo, hi - 4.0, 8.0) + 4.0
        if type(lane).__name__ == "StraightLane":  # in bulk: the same numbers as put's, one expression
            xy, yaw = to_world(_positions(lane, rails, sign * (half + 1.0))), -lane.heading_at(lo)
            rgb = np.array([185.0, 185, 190])
            rows += [(x, y, yaw, 4.05, 0.12, 0.35, 0.85, TAG_IDS["GuardRail"], rgb, -1) for x, y in xy.tolist()]
        else:
            for s in rails:
                put(s, half + 1.0, 4.05, 0.12, 0.35, 0.85, "GuardRail", np.array([185.0, 185, 190]))
    for i, s in enumerate(np.arange(lo + rng.uniform(0, sc.pole_spacing_m), hi, sc.pole_spacing_m)):
        put(s, half + 2.2, 0.12, 0.12, 0.0, 7.0, "Pole", np.array([140.0, 140, 145]))
        if i % 3 == 1:
            put(s, half + 2.2, 0.06, 0.7, 2.4, 3.3, "TrafficSign", np.array([30.0, 90, 180]))
    for s in np.arange(lo, hi, sc.tree_spacing_m) + rng.uniform(0, sc.tree_spacing_m, 1):
        size = rng.uniform(1.0, 2.2)
        put(s, half + rng.uniform(5.0, 11.0), size, size, 0.0, rng.uniform(3.0, 8.0), "Vegetation",
            np.array(look.tree_rgb) * rng.uniform(0.7, 1.3))
    for s in np.arange(lo, hi, sc.building_spacing_m) + rng.uniform(0, sc.building_spacing_m, 1):
        hl, hw = rng.uniform(4.0, 9.0), rng.uniform(4.0, 10.0)
        put(s, half + 14.0 + hw + rng.uniform(0, 12), hl, hw, 0.0, rng.uniform(6.0, 28.0), "Building",
            np.array(look.building_rgb) * rng.uniform(0.6, 1.3))
    return rows
