"""Pure numpy decoding of what a CARLA server sends: images, tags, boxes, poses.

Nothing here imports ``carla``; the functions take plain values so they are
tested without a server. Units: metres, radians, metres per second, pixels.
"""

from __future__ import annotations

import math
import re

import cv2
import numpy as np

from edgepilot.sim.tags import TAG_IDS
from edgepilot.sim.types import Box2D, EgoState

# 0.9.14 renumbered the semantic tags to follow Cityscapes; older servers send these ids.
LEGACY_TAGS_BEFORE = (0, 9, 14)
_LEGACY_TO_CURRENT = {
    0: "Unlabeled",
    1: "Building",
    2: "Fence",
    3: "Other",
    4: "Pedestrian",
    5: "Pole",
    6: "RoadLine",
    7: "Roads",
    8: "SideWalks",
    9: "Vegetation",
    10: "Car",  # 0.9.13 has one "Vehicles" class; Car is the closest current tag
    11: "Wall",
    12: "TrafficSign",
    13: "Sky",
    14: "Ground",
    15: "Bridge",
    16: "RailTrack",
    17: "GuardRail",
    18: "TrafficLight",
    19: "Static",
    20: "Dynamic",
    21: "Water",
    22: "Terrain",
}
# 256-entry lookup table: unknown legacy ids fall back to Unlabeled.
LEGACY_LUT = np.zeros(256, dtype=np.uint8)
for _old, _name in _LEGACY_TO_CURRENT.items():
    LEGACY_LUT[_old] = TAG_IDS[_name]

VEHICLE_TAGS = tuple(TAG_IDS[n] for n in ("Car", "Truck", "Bus", "Train", "Motorcycle", "Bicycle"))


def parse_version(text: str) -> tuple[int, int, int]:
    """``"0.9.15"``, ``"0.9.13-1-g8854804f4"`` or ``"0.9.15-dirty"`` -> ``(0, 9, 15)``.

    Missing parts are 0; a string without a leading number gives ``(0, 0, 0)``.
    """
    match = re.match(r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    if not match:
        return (0, 0, 0)
    major, minor, patch = (int(g) if g else 0 for g in match.groups())
    return (major, minor, patch)


def uses_legacy_tags(server_version: str) -> bool:
    """True when the server numbers semantic tags the pre-0.9.14 way."""
    version = parse_version(server_version)
    return version != (0, 0, 0) and version < LEGACY_TAGS_BEFORE


def bgra_view(raw_data: bytes | memoryview, width: int, height: int) -> np.ndarray:
    """View CARLA's BGRA byte buffer as an (H, W, 4) uint8 array without copying."""
    flat = np.frombuffer(raw_data, dtype=np.uint8)
    if flat.size != width * height * 4:
        raise ValueError(
            f"image buffer has {flat.size} bytes, expected {width}x{height}x4 = {width * height * 4}"
        )
    return flat.reshape(height, width, 4)


def bgra_to_rgb(raw_data: bytes | memoryview, width: int, height: int) -> np.ndarray:
    """CARLA camera bytes (BGRA) -> (H, W, 3) uint8 RGB, contiguous."""
    return np.ascontiguousarray(bgra_view(raw_data, width, height)[:, :, 2::-1])


def semantic_labels(
    raw_data: bytes | memoryview, width: int, height: int, legacy: bool = False
) -> np.ndarray:
    """Semantic camera bytes -> (H, W) uint8 tag ids in the 0.9.14+ numbering.

    The server writes the tag into the red channel, which is index 2 of BGRA.
    ``legacy`` remaps ids from a 0.9.13-or-older server.
    """
    tags = bgra_view(raw_data, width, height)[:, :, 2]
    return LEGACY_LUT[tags] if legacy else np.ascontiguousarray(tags)


def vehicle_boxes(labels: np.ndarray, min_pixels: int = 16) -> tuple[Box2D, ...]:
    """2D boxes of visible vehicles: connected components of each vehicle tag.

    Built from visible pixels only, so a fully hidden vehicle has no box and a
    partly hidden one gets the box of what shows; boxes lie inside the image
    (x2, y2 exclusive). Components under ``min_pixels`` are dropped as noise.
    Touching vehicles of the same tag merge into one box (a known limit).
    """
    boxes: list[Box2D] = []
    for tag in VEHICLE_TAGS:
        mask = (labels == tag).astype(np.uint8)
        if not mask.any():
            continue
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for i in range(1, count):  # component 0 is the background
            x, y, w, h, area = (int(v) for v in stats[i])
            if area >= min_pixels:
                boxes.append(Box2D(tag, float(x), float(y), float(x + w), float(y + h)))
    return tuple(boxes)


def wrap_angle(angle_rad: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (angle_rad + math.pi) % (2.0 * math.pi) - math.pi


def ego_state(
    x_m: float, y_m: float, yaw_deg: float, velocity_mps: tuple[float, float, float]
) -> EgoState:
    """CARLA pose -> EgoState.

    CARLA is left-handed (x forward, y right, z up; yaw in degrees, clockwise seen
    from above). EgoState is right-handed (x east, y north, heading ccw), so y and
    yaw change sign. Speed is the norm of the 3D velocity.
    """
    vx, vy, vz = velocity_mps
    return EgoState(
        x_m=float(x_m),
        y_m=-float(y_m),
        heading_rad=wrap_angle(-math.radians(yaw_deg)),
        speed_mps=math.sqrt(vx * vx + vy * vy + vz * vz),
    )


def collision_kind(type_id: str) -> str:
    """Blueprint id of the other actor -> ``"vehicle"``, ``"pedestrian"`` or ``"static"``."""
    if type_id.startswith("vehicle."):
        return "vehicle"
    if type_id.startswith("walker."):
        return "pedestrian"
    return "static"
