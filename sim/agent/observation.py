"""What the driving policy sees: a low-resolution semantic view plus a few numbers.

The view is built from a segmentation map of class ids in the perception class map
(``edgepilot.perception.classes.SEGMENTATION``) at any resolution, by one function,
:func:`semantic_view`. Training feeds it the simulator's ground-truth label image (CARLA
tags through the class map, :func:`class_ids_from_tags`); driving feeds it a
segmentation bundle's predicted class-id map. One code path for both is what lets a
policy trained on ground truth drive on predictions.

View: ``(C, h, w)`` uint8, one channel per group of classes (default: road, lane lines,
vehicles, other obstacles), each cell the share of its pixels in that group, 0..255
(area averaging, so a lane line thinner than a cell still shows as a faint value).
Classes in no group (sidewalk, terrain, sky) and ignored pixels count as background.

Vector: ``(2 + L [+ 2],)`` float32 in [-1, 1]: ego speed and the scenario's target speed
over ``speed_scale_mps``; the route's heading relative to the ego's at ``L`` lookahead
distances along the route (over pi; where the road goes next, e.g. which exit, not
where the lane centre is); with ``previous_action`` the previous action (steer, pedal).
The driving policy leaves it out: a policy cloned from a driver that sees its own last
action learns to repeat it (the copycat problem of behaviour cloning) and keeps its foot on
the throttle where the driver braked; two stacked frames give it motion instead.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from edgepilot.perception.classes import SEGMENTATION
from edgepilot.sim.agent.action import Action
from edgepilot.sim.types import EgoState

# (channel name, perception class names); the order is the channel order of the view
VIEW_CHANNELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("road", ("road",)),
    ("lane_lines", ("road_line",)),
    ("vehicles", ("vehicle", "person")),
    ("other", ("barrier", "building", "pole_sign", "vegetation")),
)


@dataclass(frozen=True, slots=True)
class ObservationConfig:
    """The policy's input. Sizes in pixels, distances in metres, speeds in m/s.

    ``crop_top`` drops that share of the segmentation map's rows (sky, far away)
    before downsampling; ``frames`` stacks views along the channel axis, ``frame_step``
    steps apart (1: consecutive steps). At 20 Hz consecutive views barely differ: a car
    closing at 17 m/s from 30 m moves 0.85 m in a step, under a tenth of a view row, so
    a policy sees how fast a gap closes only across several steps.
    """

    height: int = 48
    width: int = 96
    channels: tuple[tuple[str, tuple[str, ...]], ...] = VIEW_CHANNELS
    crop_top: float = 0.0
    frames: int = 1
    frame_step: int = 1
    lookaheads_m: tuple[float, ...] = (10.0, 30.0)
    speed_scale_mps: float = 40.0
    previous_action: bool = True

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1 or self.frames < 1 or self.frame_step < 1 or not self.channels:
            raise ValueError(f"an observation needs height, width, frames, frame_step >= 1 and a channel: {self}")
        if not 0.0 <= self.crop_top < 1.0:
            raise ValueError(f"crop_top is a share of the rows in [0, 1), got {self.crop_top}")

    @classmethod
    def default_config(cls) -> ObservationConfig:
        return cls()

    @property
    def view_shape(self) -> tuple[int, int, int]:
        """(C * frames, height, width) of the stacked view."""
        return (len(self.channels) * self.frames, self.height, self.width)

    @property
    def vector_size(self) -> int:
        return 2 + len(self.lookaheads_m) + (2 if self.previous_action else 0)


DEFAULT = ObservationConfig()


def class_ids_from_tags(tags: np.ndarray) -> np.ndarray:
    """(H, W) uint8 CARLA tag ids (a simulator's label image) -> (H, W) uint8 class ids."""
    return SEGMENTATION.encode(tags)


@functools.lru_cache(maxsize=8)
def _channel_table(channels: tuple[tuple[str, tuple[str, ...]], ...]) -> np.ndarray:
    """(256, words) uint32: class id k -> its one-hot channel bytes (255 or 0) packed in words.

    Each word holds four channels' bytes (padded with zero channels), so the one-hot map is
    one ``np.take`` of a word per pixel, ten times faster than indexing a (256, C) table.
    """
    words = -(-len(channels) // 4)
    table = np.zeros((256, 4 * words), np.uint8)
    for c, (_, names) in enumerate(channels):
        for name in names:
            if name not in SEGMENTATION.names:
                raise ValueError(f"view channel {c}: {name!r} is not a class of the class map "
                                 f"({', '.join(SEGMENTATION.names)})")
            table[SEGMENTATION.names.index(name), c] = 255
    packed = table.view(np.uint32)  # (256, words); IGNORE and unlisted classes stay 0
    packed.flags.writeable = False
    return packed


def semantic_view(class_ids: np.ndarray, config: ObservationConfig | None = None) -> np.ndarray:
    """(H, W) uint8 class ids, any H and W -> (C, height, width) uint8 channel coverage.

    The one function for ground truth and for predictions (see the module docstring).
    """
    config = config or DEFAULT
    if class_ids.ndim != 2:
        raise ValueError(f"semantic_view wants an (H, W) class-id map, got shape {class_ids.shape}")
    top = int(round(config.crop_top * class_ids.shape[0]))
    ids = class_ids[top:]
    table = _channel_table(config.channels)
    onehot = np.take(table, ids, axis=0).view(np.uint8)  # (H', W, 4 * words) in {0, 255}
    small = cv2.resize(onehot, (config.width, config.height), interpolation=cv2.INTER_AREA)
    small = small.reshape(config.height, config.width, -1)[..., :len(config.channels)]
    return np.ascontiguousarray(small.transpose(2, 0, 1))  # (C, height, width)


class RouteHeadings:
    """Headings along a route polyline (N, 2) in metres, looked up by arc length."""

    def __init__(self, points_m: np.ndarray) -> None:
        seg = np.diff(np.asarray(points_m, dtype=np.float64).reshape(-1, 2), axis=0)
        length = np.hypot(seg[:, 0], seg[:, 1])
        keep = length > 1e-9
        if not keep.any():
            raise ValueError("a route needs a positive length: all its points coincide")
        self._s_end = np.cumsum(length[keep])  # (S,) arc length at each segment's end
        self._heading = np.arctan2(seg[keep, 1], seg[keep, 0])  # (S,) rad ccw from +x

    def relative(self, progress_m: float, heading_rad: float, lookaheads_m: np.ndarray) -> np.ndarray:
        """Route heading at ``progress_m + lookahead`` minus ``heading_rad``, wrapped to [-pi, pi).

        Past the route's end the last segment's heading holds.
        """
        idx = np.minimum(np.searchsorted(self._s_end, progress_m + lookaheads_m), len(self._s_end) - 1)
        return (self._heading[idx] - heading_rad + math.pi) % (2 * math.pi) - math.pi


class ObservationBuilder:
    """Builds ``{"view": (C*F, h, w) uint8, "vector": (D,) float32}`` once per step.

    ``reset(route_points_m)`` at the start of an episode (clears the frame stack),
    then ``build(...)`` per step, from a class-id map and the ego's state.
    """

    def __init__(self, config: ObservationConfig | None = None) -> None:
        self.config = config or DEFAULT
        self._lookaheads = np.asarray(self.config.lookaheads_m, dtype=np.float64)
        self._stack: list[np.ndarray] = []
        self._route: RouteHeadings | None = None

    def reset(self, route_points_m: np.ndarray) -> None:
        self._route = RouteHeadings(route_points_m)
        self._stack = []

    def build(self, class_ids: np.ndarray, ego: EgoState, progress_m: float, target_speed_mps: float,
              previous: Action) -> dict[str, np.ndarray]:
        """One observation; ``previous`` is the action applied before this state (zeros at reset)."""
        if self._route is None:
            raise RuntimeError("ObservationBuilder.build before reset: call reset(route_points_m) first")
        view = semantic_view(class_ids, self.config)
        # the last (frames - 1) * frame_step + 1 views, oldest first; after a reset they are all
        # the first view, so the shape never changes
        step = self.config.frame_step
        span = (self.config.frames - 1) * step + 1
        self._stack = (self._stack or [view] * span)[1:] + [view]
        scale = self.config.speed_scale_mps
        headings = self._route.relative(progress_m, ego.heading_rad, self._lookaheads) / math.pi
        last = [previous.steer, previous.pedal] if self.config.previous_action else []
        vector = np.concatenate([[ego.speed_mps / scale, target_speed_mps / scale], headings, last])
        return {
            "view": np.concatenate(self._stack[::step], axis=0) if self.config.frames > 1 else view,
            "vector": np.clip(vector, -1.0, 1.0).astype(np.float32),
        }
