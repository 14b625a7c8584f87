"""CARLA 0.9.14+ semantic tag ids and the Cityscapes palette CARLA uses for them (numpy only)."""

from __future__ import annotations

import numpy as np

# id -> (name, RGB colour of CARLA's CityScapesPalette)
CARLA_TAGS: dict[int, tuple[str, tuple[int, int, int]]] = {
    0: ("Unlabeled", (0, 0, 0)),
    1: ("Roads", (128, 64, 128)),
    2: ("SideWalks", (244, 35, 232)),
    3: ("Building", (70, 70, 70)),
    4: ("Wall", (102, 102, 156)),
    5: ("Fence", (190, 153, 153)),
    6: ("Pole", (153, 153, 153)),
    7: ("TrafficLight", (250, 170, 30)),
    8: ("TrafficSign", (220, 220, 0)),
    9: ("Vegetation", (107, 142, 35)),
    10: ("Terrain", (152, 251, 152)),
    11: ("Sky", (70, 130, 180)),
    12: ("Pedestrian", (220, 20, 60)),
    13: ("Rider", (255, 0, 0)),
    14: ("Car", (0, 0, 142)),
    15: ("Truck", (0, 0, 70)),
    16: ("Bus", (0, 60, 100)),
    17: ("Train", (0, 80, 100)),
    18: ("Motorcycle", (0, 0, 230)),
    19: ("Bicycle", (119, 11, 32)),
    20: ("Static", (110, 190, 160)),
    21: ("Dynamic", (170, 120, 50)),
    22: ("Other", (55, 90, 80)),
    23: ("Water", (45, 60, 150)),
    24: ("RoadLine", (157, 234, 50)),
    25: ("Ground", (81, 0, 81)),
    26: ("Bridge", (150, 100, 100)),
    27: ("RailTrack", (230, 150, 140)),
    28: ("GuardRail", (180, 165, 180)),
}

TAG_IDS = {name: i for i, (name, _) in CARLA_TAGS.items()}


def palette() -> np.ndarray:
    """(29, 3) uint8 RGB palette indexed by tag id."""
    return np.array([CARLA_TAGS[i][1] for i in range(len(CARLA_TAGS))], dtype=np.uint8)
