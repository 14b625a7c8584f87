"""The class map: every CARLA tag has a class or is ignored, unknown ids are ignored."""

from __future__ import annotations

import numpy as np
import pytest

from edgepilot.perception.classes import DETECTION, IGNORE, SEGMENTATION, ClassGroup, ClassMap
from edgepilot.perception.data.folders import cityscapes_id_map
from edgepilot.perception.tags import CARLA_TAGS, TAG_IDS


def test_every_carla_tag_is_in_exactly_one_class_or_ignored():
    grouped = [t for g in SEGMENTATION.groups for t in g.tags]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) | set(SEGMENTATION.ignored_tags) == set(TAG_IDS)
    for name, tag in TAG_IDS.items():
        k = SEGMENTATION.lut[tag]
        assert (k == IGNORE) == (name in SEGMENTATION.ignored_tags)
        if k != IGNORE:
            assert name in SEGMENTATION.groups[k].tags


def test_unknown_ids_and_unlabeled_map_to_ignore():
    ids = np.arange(256, dtype=np.uint8)
    out = SEGMENTATION.encode(ids)
    assert out.dtype == np.uint8 and (out[len(CARLA_TAGS):] == IGNORE).all()
    assert out[TAG_IDS["Unlabeled"]] == IGNORE and out[TAG_IDS["Other"]] == IGNORE
    assert SEGMENTATION.lut.shape == (256,) and not SEGMENTATION.lut.flags.writeable


def test_names_palette_and_detection_classes():
    assert len(SEGMENTATION.names) == len(set(SEGMENTATION.names)) == SEGMENTATION.palette.shape[0]
    assert SEGMENTATION.palette.shape == (SEGMENTATION.num_classes, 3) and SEGMENTATION.palette.dtype == np.uint8
    assert DETECTION.names == ("vehicle",)
    vehicle = SEGMENTATION.names.index("vehicle")
    assert set(DETECTION.tag_ids(0)) == set(SEGMENTATION.tag_ids(vehicle))
    assert {TAG_IDS["Car"], TAG_IDS["Truck"]} <= set(DETECTION.tag_ids(0))
    rgb = SEGMENTATION.colourise(np.array([[vehicle, IGNORE]], np.uint8))
    assert rgb[0, 0].tolist() == list(CARLA_TAGS[TAG_IDS["Car"]][1]) and rgb[0, 1].tolist() == [0, 0, 0]


def test_a_bad_group_is_refused():
    with pytest.raises(ValueError, match="not a CARLA tag"):
        ClassMap.build((ClassGroup("x", ("Nope",), (0, 0, 0)),))
    with pytest.raises(ValueError, match="Roads"):
        ClassMap.build((ClassGroup("a", ("Roads",), (0, 0, 0)), ClassGroup("b", ("Roads",), (0, 0, 0))))


def test_sim_tags_reexports_the_perception_table():
    from edgepilot.sim import tags

    assert tags.CARLA_TAGS is CARLA_TAGS and tags.TAG_IDS is TAG_IDS
    assert tags.palette().shape == (len(CARLA_TAGS), 3)


def test_cityscapes_ids_reach_our_classes():
    m = cityscapes_id_map()
    names = SEGMENTATION.names
    assert names[m[7]] == "road" and names[m[26]] == "vehicle" and names[m[20]] == "pole_sign"
    assert 0 not in m and 3 not in m  # unlabeled, out of roi


def test_the_builtin_world_renders_only_mapped_tags(datagen_dir):
    import cv2

    for p in sorted((datagen_dir / "labels").iterdir()):
        tags = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert (SEGMENTATION.encode(tags) != IGNORE).all(), np.unique(tags)
