"""The policy's observation: the semantic view, route headings, the builder; and the action mapping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgepilot.perception.classes import IGNORE, SEGMENTATION
from edgepilot.sim.agent.action import Action, to_control
from edgepilot.sim.agent.observation import (
    ObservationBuilder,
    ObservationConfig,
    RouteHeadings,
    class_ids_from_tags,
    semantic_view,
)
from edgepilot.sim.tags import TAG_IDS
from edgepilot.sim.types import Control, EgoState

CLASS = {name: k for k, name in enumerate(SEGMENTATION.names)}
ROAD, LINES, VEHICLES, OTHER = range(4)  # the default channel order


def scene() -> tuple[np.ndarray, np.ndarray]:
    """A 96x192 label image in CARLA tags and the class-id map written by hand for it."""
    tags = np.full((96, 192), TAG_IDS["Sky"], np.uint8)
    ids = np.full((96, 192), CLASS["sky"], np.uint8)
    rows = [  # (rows, columns, tag, class)
        (slice(48, 96), slice(None), "Terrain", "terrain"),
        (slice(56, 96), slice(40, 152), "Roads", "road"),
        (slice(56, 96), slice(96, 98), "RoadLine", "road_line"),
        (slice(50, 62), slice(60, 80), "Car", "vehicle"),
        (slice(44, 62), slice(110, 130), "Truck", "vehicle"),
        (slice(52, 58), slice(0, 40), "GuardRail", "barrier"),
        (slice(20, 60), slice(170, 176), "Pole", "pole_sign"),
        (slice(0, 4), slice(0, 8), "Unlabeled", None),
    ]
    for r, c, tag, name in rows:
        tags[r, c] = TAG_IDS[tag]
        ids[r, c] = IGNORE if name is None else CLASS[name]
    return tags, ids


def test_ground_truth_tags_and_predicted_class_ids_give_the_same_view():
    tags, ids = scene()
    assert np.array_equal(class_ids_from_tags(tags), ids)
    from_tags, from_ids = semantic_view(class_ids_from_tags(tags)), semantic_view(ids)
    assert from_ids.shape == (4, 48, 96) and from_ids.dtype == np.uint8
    assert np.array_equal(from_tags, from_ids)


def test_channels_are_the_share_of_each_cell_in_their_classes():
    _, ids = scene()
    view = semantic_view(ids).astype(int)
    assert view[ROAD, 40, 30] == 255 and view[ROAD, 10, 30] == 0  # road below, sky above
    assert view[LINES, 40, 48] == 255  # the 2-pixel line fills its 2x2 cells
    half = np.zeros((96, 192), np.uint8)
    half[:, 1::2] = CLASS["road_line"]  # every other column: half of each 2x2 cell
    assert np.all(np.abs(semantic_view(half)[LINES].astype(int) - 128) <= 1)
    assert view[VEHICLES, 27, 35] == 255 and view[VEHICLES, 25, 60] == 255  # car and truck: one channel
    assert view[OTHER, 27, 10] == 255 and view[OTHER, 20, 86] == 255  # guard rail and pole
    assert view[:, 0, 0].sum() == 0  # unlabeled pixels are background
    assert view[:, 10, 30].sum() == 0 and view[:, 45, 10].sum() == 0  # sky, terrain: background


def test_the_view_does_not_depend_on_the_input_resolution():
    _, ids = scene()
    big = np.repeat(np.repeat(ids, 4, axis=0), 4, axis=1)  # a 384x768 prediction of the same scene
    diff = semantic_view(big).astype(int) - semantic_view(ids).astype(int)
    assert np.abs(diff).max() <= 1


def test_crop_top_drops_the_sky_rows():
    _, ids = scene()
    cfg = ObservationConfig(height=24, width=96, crop_top=0.5)
    view = semantic_view(ids, cfg)
    assert view.shape == (4, 24, 96)
    assert np.array_equal(view, semantic_view(ids[48:], ObservationConfig(height=24, width=96)))


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="not a class"):
        semantic_view(np.zeros((8, 8), np.uint8), ObservationConfig(channels=(("x", ("roads",)),)))
    with pytest.raises(ValueError, match="crop_top"):
        ObservationConfig(crop_top=1.0)
    with pytest.raises(ValueError):
        ObservationConfig(frames=0)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        semantic_view(np.zeros((8, 8, 3), np.uint8))


def test_route_headings_look_ahead_along_the_route():
    route = RouteHeadings(np.array([[0.0, 0.0], [20.0, 0.0], [20.0, 40.0]]))  # east 20 m, then north
    ahead = np.array([10.0, 30.0, 500.0])
    assert np.allclose(route.relative(0.0, 0.0, ahead), [0.0, math.pi / 2, math.pi / 2])
    assert np.allclose(route.relative(0.0, math.pi / 2, ahead), [-math.pi / 2, 0.0, 0.0])
    assert np.allclose(route.relative(15.0, 0.0, np.array([0.0, 10.0])), [0.0, math.pi / 2])


def test_builder_vector_and_frame_stack():
    cfg = ObservationConfig(frames=3)
    builder = ObservationBuilder(cfg)
    builder.reset(np.array([[0.0, 0.0], [100.0, 0.0]]))
    _, ids = scene()
    ego = EgoState(x_m=0.0, y_m=0.0, heading_rad=0.1, speed_mps=20.0)
    first = builder.build(ids, ego, 0.0, 10.0, Action())
    assert first["view"].shape == cfg.view_shape == (12, 48, 96)
    assert all(np.array_equal(first["view"][4 * k:4 * k + 4], semantic_view(ids)) for k in range(3))
    assert first["vector"].dtype == np.float32 and first["vector"].shape == (cfg.vector_size,)
    assert np.allclose(first["vector"], [0.5, 0.25, -0.1 / math.pi, -0.1 / math.pi, 0.0, 0.0])
    empty = np.full_like(ids, CLASS["sky"])
    second = builder.build(empty, ego, 1.0, 10.0, Action(steer=0.5, pedal=-0.25))
    assert np.array_equal(second["view"][:8], first["view"][4:]) and second["view"][8:].sum() == 0
    assert np.allclose(second["vector"][-2:], [0.5, -0.25])
    fast = builder.build(ids, EgoState(0.0, 0.0, 0.0, 90.0), 0.0, 10.0, Action())
    assert fast["vector"][0] == 1.0  # clipped to the space


def test_builder_needs_a_route_first():
    with pytest.raises(RuntimeError, match="reset"):
        ObservationBuilder().build(np.zeros((4, 4), np.uint8), EgoState(0, 0, 0, 0), 0.0, 1.0, Action())


# -- action ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "control"), [
    ((0.5, 0.7), Control(steer=0.5, throttle=0.7, brake=0.0)),
    ((-1.0, -0.4), Control(steer=-1.0, throttle=0.0, brake=0.4)),
    ((3.0, -5.0), Control(steer=1.0, throttle=0.0, brake=1.0)),  # clipped
    ((float("nan"), float("nan")), Control()),  # NaN: no steer, no pedal
    ((0.0, 0.0), Control()),
])
def test_action_maps_to_one_control(values, control):
    for got in (to_control(np.array(values, np.float32)), Action.from_array(values).to_control()):
        assert (got.steer, got.throttle, got.brake) == pytest.approx((control.steer, control.throttle, control.brake))


def test_action_round_trips_through_control_and_checks_its_size():
    a = Action.from_array([-0.25, 0.5])
    assert Action.from_control(a.to_control()) == a
    assert Action.from_control(Control(steer=0.1, throttle=0.2, brake=0.5)) == Action(0.1, pytest.approx(-0.3))
    assert a.to_array().dtype == np.float32 and a.to_array().tolist() == [-0.25, 0.5]
    with pytest.raises(ValueError, match="steer, pedal"):
        Action.from_array([0.1, 0.2, 0.3])


def test_frame_step_stacks_views_that_many_steps_apart():
    # frames=2, frame_step=3: the view of 3 steps ago beside the current one
    builder = ObservationBuilder(ObservationConfig(frames=2, frame_step=3))
    builder.reset(np.array([[0.0, 0.0], [100.0, 0.0]]))
    _, ids = scene()
    ego = EgoState(x_m=0.0, y_m=0.0, heading_rad=0.0, speed_mps=10.0)
    # step k shows the scene with k columns cleared to sky, so each step's view differs
    views, stacks = [], []
    for k in range(6):
        frame = ids.copy()
        frame[:, : 16 * k] = CLASS["sky"]
        views.append(semantic_view(frame))
        stacks.append(builder.build(frame, ego, 0.0, 10.0, Action())["view"])
    assert all(stacks[k].shape == (8, 48, 96) for k in range(6))
    for k in range(6):
        assert np.array_equal(stacks[k][4:], views[k])
        assert np.array_equal(stacks[k][:4], views[max(k - 3, 0)])  # the first view until 3 steps passed
    assert not np.array_equal(views[2], views[3])
    with pytest.raises(ValueError, match="frame_step"):
        ObservationConfig(frame_step=0)
