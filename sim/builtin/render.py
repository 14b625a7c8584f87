"""Rasterise the builtin world: RGB, CARLA-tag labels and occlusion-aware 2D boxes.

One pass of draw calls writes all three buffers, so labels and boxes agree with
the RGB pixel for pixel. Ground quads are drawn first (flat world: nothing on
the ground can hide an object), then boxes far to near (painter's algorithm).
Ground surfaces take their world-anchored textures from ``GroundPainter``.
Boxes are read back from the instance buffer, so a hidden vehicle has none.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgepilot.runtime.errors import SimulatorError
from edgepilot.sim.builtin.appearance import NOISE_FRAMES, Appearance, Backdrop
from edgepilot.sim.builtin.camera import NEAR_M, PinholeCamera, clip_near, clip_rect
from edgepilot.sim.builtin.geometry import BoxSet, GroundLayer, StaticWorld
from edgepilot.sim.builtin.ground import GroundPainter, GroundTexture
from edgepilot.sim.tags import TAG_IDS
from edgepilot.sim.types import Box2D

SHIFT = 4  # sub-pixel bits for cv2.fillConvexPoly
# box corners: bottom 0..3 then top 4..7, each (+l,+w), (+l,-w), (-l,-w), (-l,+w) in the box frame
_CORNER_SIGNS = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64)
_FACES = np.array([[0, 1, 5, 4], [2, 3, 7, 6], [3, 0, 4, 7], [1, 2, 6, 5], [4, 5, 6, 7]])
_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], dtype=np.float64)


class Renderer:
    """Owns the frame buffers for one camera; ``begin_episode`` then ``render`` per frame."""

    def __init__(self, camera: PinholeCamera, far_m: float = 180.0) -> None:
        self.camera, self.far_m = camera, far_m
        h, w = camera.height, camera.width
        self.rgb = np.zeros((h, w, 3), np.uint8)
        self.labels = np.zeros((h, w), np.uint8)
        self.instances = np.zeros((h, w), np.uint16)
        self._guard = (-2.0 * w, 3.0 * w, 3.0 * h)  # lo, hi_x, hi_y of the rasterisable band
        self._tan_half = (w / 2) / camera.fx
        self.ground = GroundPainter(camera)
        rows = h - self.ground.first_row
        self._surface = np.empty((rows, w, 3), np.uint8)  # one textured surface before masking
        self._mask = np.empty((rows, w), np.uint8)
        self.world: StaticWorld | None = None
        self.look: Appearance | None = None
        self.backdrop: Backdrop | None = None
        self._labels_only = False
        self._ground_labels: tuple[np.ndarray, np.ndarray, np.ndarray, list[int]] | None = None

    def begin_episode(self, world: StaticWorld, look: Appearance, backdrop: Backdrop,
                      texture: GroundTexture | None) -> None:
        """``texture`` None (with ``label_backdrop``'s backdrop): an episode for ``render_labels`` only."""
        self.world, self.look, self.backdrop = world, look, backdrop
        self._labels_only = texture is None
        if texture is not None:
            self.ground.begin_episode(look, texture)
        # render_labels draws the three ground layers as one, in the same order (one pass of
        # culling and projection instead of three: the same pixels)
        layers = (world.road, world.sidewalks, world.lines)
        self._ground_labels = (
            np.concatenate([layer.polys for layer in layers]),
            np.concatenate([layer.centres for layer in layers]),
            np.concatenate([layer.radii for layer in layers]),
            np.concatenate([np.full(len(layer.polys), layer.tag, np.int64) for layer in layers]).tolist(),
        )

    def render(self, pose: tuple[float, float, float], vehicles: BoxSet, frame: int
               ) -> tuple[np.ndarray, np.ndarray, tuple[Box2D, ...]]:
        """Draw the frame seen from ego ``pose`` (x_m, y_m, heading_rad).

        Returns copies of (HxWx3 uint8 RGB, HxW uint8 tag ids, boxes). ``vehicles``
        carries actor ids >= 1; their boxes come back sorted by actor id.
        """
        world, look, backdrop = self.world, self.look, self.backdrop
        if world is None or look is None or backdrop is None:
            raise SimulatorError("Renderer.render before begin_episode: call begin_episode first")
        if self._labels_only:
            raise SimulatorError("Renderer.render in an episode begun for labels only (no texture): "
                                 "call render_labels, or begin_episode with a GroundTexture")
        self.camera.set_pose(*pose)
        np.copyto(self.rgb, backdrop.rgb)
        np.copyto(self.labels, backdrop.labels)
        self.instances.fill(0)
        ground_rgb = self.rgb[self.ground.first_row:]
        self.ground.sample(pose)
        self.ground.paint("terrain", ground_rgb)
        self._draw_ground(world.road, look)
        self._draw_ground(world.sidewalks, look)
        self._paint_surface("road", TAG_IDS["Roads"])
        self._paint_surface("sidewalk", TAG_IDS["SideWalks"])
        self._draw_ground(world.lines, look)
        rois = self._draw_boxes(world.props, vehicles, look)
        boxes = self._read_boxes(rois, vehicles)
        self._finish(frame, look, backdrop)
        return self.rgb.copy(), self.labels.copy(), boxes

    def render_labels(self, pose: tuple[float, float, float], vehicles: BoxSet) -> np.ndarray:
        """Only the label image seen from ego ``pose``: a copy, HxW uint8 tag ids.

        The same draw calls as ``render`` write the same labels, without the RGB, the
        ground textures, the camera effects or the instance buffer (so no boxes).
        """
        world, look, backdrop = self.world, self.look, self.backdrop
        if world is None or look is None or backdrop is None:
            raise SimulatorError("Renderer.render_labels before begin_episode: call begin_episode first")
        self.camera.set_pose(*pose)
        np.copyto(self.labels, backdrop.labels)
        assert self._ground_labels is not None  # set with the world by begin_episode
        polys, centres, radii, tags = self._ground_labels
        idx, pixels = self._ground_pixels(polys, centres, radii)
        for k, px in zip(idx.tolist(), pixels, strict=True):
            if px is not None:
                cv2.fillConvexPoly(self.labels, px, tags[k], cv2.LINE_8, SHIFT)
        self._draw_boxes(world.props, vehicles, look, rgb=False)
        return self.labels.copy()

    def _paint_surface(self, surface: str, tag: int) -> None:
        """Copy the textured ``surface`` where the labels say ``tag`` (ground rows only)."""
        ground = self.ground.first_row
        if ground == self.labels.shape[0]:
            return  # the camera looks above the horizon
        np.equal(self.labels[ground:], tag, out=self._mask)  # 0/1: copyTo copies where non-zero
        if cv2.countNonZero(self._mask):
            self.ground.paint(surface, self._surface)
            cv2.copyTo(self._surface, self._mask, self.rgb[ground:])

    def _visible(self, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
        """Indices of things whose bounding circle may fall inside the view frustum."""
        cam = self.camera
        rel = centres - cam.position[:2]
        fwd_axis = cam._rot[2, :2] / max(float(np.linalg.norm(cam._rot[2, :2])), 1e-9)
        fwd = rel @ fwd_axis
        side = np.abs(rel @ np.array([-fwd_axis[1], fwd_axis[0]]))
        ok = (fwd > -radii) & (fwd < self.far_m + radii) & (side < fwd * self._tan_half + radii * 1.5)
        return np.flatnonzero(ok)

    def _batch_pixels(self, cam: np.ndarray) -> list[np.ndarray | None]:
        """(K, V, 3) camera-frame convex polygons -> fixed-point pixels per polygon or None.

        The common case (in front of the camera, inside the guard band) is projected
        in one batch; only polygons crossing the near plane or the band are clipped.
        """
        if not len(cam):
            return []
        z = cam[..., 2]
        front, behind = (z >= NEAR_M).all(axis=1), (z < NEAR_M).all(axis=1)
        px = self.camera.project(np.where((z < NEAR_M)[..., None], NEAR_M, cam))
        lo, hi_x, hi_y = self._guard
        x, y = px[..., 0], px[..., 1]
        inband = (px >= lo).all(axis=(1, 2)) & (x <= hi_x).all(axis=1) & (y <= hi_y).all(axis=1)
        h, w = self.labels.shape
        outside = front & ((x < 0).all(axis=1) | (x > w).all(axis=1) | (y < 0).all(axis=1) | (y > h).all(axis=1))
        fixed = np.round(px * (1 << SHIFT)).astype(np.int32)
        skip, direct = np.asarray(behind | outside).tolist(), np.asarray(front & inband).tolist()
        out: list[np.ndarray | None] = []
        for k in range(len(cam)):
            if skip[k]:
                out.append(None)
            elif direct[k]:
                out.append(fixed[k])
            else:
                out.append(self._pixels(cam[k]))
        return out

    def _pixels(self, cam_poly: np.ndarray) -> np.ndarray | None:
        """(N, 3) camera-frame convex polygon -> int32 fixed-point pixels, or None if unseen."""
        if (cam_poly[:, 2] < NEAR_M).any():
            cam_poly = clip_near(cam_poly)
            if len(cam_poly) < 3:
                return None
        px = self.camera.project(cam_poly)
        lo, hi_x, hi_y = self._guard
        if (px < lo).any() or (px[:, 0] > hi_x).any() or (px[:, 1] > hi_y).any():
            px = clip_rect(px, lo, hi_x, hi_y)
            if len(px) < 3:
                return None
        return np.round(px * (1 << SHIFT)).astype(np.int32)

    def _ground_pixels(self, polys: np.ndarray, centres: np.ndarray, radii: np.ndarray
                       ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """(indices of the quads that may be in view, their fixed-point pixels or None)."""
        idx = self._visible(centres, radii)
        if not len(idx):
            return idx, []
        sel = polys[idx]
        cam = self.camera.to_camera(np.concatenate([sel, np.zeros(sel.shape[:2] + (1,))], axis=2))
        return idx, self._batch_pixels(cam)

    def _draw_ground(self, layer: GroundLayer, look: Appearance) -> None:
        idx, pixels = self._ground_pixels(layer.polys, layer.centres, layer.radii)
        cols = None
        if layer.rgb is not None and len(idx):
            dist = np.linalg.norm(layer.centres[idx] - self.camera.position[:2], axis=1)
            cols = look.finish(layer.rgb[idx], dist).tolist()
        for k, px in enumerate(pixels):
            if px is None:
                continue
            cv2.fillConvexPoly(self.labels, px, layer.tag, cv2.LINE_8, SHIFT)
            if cols is not None:
                cv2.fillConvexPoly(self.rgb, px, cols[k], cv2.LINE_8, SHIFT)

    def _draw_boxes(self, props: BoxSet, vehicles: BoxSet, look: Appearance, rgb: bool = True
                    ) -> dict[int, list[int]]:
        """Draw props and vehicles far to near; returns pixel ROIs (x0, y0, x1, y1) per actor.

        ``rgb=False`` draws the labels only (no colours, no instances, no ROIs).
        """
        sel = self._visible(props.centre, np.hypot(props.half_len, props.half_wid))
        boxes = _concat(_take(props, sel), vehicles)
        if not len(boxes):
            return {}
        corners = _corners(boxes)  # (N, 8, 3) world
        cam = self.camera.to_camera(corners)
        order = np.argsort(-_sort_key(boxes, self.camera.position), kind="stable")
        faces = corners[:, _FACES]  # (N, 5, 4, 3)
        normals = _rotate(_NORMALS[None], boxes.yaw[:, None])  # (N, 5, 3)
        seen = np.einsum("nfk,nfk->nf", faces.mean(axis=2) - self.camera.position, normals) < 0
        if not rgb:
            self._fill_silhouettes(boxes, cam, order, seen)
            return {}
        nn, ff = np.nonzero(seen[order])
        nn = order[nn]
        pixels = self._batch_pixels(cam[nn[:, None], _FACES[ff]])
        tags = boxes.tag.tolist()
        colours = self._shade(boxes, normals, look)  # (N, 5, 3)
        rois: dict[int, list[int]] = {}
        aids, cols = boxes.actor_id.tolist(), colours.tolist()
        for n, f, px in zip(nn.tolist(), ff.tolist(), pixels, strict=True):
            if px is None:
                continue
            aid = aids[n]
            cv2.fillConvexPoly(self.rgb, px, cols[n][f], cv2.LINE_8, SHIFT)
            cv2.fillConvexPoly(self.labels, px, tags[n], cv2.LINE_8, SHIFT)
            cv2.fillConvexPoly(self.instances, px, max(aid, 0), cv2.LINE_8, SHIFT)
            if aid > 0:
                _grow(rois, aid, px >> SHIFT)
        return rois

    def _fill_silhouettes(self, boxes: BoxSet, cam: np.ndarray, order: np.ndarray, seen: np.ndarray) -> None:
        """Labels only: one fill per box, far to near, instead of one per visible face.

        A box (every corner in front of the near plane) projects onto the convex hull of
        its projected corners, which is the union of its visible faces, all of one tag;
        the hull's edges are those faces' outer edges with the same fixed-point ends, so
        the rasterised pixels are the same (``test_labels_only_rendering_gives_the_full_
        renderers_labels`` pins it) but for rare single pixels where a face seen almost
        edge-on rasterises as a one-pixel sliver outside the hull (seen once, on a guard rail,
        in an ad-hoc check over the four scenarios). Boxes that need clipping keep the per-face path, and
        so do boxes whose bottom is above the camera (signs): their bottom face is not one
        of ``_FACES``, so the per-face render leaves it open and the hull would not.
        """
        order = order[seen[order].any(axis=1)]  # boxes with a visible face, far to near
        if not len(order):
            return
        pts = cam[order]  # (K, 8, 3)
        z = pts[..., 2]
        front = (z >= NEAR_M).all(axis=1)
        px = self.camera.project(np.where((z < NEAR_M)[..., None], NEAR_M, pts))
        lo, hi_x, hi_y = self._guard
        x, y = px[..., 0], px[..., 1]
        low = boxes.z0[order] <= self.camera.position[2]
        direct = front & low & (px >= lo).all(axis=(1, 2)) & (x <= hi_x).all(axis=1) & (y <= hi_y).all(axis=1)
        h, w = self.labels.shape
        outside = front & ((x < 0).all(axis=1) | (x > w).all(axis=1) | (y < 0).all(axis=1) | (y > h).all(axis=1))
        fixed = np.round(px * (1 << SHIFT)).astype(np.int32)
        # the boxes to clip face by face: their visible faces in one batch, box after box
        clipped = order[~direct & ~outside]
        nn, ff = np.nonzero(seen[clipped])
        faces = iter(self._batch_pixels(cam[clipped[nn][:, None], _FACES[ff]]))
        face_counts = seen[clipped].sum(axis=1).tolist()
        tags, labels, c = boxes.tag.tolist(), self.labels, 0
        for k, (n, d, out) in enumerate(zip(order.tolist(), direct.tolist(), outside.tolist(), strict=True)):
            if out:
                continue
            if d:
                cv2.fillConvexPoly(labels, cv2.convexHull(fixed[k]), tags[n], cv2.LINE_8, SHIFT)
                continue
            for _ in range(face_counts[c]):
                pix = next(faces)
                if pix is not None:
                    cv2.fillConvexPoly(labels, pix, tags[n], cv2.LINE_8, SHIFT)
            c += 1

    def _shade(self, boxes: BoxSet, normals: np.ndarray, look: Appearance) -> np.ndarray:
        """(N, 5, 3) lit, fogged face colours: Lambert shading from the episode's sun."""
        lambert = np.clip(normals @ np.array(look.sun_dir), 0.0, 1.0)
        intensity = 0.5 + 0.5 * lambert
        dist = np.linalg.norm(boxes.centre - self.camera.position[:2], axis=1)
        return look.finish(boxes.rgb[:, None] * intensity[..., None], dist[:, None])

    def _read_boxes(self, rois: dict[int, list[int]], vehicles: BoxSet) -> tuple[Box2D, ...]:
        """A box per actor around its visible pixels in the instance buffer."""
        h, w = self.labels.shape
        tags = dict(zip(vehicles.actor_id.tolist(), vehicles.tag.tolist(), strict=True))
        out = []
        for aid in sorted(rois):
            x0, y0, x1, y1 = rois[aid]
            x0, y0, x1, y1 = max(x0 - 1, 0), max(y0 - 1, 0), min(x1 + 2, w), min(y1 + 2, h)
            if x0 >= x1 or y0 >= y1:
                continue
            hit = self.instances[y0:y1, x0:x1] == aid
            rows, cols = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0))
            if len(rows):
                out.append(Box2D(tags[aid], float(x0 + cols[0]), float(y0 + rows[0]),
                                 float(x0 + cols[-1] + 1), float(y0 + rows[-1] + 1), aid))
        return tuple(out)

    def _finish(self, frame: int, look: Appearance, bd: Backdrop) -> None:
        """Camera effects on the RGB only: lens blur and sensor noise."""
        if look.blur_sigma_px > 0:
            cv2.GaussianBlur(self.rgb, (0, 0), look.blur_sigma_px, dst=self.rgb)
        k = frame % NOISE_FRAMES
        cv2.add(self.rgb, bd.noise_add[k], dst=self.rgb)
        cv2.subtract(self.rgb, bd.noise_sub[k], dst=self.rgb)


def _grow(rois: dict[int, list[int]], aid: int, px: np.ndarray) -> None:
    x0, y0 = px.min(axis=0)
    x1, y1 = px.max(axis=0)
    r = rois.get(aid)
    rois[aid] = [int(x0), int(y0), int(x1), int(y1)] if r is None else [
        min(r[0], int(x0)), min(r[1], int(y0)), max(r[2], int(x1)), max(r[3], int(y1))]


def _rotate(v: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rotate (..., 3) vectors about z by ``yaw`` (broadcast)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1],
                     np.broadcast_to(v[..., 2], np.broadcast_shapes(v[..., 2].shape, c.shape))],
                    axis=-1)


def _corners(b: BoxSet) -> np.ndarray:
    """(N, 8, 3) world corners of the boxes."""
    local = _CORNER_SIGNS[None] * np.stack([b.half_len, b.half_wid], axis=1)[:, None]  # (N, 4, 2)
    c, s = np.cos(b.yaw)[:, None], np.sin(b.yaw)[:, None]
    x = b.centre[:, 0:1] + c * local[..., 0] - s * local[..., 1]
    y = b.centre[:, 1:2] + s * local[..., 0] + c * local[..., 1]
    bottom = np.stack([x, y, np.broadcast_to(b.z0[:, None], x.shape)], axis=2)
    top = np.stack([x, y, np.broadcast_to(b.z1[:, None], x.shape)], axis=2)
    return np.concatenate([bottom, top], axis=1)


def _sort_key(b: BoxSet, cam_pos: np.ndarray) -> np.ndarray:
    """Distance from the camera to the nearest point of each footprint (m).

    Parts of one vehicle are consecutive rows with one actor id; a later part (the
    cabin) gets a hair less than the part before it, so it is painted over the body
    it sits on.
    """
    rel = cam_pos[:2] - b.centre
    c, s = np.cos(b.yaw), np.sin(b.yaw)
    lx, ly = c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]
    dx = np.abs(lx) - np.minimum(np.abs(lx), b.half_len)
    dy = np.abs(ly) - np.minimum(np.abs(ly), b.half_wid)
    key = np.hypot(dx, dy)
    later = np.flatnonzero((b.actor_id[1:] == b.actor_id[:-1]) & (b.actor_id[1:] > 0)) + 1
    key[later] = key[later - 1] - 1e-3
    return key


def _take(b: BoxSet, idx: np.ndarray) -> BoxSet:
    return BoxSet(*(getattr(b, f)[idx] for f in BoxSet.__slots__))


def _concat(a: BoxSet, b: BoxSet) -> BoxSet:
    return BoxSet(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in BoxSet.__slots__))
