"""Route completion, one definition for every backend.

A route is a polyline of (x, y) points in metres, in any planar frame (the
builtin world's or CARLA's). Progress is the arc length, from the first point,
of the ego's projection onto the polyline. It only moves forward, only while
the ego is within ``reach_m`` of the route, and only to projections within
``lookahead_m`` ahead of the progress so far: driving off the route, driving
back, or crossing another part of a looping route cannot skip or undo it.
Route completion is progress over the polyline's length, in [0, 1].
"""

from __future__ import annotations

import numpy as np

# The ego advances along the route while this close to its centre line (m): two lanes
# (3.5-4 m each) either side of the route lane plus slack, so lane changes still count.
REACH_M = 10.0
# How far ahead of the progress so far a projection may land (m). One 20 Hz tick covers
# at most ~2 m; a farther jump is a teleport or a crossing, not progress.
LOOKAHEAD_M = 20.0


class RouteProgress:
    """Progress of the ego along an (N, 2) polyline in metres (N >= 2, length > 0).

    ``update(x_m, y_m)`` once per tick; ``progress_m``, ``length_m`` and
    ``completion`` read the result.
    """

    def __init__(
        self, points_m: np.ndarray, reach_m: float = REACH_M, lookahead_m: float = LOOKAHEAD_M
    ) -> None:
        points = np.asarray(points_m, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2:
            raise ValueError(f"a route needs (N>=2, 2) points in metres, got shape {points.shape}")
        seg = np.diff(points, axis=0)  # (N-1, 2)
        seg_len = np.hypot(seg[:, 0], seg[:, 1])  # (N-1,)
        keep = seg_len > 1e-9  # repeated points would make zero-length segments
        if not keep.any():
            raise ValueError("a route needs a positive length: all its points coincide")
        self.points_m = points
        self._start = points[:-1][keep]  # (S, 2) segment starts
        self._dir = seg[keep] / seg_len[keep, None]  # (S, 2) unit directions
        self._len = seg_len[keep]  # (S,)
        self._s0 = np.concatenate([[0.0], np.cumsum(self._len)[:-1]])  # (S,) arc length at starts
        self.length_m = float(self._len.sum())
        self.reach_m, self.lookahead_m = reach_m, lookahead_m
        self.progress_m = 0.0

    @property
    def completion(self) -> float:
        """Share of the route covered, in [0, 1]."""
        return min(self.progress_m / self.length_m, 1.0)

    def update(self, x_m: float, y_m: float) -> float:
        """Advance to the ego's projection when it is near the route and ahead; returns completion."""
        window = (self._s0 + self._len >= self.progress_m) & (
            self._s0 <= self.progress_m + self.lookahead_m
        )
        idx = np.flatnonzero(window)
        rel = np.array([x_m, y_m]) - self._start[idx]  # (K, 2)
        along = np.clip(np.einsum("kd,kd->k", rel, self._dir[idx]), 0.0, self._len[idx])  # (K,)
        foot = self._start[idx] + along[:, None] * self._dir[idx]
        dist = np.hypot(x_m - foot[:, 0], y_m - foot[:, 1])
        best = int(np.argmin(dist))
        s = float(self._s0[idx[best]] + along[best])
        if dist[best] <= self.reach_m and s <= self.progress_m + self.lookahead_m:
            self.progress_m = max(self.progress_m, s)
        return self.completion
