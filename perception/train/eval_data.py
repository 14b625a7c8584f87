"""What validation and evaluation share: the held-out dataset, batches of network inputs, seeding."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import torch

from edgepilot.perception.data.datasets import DatagenDataset, FrameDataset, Sample
from edgepilot.perception.preprocess import to_input


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (model initialisation draws from torch)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def eval_dataset(val_data: Sequence[str], data: Sequence[str], labels: bool = True) -> DatagenDataset:
    """Frames at their own resolution: every frame of ``val_data`` folders (held out whole),
    or without them the "val" split (other episodes) of the training folders."""
    if val_data:
        return DatagenDataset(val_data, "all", labels=labels)
    return DatagenDataset(data, "val", labels=labels)


def _inputs(samples: list[Sample], size: tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return np.stack([s.image for s in samples])
    h, w = size
    return np.stack([s.image if s.image.shape[:2] == (h, w) else cv2.resize(s.image, (w, h), interpolation=cv2.INTER_AREA)
                     for s in samples])


def batches(dataset: FrameDataset, size: tuple[int, int] | None, device: torch.device, batch_size: int,
            limit: int = 0) -> Iterator[tuple[list[Sample], torch.Tensor]]:
    """(samples at their own resolution, network input [B, 3, H, W] on ``device``) in dataset order.

    Without ``size`` each frame keeps its own size, and a batch holds frames of one size.
    """
    n = min(len(dataset), limit) if limit else len(dataset)
    pending: list[Sample] = []
    for i in range(n):
        s = dataset[i]
        if pending and (len(pending) == batch_size or (size is None and s.image.shape != pending[0].image.shape)):
            yield pending, to_input(torch.from_numpy(_inputs(pending, size)).to(device))
            pending = []
        pending.append(s)
    if pending:
        yield pending, to_input(torch.from_numpy(_inputs(pending, size)).to(device))
