"""Readers and augmentation: image, labels and boxes stay aligned."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgepilot.perception.classes import IGNORE, SEGMENTATION
from edgepilot.perception.data import layout
from edgepilot.perception.data.augment import AugmentConfig
from edgepilot.perception.data.datasets import DatagenDataset, FrameDataset, Sample
from edgepilot.perception.data.folders import FolderDataset, cityscapes_id_map
from edgepilot.runtime.errors import EdgepilotError

VEHICLE = SEGMENTATION.names.index("vehicle")


def _edges_touch_vehicle(labels: np.ndarray, box: np.ndarray, slack: int = 0) -> bool:
    """The box is tight on vehicle pixels: each of its edges (within ``slack`` px) has some."""
    h, w = labels.shape
    x1, y1 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x2, y2 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
    inside = labels[y1:y2, x1:x2] == VEHICLE
    if not inside.any():
        return False
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    return rows[0] <= slack and rows[-1] >= inside.shape[0] - 1 - slack and cols[0] <= slack and \
        cols[-1] >= inside.shape[1] - 1 - slack


def test_layout_names_are_what_datagen_writes(datagen_dir):
    for name in (layout.IMAGES_DIR, layout.LABELS_DIR, layout.ANNOTATIONS, layout.MANIFEST):
        assert (datagen_dir / name).exists()
    stem = layout.frame_stem(0, 0)
    assert (datagen_dir / layout.image_file(stem, "png")).is_file()
    assert (datagen_dir / layout.label_file(stem)).is_file()


def test_splits_come_from_the_manifest(datagen_dir):
    manifest = layout.read_manifest(datagen_dir)
    train, val = layout.read_frames(datagen_dir, "train"), layout.read_frames(datagen_dir, "val")
    assert {r.episode for r in train} == set(manifest["splits"]["train"])
    assert {r.episode for r in val} == set(manifest["splits"]["val"])
    assert len(train) + len(val) == len(layout.read_frames(datagen_dir, "all")) == 8


def test_a_folder_that_is_not_a_dataset_is_refused(tmp_path):
    with pytest.raises(EdgepilotError, match="not a datagen folder") as err:
        layout.read_frames(tmp_path, "train")
    assert err.value.exit_code == 2
    (tmp_path / layout.MANIFEST).write_text("{}")
    with pytest.raises(EdgepilotError, match="splits"):
        layout.read_frames(tmp_path, "train")


def test_datagen_samples_are_aligned(datagen_dir):
    ds = DatagenDataset(datagen_dir, "all")
    boxes = 0
    for i in range(len(ds)):
        s = ds[i]
        assert s.image.shape == (64, 128, 3) and s.image.dtype == np.uint8
        assert s.labels is not None and s.labels.shape == (64, 128) and s.labels.max() < SEGMENTATION.num_classes
        assert s.boxes.shape == (len(s.classes), 4) and (s.classes == 0).all()
        for b in s.boxes:
            assert _edges_touch_vehicle(s.labels, b)
        boxes += len(s.boxes)
    assert boxes > 0


def test_augmented_datagen_samples_keep_boxes_on_their_vehicles(datagen_dir):
    ds = DatagenDataset(datagen_dir, "all", size=(64, 128), augment=AugmentConfig(scale=(1.0, 1.5)), seed=3)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            s = ds[i]
            assert s.labels is not None and s.image.shape == (64, 128, 3)
            for b in s.boxes:  # bilinear/nearest rounding: a pixel of slack
                assert _edges_touch_vehicle(s.labels, b, slack=1), (epoch, i, b)


class _OneCar(FrameDataset):
    """A 60x100 frame with one vehicle rectangle (red in the image) and its box."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)

    def __len__(self) -> int:
        return 1

    def load(self, i: int) -> Sample:
        image = np.full((60, 100, 3), 90, np.uint8)
        labels = np.zeros((60, 100), np.uint8)
        image[20:35, 60:90] = (255, 0, 0)
        labels[20:35, 60:90] = VEHICLE
        return Sample(image, labels, np.array([[60, 20, 90, 35]], np.float32), np.zeros(1, np.int64),
                      np.zeros(1, bool), 1)


@pytest.mark.parametrize("seed", range(12))
def test_flip_scale_crop_move_image_labels_and_box_together(seed):
    plain = AugmentConfig(scale=(0.8, 1.8), flip=0.5, brightness=0, contrast=0, saturation=0, hue_deg=0,
                          blur=0, noise=0, min_box_kept=0.0)
    s = _OneCar(size=(48, 96), augment=plain, seed=seed)[0]
    assert s.image.shape == (48, 96, 3) and s.labels is not None
    car = s.labels == VEHICLE
    red = (s.image[..., 0] > 170) & (s.image[..., 1] < 80)
    if not len(s.boxes):
        assert car.sum() < 0.3 * 15 * 30 * 0.64  # cropped away (or nearly)
        return
    (x1, y1, x2, y2), = s.boxes
    rows, cols = np.flatnonzero(car.any(axis=1)), np.flatnonzero(car.any(axis=0))
    assert abs(rows[0] - y1) <= 1 and abs(rows[-1] + 1 - y2) <= 1
    assert abs(cols[0] - x1) <= 1 and abs(cols[-1] + 1 - x2) <= 1
    assert (red & ~car).sum() <= 0.1 * car.sum() + 4  # the RGB moved with the labels


def test_augmentation_is_reproducible_from_seed_and_epoch():
    ds = _OneCar(size=(48, 96), augment=AugmentConfig(), seed=5)
    a, b = ds[0], ds[0]
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    ds.set_epoch(1)
    assert not np.array_equal(ds[0].image, a.image)


def test_zoomed_out_borders_are_ignored():
    cfg = AugmentConfig(scale=(0.5, 0.5), flip=0.0)
    s = _OneCar(size=(60, 100), augment=cfg, seed=0)[0]
    assert s.labels is not None and (s.labels == IGNORE).mean() > 0.5


def test_user_folder_with_cityscapes_labels_and_coco_boxes(tmp_path):
    (tmp_path / "img" / "city").mkdir(parents=True)
    (tmp_path / "lab" / "city").mkdir(parents=True)
    image = np.zeros((32, 64, 3), np.uint8)
    ids = np.full((32, 64), 7, np.uint8)  # road
    ids[:8] = 0  # unlabeled
    ids[10:20, 30:50] = 26  # car
    cv2.imwrite(str(tmp_path / "img" / "city" / "a_leftImg8bit.png"), image)
    cv2.imwrite(str(tmp_path / "lab" / "city" / "a_gtFine_labelIds.png"), ids)
    coco = {"images": [{"id": 5, "file_name": "city/a_leftImg8bit.png", "width": 64, "height": 32}],
            "annotations": [{"id": 1, "image_id": 5, "category_id": 3, "bbox": [30, 10, 20, 10], "iscrowd": 0},
                            {"id": 2, "image_id": 5, "category_id": 3, "bbox": [0, 20, 4, 4], "iscrowd": 1},
                            {"id": 3, "image_id": 5, "category_id": 1, "bbox": [1, 1, 2, 2], "iscrowd": 0}],
            "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]}
    (tmp_path / "boxes.json").write_text(json.dumps(coco))
    ds = FolderDataset(tmp_path / "img", tmp_path / "lab", cityscapes_id_map(), coco=tmp_path / "boxes.json",
                       image_suffix="_leftImg8bit", label_suffix="_gtFine_labelIds")
    s = ds[0]
    names = SEGMENTATION.names
    assert s.labels is not None and names[s.labels[30, 0]] == "road" and s.labels[0, 0] == IGNORE
    assert names[s.labels[15, 40]] == "vehicle" and s.image_id == 5
    assert s.boxes.tolist() == [[30, 10, 50, 20], [0, 20, 4, 24]] and s.crowd.tolist() == [False, True]
    assert s.classes.tolist() == [0, 0]  # person is not a detection class here


def test_user_folder_needs_an_id_map_for_labels(tmp_path):
    (tmp_path / "x.png").write_bytes(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    with pytest.raises(EdgepilotError, match="id map"):
        FolderDataset(tmp_path, tmp_path)
    assert len(FolderDataset(tmp_path)) == 1
