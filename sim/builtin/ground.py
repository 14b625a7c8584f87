"""World-anchored ground textures: road, sidewalk and terrain surfaces sampled in world metres.

The world is flat, so the ground point a pixel below the horizon sees depends only
on the camera (intrinsics, mount height, pitch). ``GroundPainter`` precomputes those
points once per camera, in metres ahead of and to the left of the camera; per frame
it turns them by the ego pose into world coordinates and samples tileable noise
there with ``cv2.remap``, so the texture slides across the image as the road does.

The noise has three octaves (fine grain, mottling, blotches), each a periodic tile
with its own texel size. A pixel far away covers many texels of an octave (rows
foreshorten quickly); sampling that octave at one point would shimmer as the ego
moves, so each octave fades to the mean colour once the pixel footprint exceeds its
texels, a band-limited stand-in for mip-mapping. Fog and lighting are per row, as
before: the mean colour of a row is the old flat colour, the texture adds around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edgepilot.sim.builtin.appearance import Appearance
from edgepilot.sim.builtin.camera import PinholeCamera

TILE = 256  # texels per tile side; a power of two so wrapping is a bitwise and
TEXEL_M = (0.02, 0.10, 0.60)  # octaves: grain, mottling, blotches
MAP_RANGE_M = 250.0  # ground points are clamped to this distance (every octave has faded there)
# octave weights per surface: terrain (grass, dirt) is blotchier than asphalt
ROAD_MIX = (0.6, 0.5, 0.7)
TERRAIN_MIX = (0.5, 0.7, 1.0)


@dataclass(frozen=True, slots=True)
class GroundTexture:
    """Per-episode noise tiles: one (TILE, TILE) float32 tile per octave, zero mean, unit std."""

    tiles: tuple[np.ndarray, ...]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> GroundTexture:
        """Draw the episode's tiles; the same generator state gives the same tiles."""
        return cls(tuple(_periodic_noise(rng, TILE, sigma) for sigma in (0.7, 1.0, 1.5)))


def _periodic_noise(rng: np.random.Generator, n: int, sigma_texels: float) -> np.ndarray:
    """(n, n) float32 white noise blurred by a Gaussian of ``sigma_texels`` with wrap-around.

    Filtering in the Fourier domain makes the tile periodic, so it tiles without seams.
    """
    spectrum = np.fft.rfft2(rng.standard_normal((n, n)))
    fy, fx = np.fft.fftfreq(n)[:, None], np.fft.rfftfreq(n)[None, :]
    noise = np.fft.irfft2(spectrum * np.exp(-2.0 * (math.pi * sigma_texels) ** 2 * (fx**2 + fy**2)), s=(n, n))
    return ((noise - noise.mean()) / noise.std()).astype(np.float32)


def ground_points(camera: PinholeCamera, first_row: int) -> tuple[np.ndarray, np.ndarray]:
    """(forward_m, left_m), each (H - first_row, W) float32: where each pixel's ray meets z = 0.

    Relative to the camera, in the ego's heading frame. Pixel (u, v) is the image point
    (u, v), as in ``PinholeCamera.project`` and the rasteriser. Points are clamped to
    ``MAP_RANGE_M`` so texel coordinates stay inside remap's 16-bit range.
    """
    v = np.arange(first_row, camera.height, dtype=np.float64)[:, None]
    u = np.arange(camera.width, dtype=np.float64)[None, :]
    dx, dy = (u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy
    cp, sp = math.cos(camera.pitch), math.sin(camera.pitch)
    down = np.maximum(sp + dy * cp, 1e-6)  # how fast the ray descends per unit of optical depth
    t = camera.config.z_m / down
    forward, left = t * (cp - dy * sp), -t * dx
    scale = np.minimum(1.0, MAP_RANGE_M / np.maximum(np.hypot(forward, left), 1e-9))
    return (forward * scale).astype(np.float32), (left * scale).astype(np.float32)


def octave_fades(depth_m: np.ndarray, f_px: float) -> np.ndarray:
    """(R, len(TEXEL_M)) weights in 0..1 per row and octave against aliasing.

    ``depth_m`` (R,) is each row's ground distance. A row's footprint is the ground
    it spans: along the view (the depth step between rows) or across (depth / f).
    An octave is kept whole while the footprint is under one texel and gone at three.
    """
    step = np.abs(np.gradient(depth_m)) if len(depth_m) > 1 else np.zeros_like(depth_m)
    footprint = np.maximum(step, depth_m / f_px)[:, None]
    texel = np.array(TEXEL_M)[None, :]
    return np.clip((3.0 * texel - footprint) / (2.0 * texel), 0.0, 1.0)


class GroundPainter:
    """Textured ground surfaces for one camera.

    ``__init__`` precomputes the ground point of every pixel below the horizon,
    ``begin_episode`` the per-row colours for a look, ``sample`` the noise seen from a
    pose; ``paint`` then writes one surface's lit, fogged, textured RGB into rows
    ``first_row:`` of a frame-sized buffer. Nothing full-size is allocated per frame.
    """

    def __init__(self, camera: PinholeCamera) -> None:
        self.camera = camera
        depth = camera.ground_depth_per_row()
        finite = np.flatnonzero(np.isfinite(depth))
        self.first_row = int(finite[0]) if len(finite) else camera.height
        self.depth_m = depth[self.first_row:]  # (R,) per ground row, as the fog has always used
        self.forward_m, self.left_m = ground_points(camera, self.first_row)  # (R, W) each
        shape = self.forward_m.shape
        self._fades = octave_fades(self.depth_m, camera.fx).astype(np.float32) if shape[0] else None
        # an octave is sampled only from the first row where it has not faded (fine grain
        # lives in the bottom rows only); the rows above stay zero
        self._starts = ([int(np.argmax(f > 0)) if f.any() else shape[0] for f in self._fades.T]
                        if self._fades is not None else [])
        self._map_x, self._map_y = np.empty(shape, np.float32), np.empty(shape, np.float32)
        self._map_int = np.empty(shape + (2,), np.int16)  # remap's fixed-point maps
        self._map_frac = np.empty(shape, np.uint16)
        self._octaves = [np.zeros(shape, np.float32) for _ in TEXEL_M]
        self._noise = {"road": np.empty(shape, np.float32), "terrain": np.empty(shape, np.float32)}
        self._delta = np.empty(shape + (3,), np.float32)
        self._weights: np.ndarray | None = None
        self._means: dict[str, np.ndarray] = {}
        self._gains: dict[str, np.ndarray] = {}  # (4,) float64: a per-channel scalar for cv2
        self._texture: GroundTexture | None = None

    def begin_episode(self, look: Appearance, texture: GroundTexture) -> None:
        """Per-row mean colours and octave weights for this episode's look."""
        self._texture = texture
        haze = 1.0 - np.exp(-self.depth_m / look.visibility_m)  # (R,) share of fog colour
        if self._fades is not None:
            # the texture is fogged and contrast-stretched like the colour it modulates
            self._weights = (self._fades * (look.contrast * (1.0 - haze))[:, None]).astype(np.float32)
        shape = self.forward_m.shape
        surfaces = {"road": (look.road_rgb, look.texture_strength),
                    "sidewalk": (look.sidewalk_rgb, look.texture_strength),
                    "terrain": (look.terrain_rgb, 2.0 * look.texture_strength)}
        for name, (rgb, strength) in surfaces.items():
            base = np.array(rgb)
            fogged = base * (1.0 - haze[:, None]) + np.array(look.fog_rgb) * haze[:, None]  # (R, 3)
            lit = look.contrast * (fogged - 128.0) + 128.0 + look.brightness  # clipped by paint
            self._means[name] = np.ascontiguousarray(
                np.broadcast_to(lit[:, None, :], shape + (3,)), dtype=np.float32)
            self._gains[name] = np.append(base * strength, 0.0)

    def sample(self, pose: tuple[float, float, float]) -> None:
        """Sample every octave at the ground points seen from ego ``pose`` (x_m, y_m, heading_rad)."""
        if self._weights is None or self._texture is None:
            return
        x, y, heading = pose
        c, s = math.cos(heading), math.sin(heading)
        cam_x, cam_y = x + self.camera.config.x_m * c, y + self.camera.config.x_m * s
        for k, (texel, tile) in enumerate(zip(TEXEL_M, self._texture.tiles, strict=True)):
            r = self._starts[k]
            if r == len(self.depth_m):
                continue  # faded everywhere: too coarse a camera for this octave
            map_x, map_y, map_int, map_frac = (self._map_x[r:], self._map_y[r:], self._map_int[r:],
                                               self._map_frac[r:])
            # the camera's own texel position wraps in float64; per pixel offsets stay < 2^15
            cv2.addWeighted(self.forward_m[r:], c / texel, self.left_m[r:], -s / texel,
                            (cam_x / texel) % TILE, dst=map_x)
            cv2.addWeighted(self.forward_m[r:], s / texel, self.left_m[r:], c / texel,
                            (cam_y / texel) % TILE, dst=map_y)
            cv2.convertMaps(map_x, map_y, cv2.CV_16SC2, dstmap1=map_int, dstmap2=map_frac)
            # wrapping the integer texel into the tile keeps remap on its fast in-range path
            np.bitwise_and(map_int, TILE - 1, out=map_int)
            octave = self._octaves[k][r:]
            cv2.remap(tile, map_int, map_frac, cv2.INTER_LINEAR, dst=octave, borderMode=cv2.BORDER_WRAP)
            np.multiply(octave, self._weights[r:, k:k + 1], out=octave)
        for name, mix in (("road", ROAD_MIX), ("terrain", TERRAIN_MIX)):
            noise = self._noise[name]
            cv2.addWeighted(self._octaves[0], mix[0], self._octaves[1], mix[1], 0.0, dst=noise)
            cv2.scaleAdd(self._octaves[2], mix[2], noise, dst=noise)

    def paint(self, surface: str, out: np.ndarray) -> None:
        """Write ``surface`` ("road", "sidewalk", "terrain") into ``out`` (R, W, 3) uint8.

        ``out`` is usually ``frame[first_row:]``; call ``sample`` first for the pose.
        """
        if self._weights is None:
            return
        noise = self._noise["terrain" if surface == "terrain" else "road"]
        cv2.merge([noise, noise, noise], dst=self._delta)
        cv2.multiply(self._delta, self._gains[surface], dst=self._delta)
        cv2.add(self._means[surface], self._delta, dst=out, dtype=cv2.CV_8U)
