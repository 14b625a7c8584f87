"""Per-episode appearance: colours, textures, lighting, fog, blur and sensor noise.

Everything is drawn from one ``numpy.random.Generator`` seeded by the episode, so
the same seed gives the same pixels. Textures live in image space and are
precomputed once per episode; per frame the renderer only copies and blends.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgepilot.sim.builtin.camera import PinholeCamera
from edgepilot.sim.tags import TAG_IDS

CAR_COLOURS = np.array(
    [[200, 200, 205], [30, 30, 35], [150, 20, 25], [20, 50, 130], [230, 230, 230],
     [110, 115, 120], [40, 90, 50], [210, 160, 30], [90, 60, 40], [70, 120, 170]],
    dtype=np.float32,
)
NOISE_FRAMES = 4  # sensor-noise images cycled per frame; regenerating them costs more than a frame


@dataclass(frozen=True, slots=True)
class Appearance:
    """Colours are RGB floats in 0..255 before lighting; distances in metres."""

    road_rgb: tuple[float, float, float]
    terrain_rgb: tuple[float, float, float]
    sidewalk_rgb: tuple[float, float, float]
    line_rgb: tuple[float, float, float]
    sky_top_rgb: tuple[float, float, float]
    fog_rgb: tuple[float, float, float]
    building_rgb: tuple[float, float, float]
    tree_rgb: tuple[float, float, float]
    visibility_m: float  # fog: a colour at this distance is 63 % fog
    brightness: float  # added after contrast, in 0..255 units
    contrast: float
    texture_strength: float  # relative amplitude of the road/terrain noise
    blur_sigma_px: float
    noise_std: float  # sensor noise, 0..255 units
    sun_dir: tuple[float, float, float]  # unit vector towards the light, world frame

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Appearance:
        """Draw a random look for one episode."""

        def jitter(base: tuple[float, float, float], amount: float) -> tuple[float, float, float]:
            c = np.clip(np.array(base) + rng.uniform(-amount, amount, 3), 0, 255)
            return (float(c[0]), float(c[1]), float(c[2]))

        grey = float(rng.uniform(60, 120))
        sun = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.4, 1.2)])
        sun /= np.linalg.norm(sun)
        return cls(
            road_rgb=jitter((grey, grey, grey + 4), 8),
            terrain_rgb=jitter((95, 120, 60), 25),
            sidewalk_rgb=jitter((165, 160, 150), 20),
            line_rgb=jitter((235, 235, 225), 15),
            sky_top_rgb=jitter((90, 140, 200), 30),
            fog_rgb=jitter((200, 205, 210), 20),
            building_rgb=jitter((150, 135, 120), 50),
            tree_rgb=jitter((50, 95, 40), 20),
            visibility_m=float(rng.uniform(180, 700)),
            brightness=float(rng.uniform(-25, 25)),
            contrast=float(rng.uniform(0.8, 1.15)),
            texture_strength=float(rng.uniform(0.05, 0.2)),
            blur_sigma_px=float(rng.choice([0.0, 0.6, 1.0])),
            noise_std=float(rng.uniform(1.0, 6.0)),
            sun_dir=(float(sun[0]), float(sun[1]), float(sun[2])),
        )

    def light(self, rgb: np.ndarray) -> np.ndarray:
        """Apply the episode's contrast and brightness to (..., 3) float colours."""
        return np.clip(self.contrast * (rgb - 128.0) + 128.0 + self.brightness, 0, 255)

    def fog(self, rgb: np.ndarray, distance_m: np.ndarray) -> np.ndarray:
        """Blend (..., 3) colours towards the fog colour by (...) distances."""
        a = 1.0 - np.exp(-np.asarray(distance_m, dtype=np.float64) / self.visibility_m)
        return rgb * (1.0 - a[..., None]) + np.array(self.fog_rgb) * a[..., None]

    def finish(self, rgb: np.ndarray, distance_m: np.ndarray) -> np.ndarray:
        """Fog then lighting: the colour a surface at ``distance_m`` shows on screen."""
        return self.light(self.fog(rgb, distance_m))

    def car_colour(self, rng: np.random.Generator) -> np.ndarray:
        """A plausible paint colour (3,) for a newly seen vehicle."""
        base = CAR_COLOURS[rng.integers(len(CAR_COLOURS))]
        return np.clip(base + rng.uniform(-20, 20, 3), 0, 255)


@dataclass(frozen=True, slots=True)
class Backdrop:
    """Per-episode images: what the camera sees with no road and no objects."""

    rgb: np.ndarray  # HxWx3 uint8: textured sky; flat fogged terrain below (textured per frame)
    labels: np.ndarray  # HxW uint8: Sky above the horizon, Terrain below
    noise_add: tuple[np.ndarray, ...]  # NOISE_FRAMES HxWx3 uint8 positive parts of sensor noise
    noise_sub: tuple[np.ndarray, ...]


def _texture(rng: np.random.Generator, h: int, w: int, strength: float) -> np.ndarray:
    """(H, W, 1) image-space multiplicative texture around 1 (the sky's): blotches plus grain."""
    coarse = cv2.resize(rng.standard_normal((max(h // 16, 2), max(w // 16, 2))).astype(np.float32),
                        (w, h), interpolation=cv2.INTER_CUBIC)
    fine = rng.standard_normal((h, w)).astype(np.float32) * 0.5
    return (1.0 + strength * (coarse + fine))[..., None]


def build_backdrop(look: Appearance, camera: PinholeCamera, rng: np.random.Generator) -> Backdrop:
    """Render the sky, the untextured terrain and the sensor noise for this camera once per episode."""
    h, w = camera.height, camera.width
    depth = camera.ground_depth_per_row()  # (H,)
    sky_rows = ~np.isfinite(depth)
    ground_depth = np.where(sky_rows, 1e4, depth)[:, None] * np.ones((1, w))
    rows = np.arange(h, dtype=np.float64)
    horizon = camera.horizon_row()
    # the sky brightens towards the horizon, where it meets the fog colour
    t = np.clip((horizon - rows) / max(h * 0.6, 1.0), 0.0, 1.0)[:, None, None]
    sky = np.array(look.sky_top_rgb) * t + np.array(look.fog_rgb) * (1 - t)
    sky = np.broadcast_to(sky, (h, w, 3)) * _texture(rng, h, w, 0.02)
    terrain = look.fog(np.broadcast_to(np.array(look.terrain_rgb), (h, w, 3)), ground_depth)
    rgb = np.where(sky_rows[:, None, None], sky, terrain)
    labels = _backdrop_labels(camera)
    noise = [rng.normal(0.0, look.noise_std, (h, w, 3)) for _ in range(NOISE_FRAMES)]
    return Backdrop(
        rgb=look.light(rgb).astype(np.uint8),
        labels=labels,
        noise_add=tuple(np.clip(n, 0, 255).astype(np.uint8) for n in noise),
        noise_sub=tuple(np.clip(-n, 0, 255).astype(np.uint8) for n in noise),
    )


def _backdrop_labels(camera: PinholeCamera) -> np.ndarray:
    """(H, W) uint8: Sky above the horizon, Terrain below."""
    sky_rows = ~np.isfinite(camera.ground_depth_per_row())
    labels = np.where(sky_rows[:, None], TAG_IDS["Sky"], TAG_IDS["Terrain"]).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(labels, (camera.height, camera.width)))


def label_backdrop(camera: PinholeCamera) -> Backdrop:
    """The backdrop's labels alone, for ``Renderer.render_labels``: no colours, no sensor noise
    (``rgb`` is 1x1 black) and no random draws, so a labels-only episode skips their cost."""
    return Backdrop(rgb=np.zeros((1, 1, 3), np.uint8), labels=_backdrop_labels(camera), noise_add=(), noise_sub=())
