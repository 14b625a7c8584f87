"""What the fake CARLA cameras see: rectangles painted far to near, encoded like CARLA.

The semantic camera writes the tag (in the server's numbering) into the red
channel of BGRA and junk into green and blue; the RGB camera writes the
palette colour of each tag as BGRA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgepilot.sim.carla.decode import LEGACY_LUT, parse_version
from edgepilot.sim.tags import TAG_IDS, palette

# Tags the fake writes for a stale frame, so a test can tell it was used.
STALE_TAG = TAG_IDS["Water"]


@dataclass(frozen=True)
class SceneObject:
    """A rectangle in camera pixels with a 0.9.14+ tag; larger depth is farther away."""

    tag: int
    x1: int
    y1: int
    x2: int
    y2: int
    depth_m: float


@dataclass
class FakeImage:
    """A sensor image; ``raw_data`` is a read-only memoryview, as the real client's."""

    frame: int
    width: int
    height: int
    raw_data: memoryview


def render_camera(
    type_id: str,
    width: int,
    height: int,
    scene: list[SceneObject],
    frame: int,
    version: str,
    stale: bool = False,
) -> FakeImage:
    """Paint ``scene`` (0.9.14+ tags) into the bytes a camera of ``type_id`` would send."""
    labels = np.full((height, width), STALE_TAG if stale else 0, dtype=np.uint8)
    for obj in sorted(scene, key=lambda o: -o.depth_m):
        labels[obj.y1 : obj.y2, obj.x1 : obj.x2] = obj.tag
    bgra = np.zeros((height, width, 4), dtype=np.uint8)
    bgra[:, :, 3] = 255
    if type_id.endswith("semantic_segmentation"):
        bgra[:, :, 2] = to_server_tags(labels, version)
        bgra[:, :, 1], bgra[:, :, 0] = 99, 7  # G and B carry no tag; they must be ignored
    else:
        bgra[:, :, :3] = palette()[labels][:, :, ::-1]
    return FakeImage(frame, width, height, memoryview(bgra.tobytes()))


def to_server_tags(labels: np.ndarray, version: str) -> np.ndarray:
    """Current tag ids -> the ids a server of ``version`` writes (pre-0.9.14 numbering)."""
    if parse_version(version) >= (0, 9, 14):
        return labels
    inverse = np.zeros(256, dtype=np.uint8)
    for old in range(22, -1, -1):  # lowest legacy id wins when two map to one tag
        inverse[LEGACY_LUT[old]] = old
    return inverse[labels]


def default_scene(width: int, height: int) -> list[SceneObject]:
    """Sky above, road below, one car ahead."""
    return [
        SceneObject(TAG_IDS["Sky"], 0, 0, width, height // 2, 1000.0),
        SceneObject(TAG_IDS["Roads"], 0, height // 2, width, height, 50.0),
        SceneObject(
            TAG_IDS["Car"], width // 4, height // 2 - 4, width // 4 + 10, height // 2 + 6, 20.0
        ),
    ]
