"""Real frames for export checks: datagen folders read as the runtime reads a camera.

Every check the exporter runs (parity, calibration, accuracy) feeds the graph
what inference feeds it: the frame as a BGR uint8 image through the runtime's
own :class:`~edgepilot.runtime.preprocess.Preprocessor` with the bundle's
input spec and ``preprocess`` entry. Calibrating or scoring on anything else
would measure a different input distribution than the one deployed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.perception.data.datasets import DatagenDataset, Sample
from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.errors import EdgepilotError
from edgepilot.runtime.preprocess import Preprocessor, Transform

Folders = Sequence[str | Path]


@dataclass(frozen=True, slots=True)
class Frames:
    """Frames of datagen folders (``split``, "all" by default), in file order; ``limit`` > 0 keeps the first N."""

    folders: tuple[str, ...]
    labels: bool = True
    limit: int = 0
    split: str = "all"

    def dataset(self) -> DatagenDataset:
        if not self.folders:
            raise EdgepilotError("no frame folders given", exit_code=2)
        return DatagenDataset(list(self.folders), self.split, labels=self.labels)

    def __len__(self) -> int:
        n = len(self.dataset())
        return min(n, self.limit) if self.limit else n

    def samples(self) -> Iterator[Sample]:
        ds = self.dataset()
        for i in range(len(self)):
            yield ds[i]


def frames(folders: Folders | None, *, labels: bool = True, limit: int = 0, split: str = "all") -> Frames | None:
    """A :class:`Frames` of ``folders``, or None when none are given."""
    if not folders:
        return None
    return Frames(tuple(str(f) for f in folders), labels, limit, split)


class InputFeeder:
    """RGB sample -> (copied input tensor [1, 3, H, W] as the bundle's spec says, Transform)."""

    def __init__(self, bundle: Bundle, hw: tuple[int, int] | None = None) -> None:
        self.name = bundle.inputs[0].name
        self._pre = Preprocessor(bundle.inputs[0], bundle.preprocess, hw)

    def __call__(self, image_rgb: np.ndarray) -> tuple[np.ndarray, Transform]:
        x, transform = self._pre(np.ascontiguousarray(image_rgb[:, :, ::-1]))  # the runtime's frames are BGR
        return x.copy(), transform


def frames_sha256(samples: Sequence[Sample] | Iterator[Sample]) -> tuple[str, int]:
    """(SHA-256 over every frame's shape and pixel bytes in order, frame count)."""
    h = hashlib.sha256()
    n = 0
    for s in samples:
        h.update(f"{s.image.shape}|".encode())
        h.update(np.ascontiguousarray(s.image).tobytes())
        n += 1
    return h.hexdigest(), n


def describe(fr: Frames) -> dict[str, Any]:
    return {"folders": list(fr.folders), "frames": len(fr)}
