"""The datagen folder layout: the names the writer uses and the reader that checks them.

::

  images/<episode>_<frame>.png|jpg   RGB
  labels/<episode>_<frame>.png       HxW uint8 CARLA tag ids
  annotations.json                   COCO boxes (category ids are CARLA tags); each image
                                     carries file_name, label_file, episode and split
  manifest.json                      settings, camera, versions, episodes, splits by episode

The writer is ``edgepilot.sim.datagen``; readers go through :func:`read_frames`.
Splits are whole episodes: the manifest's ``splits`` lists the episodes of each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.runtime.errors import EdgepilotError

IMAGES_DIR = "images"
LABELS_DIR = "labels"
ANNOTATIONS = "annotations.json"
MANIFEST = "manifest.json"
PREVIEW = "preview.png"
OUR_FILES = (IMAGES_DIR, LABELS_DIR, ANNOTATIONS, MANIFEST, PREVIEW)  # what datagen owns in its folder
SPLITS = ("train", "val")


def frame_stem(episode: int, k: int) -> str:
    """File stem of the ``k``-th saved frame of ``episode``."""
    return f"{episode:04d}_{k:05d}"


def image_file(stem: str, fmt: str) -> str:
    """Path of an image relative to the dataset folder (``fmt``: png or jpg)."""
    return f"{IMAGES_DIR}/{stem}.{fmt}"


def label_file(stem: str) -> str:
    """Path of a label PNG relative to the dataset folder."""
    return f"{LABELS_DIR}/{stem}.png"


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One frame of a dataset as listed by its annotations (nothing decoded yet).

    ``boxes``: (N, 4) float32 x1, y1, x2, y2 in pixels; ``tags``: (N,) int64 CARLA tag
    (the COCO category id); ``labels`` is None when the frame has no label PNG.
    """

    image: Path
    labels: Path | None
    boxes: np.ndarray
    tags: np.ndarray
    episode: int
    image_id: int
    height: int
    width: int


def _bad(folder: Path, what: str) -> EdgepilotError:
    return EdgepilotError(f"{folder}: {what}; regenerate it with edgepilot datagen --out {folder} --force",
                          exit_code=2)


def _load_json(folder: Path, name: str) -> Any:
    path = folder / name
    if not path.is_file():
        raise EdgepilotError(f"{folder} is not a datagen folder: no {name} (make one with edgepilot "
                             f"datagen --out {folder})", exit_code=2)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(folder, f"{name} is not readable JSON ({exc})") from exc


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a datagen folder, checked to have a split per episode."""
    folder = Path(folder)
    manifest = _load_json(folder, MANIFEST)
    splits = manifest.get("splits") if isinstance(manifest, dict) else None
    if not isinstance(splits, dict) or not all(isinstance(splits.get(s), list) for s in SPLITS):
        raise _bad(folder, f"{MANIFEST} has no 'splits' with lists {list(SPLITS)}")
    return manifest


def read_frames(folder: str | Path, split: str) -> list[FrameRecord]:
    """Frames of ``split`` ("train", "val" or "all") in image-id order, with their boxes.

    Raises EdgepilotError (exit 2) for a folder that is not a complete datagen dataset.
    """
    folder = Path(folder)
    if split not in (*SPLITS, "all"):
        raise EdgepilotError(f"unknown split {split!r}: choose train, val or all", exit_code=2)
    manifest = read_manifest(folder)
    coco = _load_json(folder, ANNOTATIONS)
    episodes = {int(e) for s in SPLITS for e in manifest["splits"][s]} if split == "all" else \
        {int(e) for e in manifest["splits"][split]}
    try:
        by_image: dict[int, list[dict[str, Any]]] = {}
        for a in coco["annotations"]:
            by_image.setdefault(int(a["image_id"]), []).append(a)
        records = [_record(folder, im, by_image.get(int(im["id"]), []))
                   for im in sorted(coco["images"], key=lambda im: int(im["id"]))
                   if int(im["episode"]) in episodes]
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(folder, f"{ANNOTATIONS} misses a field ({exc!r})") from exc
    return records


def _record(folder: Path, im: dict[str, Any], anns: list[dict[str, Any]]) -> FrameRecord:
    xywh = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    label = im.get("label_file")
    return FrameRecord(
        image=folder / im["file_name"], labels=folder / label if label else None, boxes=boxes,
        tags=np.array([a["category_id"] for a in anns], dtype=np.int64), episode=int(im["episode"]),
        image_id=int(im["id"]), height=int(im["height"]), width=int(im["width"]),
    )
