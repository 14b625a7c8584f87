"""A pinhole camera on the ego: world points to pixels, with near-plane clipping.

World frame: x east, y north, z up (metres). Camera frame: x right, y down,
z forward along the optical axis (OpenCV convention). The camera has no roll;
positive pitch looks down.
"""

from __future__ import annotations

import math

import numpy as np

from edgepilot.sim.types import CameraConfig

NEAR_M = 0.2


class PinholeCamera:
    """Intrinsics from ``CameraConfig``; ``set_pose`` once per frame, then ``to_camera``."""

    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        self.width, self.height = config.width, config.height
        self.fx = self.fy = (config.width / 2.0) / math.tan(math.radians(config.fov_deg) / 2.0)
        self.cx, self.cy = config.width / 2.0, config.height / 2.0
        self.pitch = math.radians(config.pitch_deg)
        self._rot = np.eye(3)
        self.position = np.zeros(3)

    def horizon_row(self) -> float:
        """Image row (may lie outside the image) where the flat ground meets the sky."""
        return self.cy - self.fy * math.tan(self.pitch)

    def ground_depth_per_row(self) -> np.ndarray:
        """(H,) distance along the ground (m) seen by each image row; inf above the horizon."""
        rows = np.arange(self.height) + 0.5
        angle = self.pitch + np.arctan((rows - self.cy) / self.fy)  # below the horizontal
        with np.errstate(divide="ignore"):
            depth = np.where(angle > 1e-4, self.config.z_m / np.tan(np.maximum(angle, 1e-4)), np.inf)
        return depth

    def set_pose(self, x_m: float, y_m: float, heading_rad: float) -> None:
        """Place the camera on an ego at (x, y) with ``heading_rad`` ccw from east."""
        c, s = math.cos(heading_rad), math.sin(heading_rad)
        self.position = np.array(
            [x_m + self.config.x_m * c, y_m + self.config.x_m * s, self.config.z_m]
        )
        forward, left, up = np.array([c, s, 0.0]), np.array([-s, c, 0.0]), np.array([0, 0, 1.0])
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        # rows: camera x (right), y (down), z (optical axis) in world coordinates
        self._rot = np.stack([-left, -(sp * forward + cp * up), cp * forward - sp * up])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 3) camera coordinates (x right, y down, z depth)."""
        return (points - self.position) @ self._rot.T

    def project(self, cam: np.ndarray) -> np.ndarray:
        """(..., 3) camera points in front of the near plane -> (..., 2) pixel coordinates."""
        z = cam[..., 2:3]
        return np.concatenate(
            [self.cx + self.fx * cam[..., 0:1] / z, self.cy + self.fy * cam[..., 1:2] / z], axis=-1
        )


def clip_near(poly: np.ndarray, near: float = NEAR_M) -> np.ndarray:
    """Clip a convex polygon (N, 3) in camera coordinates to z >= near (Sutherland-Hodgman).

    Returns (M, 3), M may be 0. Clipping in 3D before the divide is what keeps
    points behind the camera from wrapping around to the other side of the image.
    """
    pts = poly.tolist()  # Python floats: the same IEEE arithmetic, far less per-point overhead
    out = []
    n = len(pts)
    for i in range(n):
        a, b = pts[i], pts[(i + 1) % n]
        a_in, b_in = a[2] >= near, b[2] >= near
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (near - a[2]) / (b[2] - a[2])
            out.append([a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), a[2] + t * (b[2] - a[2])])
    return np.array(out, dtype=np.float64).reshape(-1, 3)


def clip_rect(poly: np.ndarray, lo: float, hi_x: float, hi_y: float) -> np.ndarray:
    """Clip a convex 2D polygon (N, 2) to the box [lo, hi_x] x [lo, hi_y].

    Keeps pixel coordinates in the range OpenCV's fixed-point rasteriser handles.
    """
    pts = poly.tolist()  # Python floats: the same IEEE arithmetic, far less per-point overhead
    for axis, bound, keep_above in ((0, lo, True), (0, hi_x, False), (1, lo, True), (1, hi_y, False)):
        if not pts:
            break
        inside = [p[axis] >= bound for p in pts] if keep_above else [p[axis] <= bound for p in pts]
        if all(inside):
            continue
        out = []
        n = len(pts)
        for i in range(n):
            a, b = pts[i], pts[(i + 1) % n]
            if inside[i]:
                out.append(a)
            if inside[i] != inside[(i + 1) % n]:
                t = (bound - a[axis]) / (b[axis] - a[axis])
                out.append([a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])])
        pts = out
    return np.array(pts, dtype=np.float64).reshape(-1, 2)
