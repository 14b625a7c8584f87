"""A user's own data: a folder of images with Cityscapes-style label PNGs and/or COCO JSON boxes.

Label PNGs hold ids of the user's label set; ``id_map`` says which of our class
ids each becomes (unlisted ids are IGNORE). :func:`cityscapes_id_map` gives the
map for Cityscapes ``*_gtFine_labelIds.png`` (through the CARLA tags, whose ids
and colours follow Cityscapes). Boxes come from a COCO JSON whose ``file_name``
is relative to the image folder; ``category_map`` maps COCO category ids to our
detection classes (by default the categories named like a vehicle tag: car,
truck, bus, train, motorcycle, bicycle); ``iscrowd`` boxes are kept as ignore regions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.perception.classes import DETECTION, IGNORE, SEGMENTATION, ClassMap
from edgepilot.perception.data.augment import AugmentConfig
from edgepilot.perception.data.datasets import FrameDataset, Sample, read_image, read_label
from edgepilot.perception.tags import TAG_IDS
from edgepilot.runtime.errors import EdgepilotError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# Cityscapes labelIds -> CARLA tag names (ids 1-3 are ego vehicle / borders: left unlabeled)
CITYSCAPES_TAGS = {
    4: "Static", 5: "Dynamic", 6: "Ground", 7: "Roads", 8: "SideWalks", 9: "Ground", 10: "RailTrack",
    11: "Building", 12: "Wall", 13: "Fence", 14: "GuardRail", 15: "Bridge", 16: "Building", 17: "Pole",
    18: "Pole", 19: "TrafficLight", 20: "TrafficSign", 21: "Vegetation", 22: "Terrain", 23: "Sky",
    24: "Pedestrian", 25: "Rider", 26: "Car", 27: "Truck", 28: "Bus", 29: "Car", 30: "Truck", 31: "Train",
    32: "Motorcycle", 33: "Bicycle",
}


def cityscapes_id_map(classes: ClassMap = SEGMENTATION) -> dict[int, int]:
    """Cityscapes labelId -> class id of ``classes`` (ids whose tag is ignored are left out)."""
    out = {}
    for cs_id, tag in CITYSCAPES_TAGS.items():
        k = int(classes.lut[TAG_IDS[tag]])
        if k != IGNORE:
            out[cs_id] = k
    return out


def _lut(id_map: Mapping[int, int], num_classes: int) -> np.ndarray:
    lut = np.full(256, IGNORE, np.uint8)
    for src, dst in id_map.items():
        if not (0 <= int(src) <= 255 and (0 <= int(dst) < num_classes or int(dst) == IGNORE)):
            raise EdgepilotError(f"id map {src} -> {dst}: label ids are 0..255 and classes 0..{num_classes - 1} "
                                 f"or {IGNORE}", exit_code=2)
        lut[int(src)] = int(dst)
    return lut


def _default_categories(cats: list[dict[str, Any]], detection: ClassMap) -> dict[int, int]:
    """COCO categories named like a tag of a detection class (car, truck, ...) -> that class."""
    names = {t.lower(): k for k in range(detection.num_classes) for t in detection.groups[k].tags}
    picked = {int(c["id"]): str(c.get("name", "")).lower() for c in cats}
    return {cid: names[name] for cid, name in picked.items() if name in names}


class FolderDataset(FrameDataset):
    """Images under ``images`` (searched recursively), with label PNGs under ``labels`` and/or
    boxes from the COCO JSON ``coco``.

    A label is found from the image's path relative to ``images``, with ``image_suffix``
    of the stem replaced by ``label_suffix`` and ``.png`` (Cityscapes: ``_leftImg8bit`` ->
    ``_gtFine_labelIds``). With ``coco``, only images listed there are used.
    """

    def __init__(self, images: str | Path, labels: str | Path | None = None,
                 id_map: Mapping[int, int] | None = None, coco: str | Path | None = None,
                 category_map: Mapping[int, int] | None = None, *, image_suffix: str = "",
                 label_suffix: str = "", size: tuple[int, int] | None = None,
                 augment: AugmentConfig | None = None, seed: int = 0,
                 classes: ClassMap = SEGMENTATION, detection: ClassMap = DETECTION) -> None:
        super().__init__(size, augment, seed)
        self.root = Path(images)
        if not self.root.is_dir():
            raise EdgepilotError(f"image folder {self.root} does not exist", exit_code=2)
        if labels is not None and id_map is None:
            raise EdgepilotError("label PNGs need an id map (label id -> class id), e.g. "
                                 "cityscapes_id_map()", exit_code=2)
        self.labels_root = Path(labels) if labels is not None else None
        self.lut = _lut(id_map or {}, classes.num_classes)
        self.image_suffix, self.label_suffix = image_suffix, label_suffix
        self.boxes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}
        if coco is not None:
            self.files = self._read_coco(Path(coco), category_map, detection)
        else:
            self.files = sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                                if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise EdgepilotError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {self.root}", exit_code=2)

    def _read_coco(self, path: Path, category_map: Mapping[int, int] | None, detection: ClassMap) -> list[str]:
        try:
            coco = json.loads(path.read_text())
            cats = category_map if category_map is not None else _default_categories(coco["categories"], detection)
            by_image: dict[int, list[dict[str, Any]]] = {}
            for a in coco["annotations"]:
                if int(a["category_id"]) in cats:
                    by_image.setdefault(int(a["image_id"]), []).append(a)
            for im in coco["images"]:
                anns = by_image.get(int(im["id"]), [])
                xywh = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
                boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
                cls = np.array([cats[int(a["category_id"])] for a in anns], np.int64)
                crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)
                self.boxes[str(im["file_name"])] = (boxes, cls, crowd, int(im["id"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EdgepilotError(f"cannot read COCO boxes from {path}: {exc!r}", exit_code=2) from exc
        return sorted(self.boxes, key=lambda f: self.boxes[f][3])

    def __len__(self) -> int:
        return len(self.files)

    def label_path(self, rel: str) -> Path:
        """Where the label PNG of image ``rel`` (relative to the image folder) is."""
        assert self.labels_root is not None
        p = Path(rel)
        stem = p.stem
        if self.image_suffix and stem.endswith(self.image_suffix):
            stem = stem[: -len(self.image_suffix)]
        return self.labels_root / p.parent / f"{stem}{self.label_suffix}.png"

    def load(self, i: int) -> Sample:
        rel = self.files[i]
        image = read_image(self.root / rel)
        labels = None
        if self.labels_root is not None:
            labels = self.lut[read_label(self.label_path(rel), image.shape[:2])]
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool), i + 1)
        boxes, cls, crowd, image_id = self.boxes.get(rel, empty)
        return Sample(image, labels, boxes, cls, crowd, image_id)

