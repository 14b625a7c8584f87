"""torch Datasets of frames: RGB image, class-id labels and vehicle boxes, aligned.

``DatagenDataset`` reads datagen folders (builtin or CARLA); ``FolderDataset``
(in ``folders.py``) reads a user's own images, label PNGs and COCO boxes. Both
return a :class:`Sample` at the requested output size, augmented with a
generator seeded by (seed, epoch, index), so a sample is reproducible and
workers need no shared random state; call ``set_epoch`` once per epoch.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch.utils.data

from edgepilot.perception.classes import DETECTION, IGNORE, SEGMENTATION, ClassMap
from edgepilot.perception.data import augment as aug
from edgepilot.perception.data.layout import FrameRecord, read_frames
from edgepilot.runtime.errors import EdgepilotError


@dataclass(frozen=True, slots=True)
class Sample:
    """One frame. ``labels`` is None for a detection-only source; ``crowd`` marks boxes that
    are ignore regions (COCO iscrowd): neither required nor penalised."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    labels: np.ndarray | None  # (H, W) uint8 class ids, IGNORE where unknown
    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2 in pixels
    classes: np.ndarray  # (N,) int64 detection class ids
    crowd: np.ndarray  # (N,) bool
    image_id: int


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, or EdgepilotError (exit 2) naming the file."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise EdgepilotError(f"cannot read image {path}: missing or not an image", exit_code=2)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_label(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 label PNG of the given shape, or EdgepilotError (exit 2)."""
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2 or labels.dtype != np.uint8:
        raise EdgepilotError(f"cannot read label {path}: want a single-channel 8-bit PNG", exit_code=2)
    if labels.shape != shape:
        raise EdgepilotError(f"label {path} is {labels.shape[1]}x{labels.shape[0]}, its image "
                             f"{shape[1]}x{shape[0]}: they must match", exit_code=2)
    return labels


class FrameDataset(torch.utils.data.Dataset[Sample], abc.ABC):
    """Base: ``load(i)`` gives the frame at its own resolution; ``__getitem__`` resizes or
    augments it to ``size`` (H, W; None keeps the frame's own size, no augmentation)."""

    def __init__(self, size: tuple[int, int] | None = None, augment: aug.AugmentConfig | None = None,
                 seed: int = 0) -> None:
        self.size, self.augment, self.seed, self.epoch = size, augment, seed, 0

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def load(self, i: int) -> Sample:
        """Frame ``i`` at its own resolution."""

    def set_epoch(self, epoch: int) -> None:
        """Draws of the next samples depend on ``epoch`` (call it at each epoch start)."""
        self.epoch = epoch

    def __getitem__(self, i: int) -> Sample:
        s = self.load(i)
        if self.size is None:
            return s
        if self.augment is None:
            image, labels, boxes = aug.resize_to(s.image, s.labels, s.boxes, self.size)
            return Sample(image, labels, boxes, s.classes, s.crowd, s.image_id)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        geo = aug.geometry(s.image.shape[:2], self.size, self.augment, rng)
        image, labels, boxes = aug.warp(s.image, s.labels, s.boxes, self.size, geo)
        boxes, kept = aug.clip_boxes(boxes, self.size, self.augment)
        image = aug.photometric(image, self.augment, rng)
        return Sample(image, labels, boxes[kept], s.classes[kept], s.crowd[kept], s.image_id)


class DatagenDataset(FrameDataset):
    """Frames of ``split`` ("train", "val", "all") from one or more datagen folders.

    Label PNGs of CARLA tags become ``classes`` ids through its lookup table; boxes
    keep the vehicle tags ``detection`` maps (its class ids), others are dropped.
    ``labels=False`` skips reading label PNGs (detection only).
    """

    def __init__(self, folders: str | Path | Sequence[str | Path], split: str = "train",
                 size: tuple[int, int] | None = None, augment: aug.AugmentConfig | None = None,
                 seed: int = 0, classes: ClassMap = SEGMENTATION, detection: ClassMap = DETECTION,
                 labels: bool = True) -> None:
        super().__init__(size, augment, seed)
        folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
        self.records: list[FrameRecord] = [r for f in folders for r in read_frames(f, split)]
        if not self.records:
            raise EdgepilotError(f"no {split!r} frames in {', '.join(map(str, folders))}: generate more "
                                 f"episodes (every val_every-th episode is val)", exit_code=2)
        self.classes, self.detection, self.with_labels = classes, detection, labels

    def __len__(self) -> int:
        return len(self.records)

    def load(self, i: int) -> Sample:
        r = self.records[i]
        image = read_image(r.image)
        if image.shape[:2] != (r.height, r.width):
            raise EdgepilotError(f"{r.image} is {image.shape[1]}x{image.shape[0]}, annotations say "
                                 f"{r.width}x{r.height}: regenerate the dataset", exit_code=2)
        labels = None
        if self.with_labels and r.labels is not None:
            labels = self.classes.encode(read_label(r.labels, image.shape[:2]))
        cls = self.detection.lut[np.clip(r.tags, 0, 255)].astype(np.int64)
        keep = cls != IGNORE
        return Sample(image, labels, r.boxes[keep], cls[keep], np.zeros(int(keep.sum()), bool), r.image_id)
