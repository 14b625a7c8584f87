"""The model classes as groups of CARLA tags: names, palette, tag -> class lookup table.

One map for segmentation and one for detection, shared by datasets, training,
metrics and bundle export, so a class id means the same thing everywhere. A
label PNG of CARLA tag ids becomes class ids with one table lookup,
``SEGMENTATION.lut[tags]``; tags in no group (Unlabeled, Other) and ids that are
not CARLA tags map to :data:`IGNORE`, which losses and metrics skip.

Why these groups (from what the builtin world renders, and the policy's needs):

- ``road``, ``road_line`` and ``vehicle`` are what the driving policy reads;
  lane lines stay their own class although they are thin.
- ``pole_sign``: poles, traffic signs and traffic lights in one class. In the
  builtin world every sign hangs on a pole and signs cover 0.1-0.5 % of the
  pixels in two of the four scenarios (absent in the others); a class of its
  own would be the smallest and rarest, where a 1-2 M parameter net fails first,
  and nothing downstream needs signs apart from poles.
- ``building`` takes wall and bridge; ``barrier`` takes guard rail, fence and
  the static/dynamic props (road obstacles in the builtin world);
  ``terrain`` takes ground, water and rail track (flat, not for driving).
- ``vehicle`` is every CARLA vehicle tag (car, truck, bus, train, motorcycle,
  bicycle): the builtin trucks are lengthened cars, a split would only add
  confusion. ``person`` (pedestrian, rider) exists for CARLA data; the builtin
  world has none, and metrics count only classes present in the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgepilot.perception.tags import CARLA_TAGS, TAG_IDS

IGNORE = 255  # class id of unlabeled / unknown pixels: no loss, no metric


@dataclass(frozen=True, slots=True)
class ClassGroup:
    """One model class: its name, the CARLA tag names it covers, its RGB colour."""

    name: str
    tags: tuple[str, ...]
    rgb: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class ClassMap:
    """Model classes ``0..C-1`` built from groups of CARLA tags (see :meth:`build`).

    ``lut``: (256,) uint8, CARLA tag id -> class id, :data:`IGNORE` elsewhere.
    ``palette``: (C, 3) uint8 RGB per class. Both are read-only.
    """

    groups: tuple[ClassGroup, ...]
    ignored_tags: tuple[str, ...]
    names: tuple[str, ...]
    palette: np.ndarray
    lut: np.ndarray

    @classmethod
    def build(cls, groups: tuple[ClassGroup, ...], ignored_tags: tuple[str, ...] = ()) -> ClassMap:
        """Check the groups (known tags, each tag in one group at most) and build the tables."""
        lut = np.full(256, IGNORE, dtype=np.uint8)
        seen: dict[str, str] = {}
        for k, group in enumerate(groups):
            for tag in group.tags:
                if tag not in TAG_IDS:
                    raise ValueError(f"class {group.name!r}: {tag!r} is not a CARLA tag")
                if tag in seen or tag in ignored_tags:
                    raise ValueError(f"CARLA tag {tag!r} is in class {group.name!r} and {seen.get(tag, 'ignored')!r}")
                seen[tag] = group.name
                lut[TAG_IDS[tag]] = k
        palette = np.array([g.rgb for g in groups], dtype=np.uint8).reshape(-1, 3)
        lut.flags.writeable = False
        palette.flags.writeable = False
        return cls(groups, tuple(ignored_tags), tuple(g.name for g in groups), palette, lut)

    @property
    def num_classes(self) -> int:
        return len(self.groups)

    def tag_ids(self, k: int) -> tuple[int, ...]:
        """CARLA tag ids of class ``k``."""
        return tuple(TAG_IDS[t] for t in self.groups[k].tags)

    def encode(self, tags: np.ndarray) -> np.ndarray:
        """uint8 array of CARLA tag ids -> same-shape uint8 class ids (IGNORE where unmapped)."""
        return self.lut[tags]

    def colourise(self, ids: np.ndarray) -> np.ndarray:
        """(H, W) class ids -> (H, W, 3) uint8 RGB; IGNORE and out-of-range ids are black."""
        table = np.zeros((256, 3), np.uint8)
        table[: self.num_classes] = self.palette
        return table[ids]


VEHICLE_TAGS = ("Car", "Truck", "Bus", "Train", "Motorcycle", "Bicycle")

SEGMENTATION = ClassMap.build(
    (
        ClassGroup("road", ("Roads",), CARLA_TAGS[1][1]),
        ClassGroup("sidewalk", ("SideWalks",), CARLA_TAGS[2][1]),
        ClassGroup("road_line", ("RoadLine",), CARLA_TAGS[24][1]),
        ClassGroup("building", ("Building", "Wall", "Bridge"), CARLA_TAGS[3][1]),
        ClassGroup("pole_sign", ("Pole", "TrafficSign", "TrafficLight"), CARLA_TAGS[6][1]),
        ClassGroup("vegetation", ("Vegetation",), CARLA_TAGS[9][1]),
        ClassGroup("terrain", ("Terrain", "Ground", "Water", "RailTrack"), CARLA_TAGS[10][1]),
        ClassGroup("sky", ("Sky",), CARLA_TAGS[11][1]),
        ClassGroup("vehicle", VEHICLE_TAGS, CARLA_TAGS[14][1]),
        ClassGroup("person", ("Pedestrian", "Rider"), CARLA_TAGS[12][1]),
        ClassGroup("barrier", ("GuardRail", "Fence", "Static", "Dynamic"), CARLA_TAGS[28][1]),
    ),
    ignored_tags=("Unlabeled", "Other"),
)

# Detection: one class, every vehicle tag (the COCO category ids datagen writes are tags).
DETECTION = ClassMap.build((ClassGroup("vehicle", VEHICLE_TAGS, CARLA_TAGS[14][1]),))
