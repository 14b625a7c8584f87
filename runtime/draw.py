"""Annotation for sinks: palette overlay of a SegMap, boxes with labels."""

from __future__ import annotations

import cv2
import numpy as np

from edgepilot.runtime.frame import Detections, Output, PolicyAction, SegMap


def _default_palette(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(40, 255, size=(max(n, 1), 3), dtype=np.uint8)


class Annotator:
    """Draws outputs onto a copy of the frame. Palette is RGB (as in meta.json)."""

    def __init__(self, classes: list[str], palette_rgb: list[list[int]] | None = None, alpha: float = 0.5) -> None:
        self.classes = classes
        pal = np.asarray(palette_rgb, np.uint8) if palette_rgb else _default_palette(len(classes))
        self.lut_bgr = np.ascontiguousarray(pal[:, ::-1])
        self.alpha = alpha
        self._buffers: dict[tuple[int, ...], np.ndarray] = {}

    def __call__(self, image: np.ndarray, out: Output) -> np.ndarray:
        canvas = image.copy()
        if isinstance(out, SegMap):
            self._overlay(canvas, out)
        elif isinstance(out, Detections):
            self._boxes(canvas, out)
        elif isinstance(out, PolicyAction):
            text = " ".join(f"{n}={v:+.2f}" for n, v in zip(out.names, out.values, strict=False))
            cv2.putText(canvas, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        return canvas

    def _buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        """A reused uint8 buffer per shape (one per size: the model's and the frame's)."""
        buf = self._buffers.get(shape)
        if buf is None:
            buf = self._buffers[shape] = np.empty(shape, np.uint8)
        return buf

    def _overlay(self, canvas: np.ndarray, seg: SegMap) -> None:
        ids = seg.class_ids
        colour = self._buffer((*ids.shape, 3))
        np.take(self.lut_bgr, ids, axis=0, out=colour, mode="clip")  # ids past the palette get its last colour
        h, w = canvas.shape[:2]
        if colour.shape[:2] != (h, w):
            colour = cv2.resize(colour, (w, h), dst=self._buffer((h, w, 3)), interpolation=cv2.INTER_NEAREST)
        cv2.addWeighted(canvas, 1.0 - self.alpha, colour, self.alpha, 0.0, dst=canvas)

    def _boxes(self, canvas: np.ndarray, det: Detections) -> None:
        for (x1, y1, x2, y2), score, cid in zip(det.boxes, det.scores, det.class_ids, strict=True):
            colour = tuple(int(c) for c in self.lut_bgr[int(cid) % len(self.lut_bgr)])
            if sum(colour) < 90:  # a black palette entry (e.g. "unlabeled") would be invisible
                colour = (255, 255, 255)
            p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
            cv2.rectangle(canvas, p1, p2, colour, 2)
            name = self.classes[cid] if 0 <= cid < len(self.classes) else str(int(cid))
            cv2.putText(canvas, f"{name} {score:.2f}", (p1[0], max(p1[1] - 4, 10)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
