"""The builtin camera: labels, boxes, determinism, occlusion, handedness, clipping."""

from __future__ import annotations

import cv2
import numpy as np

from edgepilot.sim.builtin.camera import clip_near
from edgepilot.sim.builtin.ground import ground_points
from edgepilot.sim.builtin.world import BuiltinSimulator
from edgepilot.sim.tags import CARLA_TAGS, TAG_IDS
from edgepilot.sim.types import CameraConfig, Control, EgoState
from tests.sim.sim_helpers import SMALL, place


def _frames(sim, seed: int, n: int = 5):
    sim.reset(seed)
    return [sim.step(Control(throttle=0.3)) for _ in range(n)]


def test_labels_are_carla_tags_and_frames_have_many_classes(highway):
    for obs in _frames(highway, 1):
        assert obs.image.shape == (SMALL.height, SMALL.width, 3) and obs.image.dtype == np.uint8
        ids = set(np.unique(obs.labels).tolist())
        assert ids <= set(CARLA_TAGS)
        assert len(ids) > 4
        assert {TAG_IDS["Roads"], TAG_IDS["RoadLine"], TAG_IDS["Sky"], TAG_IDS["Terrain"]} <= ids


def test_boxes_lie_inside_the_image_and_cover_their_class(highway):
    boxes = 0
    for seed in (2, 3):
        for obs in _frames(highway, seed):
            h, w = obs.labels.shape
            for b in obs.boxes:
                assert 0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h
                assert b.tag in (TAG_IDS["Car"], TAG_IDS["Truck"]) and b.actor_id > 0
                crop = obs.labels[int(b.y1):int(b.y2), int(b.x1):int(b.x2)]
                assert (crop == b.tag).any()
                # tight: the box's border rows and columns all touch its class
                assert (crop[0] == b.tag).any() and (crop[-1] == b.tag).any()
                assert (crop[:, 0] == b.tag).any() and (crop[:, -1] == b.tag).any()
                boxes += 1
    assert boxes > 0


def test_same_seed_same_pixels_other_seed_differs(highway):
    a = _frames(highway, 7)[-1]
    b = _frames(highway, 7)[-1]
    c = _frames(highway, 8)[-1]
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert a.boxes == b.boxes
    assert not np.array_equal(a.image, c.image)


def test_near_vehicle_occludes_the_one_behind(highway):
    highway.reset(4)
    near, far = place(highway, [(15.0, 0.0), (30.0, 0.0)])
    both = {b.actor_id: b for b in highway.observe().boxes}
    highway.env.road.vehicles.remove(near)
    alone = {b.actor_id: b for b in highway.observe().boxes}
    aid_far = highway._actor(far)[1]
    aid_near = highway._actor(near)[1]

    def area(b):
        return (b.x2 - b.x1) * (b.y2 - b.y1)

    assert aid_near in both and aid_far in alone
    assert aid_far not in both or area(both[aid_far]) < 0.5 * area(alone[aid_far])
    assert area(both[aid_near]) > area(alone[aid_far])


def test_vehicle_on_the_left_appears_on_the_left(highway):
    highway.reset(5)
    left, right = place(highway, [(20.0, 4.0), (25.0, -4.0)])
    boxes = {b.actor_id: b for b in highway.observe().boxes}
    bl, br = boxes[highway._actor(left)[1]], boxes[highway._actor(right)[1]]
    centre = SMALL.width / 2
    assert (bl.x1 + bl.x2) / 2 < centre < (br.x1 + br.x2) / 2


def test_world_frame_is_right_handed():
    with BuiltinSimulator("highway", SMALL, seed=0, render=False) as sim:
        start = sim.reset(6).ego
        obs = None
        for _ in range(20):
            obs = sim.step(Control(steer=0.3, throttle=0.2))
    # steering right (positive) turns clockwise: heading drops, the ego drifts south (y down)
    assert obs.ego.heading_rad < start.heading_rad - 0.05
    assert obs.ego.y_m < start.y_m - 0.5
    assert obs.ego.x_m > start.x_m + 10


def test_clip_near_cuts_polygons_at_the_near_plane():
    quad = np.array([[-1.0, 1.0, -5.0], [1.0, 1.0, -5.0], [1.0, 1.0, 5.0], [-1.0, 1.0, 5.0]])
    clipped = clip_near(quad, near=0.5)
    assert clipped[:, 2].min() >= 0.5 - 1e-9 and len(clipped) == 4
    assert len(clip_near(quad - np.array([0, 0, 20.0]), near=0.5)) == 0


def _pixels(sim, ego: EgoState, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixels showing world ``points`` (N, 3) from the camera on ``ego``."""
    cam = sim.camera
    cam.set_pose(ego.x_m, ego.y_m, ego.heading_rad)
    px = np.round(cam.project(cam.to_camera(points))).astype(int)
    return px[:, 1], px[:, 0]


def _grey(image: np.ndarray) -> np.ndarray:
    # the blur averages out per-pixel sensor noise, which is fixed in image space
    return cv2.GaussianBlur(image.astype(np.float64).mean(axis=2), (0, 0), 1.5)


def test_road_texture_moves_with_the_world_not_with_the_image(highway):
    highway.reset(0)
    place(highway, [])
    highway.ego.speed = 10.0
    a = highway.step(Control())  # no throttle, no brake: straight on at 10 m/s
    for _ in range(5):
        b = highway.step(Control())
    e = a.ego
    assert 2.0 < b.ego.x_m - e.x_m < 3.0 and abs(b.ego.heading_rad - e.heading_rad) < 1e-6
    # a patch of the ego lane 6-9 m ahead of the camera in frame a, 2.5 m closer in frame b
    fwd, left = (g.ravel() for g in np.meshgrid(np.arange(7.5, 10.5, 0.05), np.arange(-1.0, 1.0, 0.05)))
    c, s = np.cos(e.heading_rad), np.sin(e.heading_rad)
    patch = np.stack([e.x_m + c * fwd - s * left, e.y_m + s * fwd + c * left, 0 * fwd], axis=1)
    (ra, ca), (rb, cb) = _pixels(highway, e, patch), _pixels(highway, b.ego, patch)
    road = (a.labels[ra, ca] == TAG_IDS["Roads"]) & (b.labels[rb, cb] == TAG_IDS["Roads"])
    assert road.mean() > 0.9
    grey_a, grey_b = _grey(a.image), _grey(b.image)
    seen_a = grey_a[ra, ca][road]
    world = np.corrcoef(seen_a, grey_b[rb, cb][road])[0, 1]  # the same ground points in b
    screen = np.corrcoef(seen_a, grey_b[ra, ca][road])[0, 1]  # the same pixels in b
    # image-space texture (the old renderer) gives screen ~ 1.0 and world ~ 0.35 here
    assert world > 0.8 and screen < world - 0.3, (world, screen)


def test_ground_points_project_back_onto_their_pixels(highway):
    cam = highway.camera
    first = highway.renderer.ground.first_row
    fwd, left = ground_points(cam, first)
    cam.set_pose(10.0, -3.0, 0.4)
    c, s = np.cos(0.4), np.sin(0.4)
    x0, y0 = 10.0 + cam.config.x_m * c, -3.0 + cam.config.x_m * s
    world = np.stack([x0 + c * fwd - s * left, y0 + s * fwd + c * left, 0 * fwd], axis=-1)
    px = cam.project(cam.to_camera(world.astype(np.float64)))
    rows, cols = np.mgrid[first:cam.height, 0:cam.width]
    near = np.hypot(fwd, left) < 100.0  # farther points are clamped to MAP_RANGE_M
    assert near.mean() > 0.7
    assert np.abs(px[..., 0] - cols)[near].max() < 0.05 and np.abs(px[..., 1] - rows)[near].max() < 0.05


def test_cameras_that_see_no_sky_or_no_ground_render():
    for pitch_deg, absent in ((40.0, "Sky"), (-30.0, "Roads")):
        camera = CameraConfig(width=128, height=64, pitch_deg=pitch_deg)
        with BuiltinSimulator("highway", camera, seed=1) as sim:
            sim.reset(1)
            obs = sim.step(Control(throttle=0.3))
        assert obs.image.shape == (64, 128, 3)
        assert TAG_IDS[absent] not in np.unique(obs.labels)
