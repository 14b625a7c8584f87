"""Shared fixtures: tiny ONNX bundles and a generated video clip, made once per session."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


def make_clip(path: Path, n: int = 30, hw: tuple[int, int] = (120, 160), fps: float = 30.0) -> Path:
    """Write an MJPG .avi of ``n`` frames; frame i has a bright square at x = 4 * i (i < hw[1] / 4)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (hw[1], hw[0]))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for i in range(n):
        img = np.full((*hw, 3), 40, np.uint8)
        x = (4 * i) % (hw[1] - 16)
        img[20:36, x : x + 16] = 255
        writer.write(img)
    writer.release()
    return path


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny untrained bundles: seg (class ids, 128x256), seg_logits, seg_dynamic, centernet, yolo, policy."""
    pytest.importorskip("onnx")
    from edgepilot.export import tiny

    root = tmp_path_factory.mktemp("bundles")
    return {
        "seg": tiny.segmentation_bundle(root / "seg"),
        "seg_logits": tiny.segmentation_bundle(root / "seg_logits", argmax=False),
        "seg_dynamic": tiny.segmentation_bundle(root / "seg_dynamic", hw=None),
        "centernet": tiny.centernet_bundle(root / "centernet"),
        "yolo": tiny.yolo_bundle(root / "yolo"),
        "policy": tiny.policy_bundle(root / "policy"),
    }


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-frame 120x160 MJPG clip at 30 FPS."""
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.avi")
