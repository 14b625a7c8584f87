"""The builtin camera: labels, boxes, determinism, occlusion, handedness, clipping."""

from __future__ import annotations

import numpy as np

from sim.builtin.camera import clip_near
from sim.builtin.world import BuiltinSimulator
from sim.tags import CARLA_TAGS, TAG_IDS
from sim.types import Control
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
