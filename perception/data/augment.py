"""Augmentation in numpy/OpenCV, applied identically to the image, its labels and its boxes.

Geometry (scale, crop, flip) is one affine map, so image (bilinear), labels
(nearest, IGNORE outside the source) and boxes move together exactly; colour
jitter, blur and noise touch the image only. Coordinates are continuous pixels
(pixel i covers [i, i + 1)), as the box annotations are. Every random draw comes
from the ``rng`` passed in, so a sample is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgepilot.perception.classes import IGNORE


@dataclass(frozen=True, slots=True)
class AugmentConfig:
    """Probabilities and ranges; ``scale`` multiplies the fit-to-output scale."""

    scale: tuple[float, float] = (0.75, 1.5)
    flip: float = 0.5  # probability of a horizontal flip
    brightness: float = 0.25  # +- fraction of the mean
    contrast: float = 0.25
    saturation: float = 0.3
    hue_deg: float = 6.0
    blur: float = 0.2  # probability of a Gaussian blur
    blur_sigma_px: tuple[float, float] = (0.3, 1.2)
    noise: float = 0.3  # probability of Gaussian sensor noise
    noise_std: tuple[float, float] = (2.0, 8.0)  # in 0..255 units
    min_box_px: float = 1.0  # boxes narrower or shorter than this after the crop are dropped
    min_box_kept: float = 0.3  # boxes keeping less of their area inside the crop are dropped


def geometry(src_hw: tuple[int, int], out_hw: tuple[int, int], cfg: AugmentConfig,
             rng: np.random.Generator) -> tuple[float, float, float, bool]:
    """A random (scale, tx, ty, flip) mapping source to output continuous pixels:
    x' = s * x + tx, then x' -> W_out - x' when flipped. ``s`` is ``cfg.scale`` times
    the scale that covers the output; the crop (or, zoomed out, the padding) is uniform."""
    s = max(out_hw[0] / src_hw[0], out_hw[1] / src_hw[1]) * float(rng.uniform(*cfg.scale))
    free_x, free_y = src_hw[1] * s - out_hw[1], src_hw[0] * s - out_hw[0]
    tx = -float(rng.uniform(min(free_x, 0.0), max(free_x, 0.0)))
    ty = -float(rng.uniform(min(free_y, 0.0), max(free_y, 0.0)))
    return s, tx, ty, bool(rng.random() < cfg.flip)


def _matrix(s: float, tx: float, ty: float, flip: bool, out_w: int) -> np.ndarray:
    """The 2x3 map in OpenCV's convention (pixel centres at integers): c' = s * c + t + (s - 1) / 2."""
    m = np.array([[s, 0.0, tx + (s - 1) / 2], [0.0, s, ty + (s - 1) / 2]])
    if flip:
        m[0] = -m[0]
        m[0, 2] += out_w - 1
    return m


def warp(image: np.ndarray, labels: np.ndarray | None, boxes: np.ndarray, out_hw: tuple[int, int],
         geo: tuple[float, float, float, bool]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Apply ``geo`` (from :func:`geometry`) to image (H, W, 3), labels (H, W) and boxes (N, 4) xyxy."""
    s, tx, ty, flip = geo
    h, w = out_hw
    m = _matrix(s, tx, ty, flip, w)
    image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=(0, 0, 0))
    if labels is not None:
        labels = cv2.warpAffine(labels, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=IGNORE)
    b = boxes.astype(np.float32) * s + np.array([tx, ty, tx, ty], np.float32)
    if flip:
        b = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1)
    return image, labels, b.reshape(-1, 4).astype(np.float32)


def clip_boxes(boxes: np.ndarray, hw: tuple[int, int], cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """Boxes clipped to the image and the (N,) mask of those kept (big enough, mostly inside)."""
    h, w = hw
    clipped = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    wh = clipped[:, 2:] - clipped[:, :2]
    kept = (wh >= cfg.min_box_px).all(axis=1) & (wh.prod(axis=1) >= cfg.min_box_kept * area)
    return clipped, kept


def photometric(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Colour jitter, blur and noise on an (H, W, 3) uint8 RGB image; returns a new image."""
    img = image.astype(np.float32)
    mean = img.mean()
    img = (img - mean) * (1 + rng.uniform(-cfg.contrast, cfg.contrast)) + mean
    img *= 1 + rng.uniform(-cfg.brightness, cfg.brightness)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * (1 + rng.uniform(-cfg.saturation, cfg.saturation))
    out = np.clip(img, 0, 255).astype(np.uint8)
    if cfg.hue_deg > 0:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)  # OpenCV hue is 0..179 (2 degrees a step)
        shift = int(round(rng.uniform(-cfg.hue_deg, cfg.hue_deg) / 2))
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if rng.random() < cfg.blur:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(*cfg.blur_sigma_px)))
    if rng.random() < cfg.noise:
        noise = rng.normal(0.0, rng.uniform(*cfg.noise_std), out.shape).astype(np.float32)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return out


def resize_to(image: np.ndarray, labels: np.ndarray | None, boxes: np.ndarray, out_hw: tuple[int, int]
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Plain (possibly anisotropic) resize, for evaluation and un-augmented training."""
    h, w = out_hw
    if image.shape[:2] == (h, w):
        return image, labels, boxes
    fy, fx = h / image.shape[0], w / image.shape[1]
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if fx < 1 else cv2.INTER_LINEAR)
    if labels is not None:
        labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    return image, labels, (boxes * np.array([fx, fy, fx, fy], np.float32)).astype(np.float32)
