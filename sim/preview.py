"""A PNG contact sheet of a generated dataset: images, label overlays and boxes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edgepilot.runtime.errors import EdgepilotError
from edgepilot.sim.tags import palette


def overlay(image: np.ndarray, labels: np.ndarray, boxes: list[list[float]], alpha: float = 0.45) -> np.ndarray:
    """HxWx3 RGB blended with the palette colours of ``labels``, boxes [x, y, w, h] drawn."""
    out = cv2.addWeighted(image, 1.0 - alpha, palette()[labels], alpha, 0.0)
    for x, y, w, h in boxes:
        cv2.rectangle(out, (int(x), int(y)), (int(x + w) - 1, int(y + h) - 1), (255, 255, 0), 1)
    return out


def _read(path: Path, flags: int) -> np.ndarray:
    """cv2.imread that fails loudly: it returns None for a missing or unreadable file."""
    image = cv2.imread(str(path), flags)
    if image is None:
        raise EdgepilotError(
            f"cannot read {path}: the dataset is incomplete; regenerate it (datagen --force)",
            exit_code=2,
        )
    return image


def write_preview(folder: Path, out: Path | None = None, count: int = 6, columns: int = 2) -> Path:
    """Grid of ``count`` frames spread over the dataset: raw RGB left, overlay right."""
    coco_path = folder / "annotations.json"
    if not coco_path.is_file():
        raise EdgepilotError(f"{folder} has no annotations.json: generate a dataset first", exit_code=2)
    coco = json.loads(coco_path.read_text())
    images = coco["images"]
    if not images:
        raise EdgepilotError(f"{folder} holds no images", exit_code=2)
    picks = [images[i] for i in np.linspace(0, len(images) - 1, min(count, len(images))).astype(int)]
    tiles = []
    for im in picks:
        rgb = cv2.cvtColor(_read(folder / im["file_name"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        labels = _read(folder / im["label_file"], cv2.IMREAD_UNCHANGED)
        boxes = [a["bbox"] for a in coco["annotations"] if a["image_id"] == im["id"]]
        tiles.append(np.hstack([rgb, overlay(rgb, labels, boxes)]))
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    out = out or folder / "preview.png"
    cv2.imwrite(str(out), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    return out
