"""Datagen: files, refusal to overwrite, determinism, whole-episode splits, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgepilot.runtime.errors import EdgepilotError
from edgepilot.sim.datagen import DatagenConfig, generate
from edgepilot.sim.preview import write_preview

ROOT = Path(__file__).resolve().parents[2]


def _cfg(out: Path, **kw) -> DatagenConfig:
    base = dict(out=out, scenario="highway", frames=6, seed=3, height=64, width=128, episodes=None,
                frames_per_episode=2, stride=2, warmup_steps=2, val_every=2)
    base.update(kw)
    return DatagenConfig(**base)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    generate(_cfg(out), progress=False)
    return out


def test_writes_images_labels_coco_and_manifest(dataset):
    coco = json.loads((dataset / "annotations.json").read_text())
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert len(coco["images"]) == 6 == manifest["images"]
    assert {c["id"] for c in coco["categories"]} >= {14}
    for im in coco["images"]:
        rgb = cv2.imread(str(dataset / im["file_name"]))
        labels = cv2.imread(str(dataset / im["label_file"]), cv2.IMREAD_UNCHANGED)
        assert rgb.shape == (64, 128, 3) and labels.shape == (64, 128) and labels.dtype == np.uint8
    assert manifest["camera"]["width"] == 128 and manifest["settings"]["seed"] == 3
    assert set(manifest["versions"]) >= {"edgepilot", "highway-env", "numpy", "opencv"}


def test_split_keeps_episodes_whole(dataset):
    coco = json.loads((dataset / "annotations.json").read_text())
    manifest = json.loads((dataset / "manifest.json").read_text())
    by_episode: dict[int, set[str]] = {}
    for im in coco["images"]:
        by_episode.setdefault(im["episode"], set()).add(im["split"])
    assert all(len(s) == 1 for s in by_episode.values())
    assert set(manifest["splits"]["train"]) & set(manifest["splits"]["val"]) == set()
    assert manifest["splits"]["val"] and manifest["splits"]["train"]


def test_refuses_non_empty_dir_without_force(dataset, tmp_path):
    with pytest.raises(EdgepilotError) as err:
        generate(_cfg(dataset), progress=False)
    assert err.value.exit_code == 2 and "--force" in str(err.value)


def test_same_arguments_same_labels_and_coco(dataset, tmp_path):
    generate(_cfg(tmp_path), progress=False)
    assert (tmp_path / "annotations.json").read_bytes() == (dataset / "annotations.json").read_bytes()
    for p in sorted((dataset / "labels").iterdir()):
        assert (tmp_path / "labels" / p.name).read_bytes() == p.read_bytes()
    preview = write_preview(tmp_path, count=2)
    assert cv2.imread(str(preview)).shape == (64, 2 * 2 * 128, 3)


def test_cli_smoke_and_force(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "edgepilot.cli", "datagen", "--scenario", "racetrack", "--frames", "4",
           "--size", "64x128", "--out", str(tmp_path), "--seed", "1", "--format", "jpg"]
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert len(list((tmp_path / "images").glob("*.jpg"))) == 4
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and again.stderr.strip().startswith("error:")
    forced = subprocess.run([*cmd, "--force"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert forced.returncode == 0, forced.stderr


def test_carla_datagen_lets_the_traffic_manager_drive_the_ego(tmp_path, monkeypatch):
    from tests.sim.fake_carla import FakeServer

    server = FakeServer()
    start_x = {}  # ego -> x at the first tick it lived through

    def record_egos(frame: int) -> None:
        for a in server.vehicles():
            if a.attributes["role_name"] == "hero":
                start_x.setdefault(a, a.transform.location.x)

    server.on_tick.append(record_egos)
    monkeypatch.setitem(sys.modules, "carla", server.module())  # what `import carla` returns
    cfg = _cfg(tmp_path, sim="carla", scenario="town01", frames=4, height=32, width=64)
    manifest = generate(cfg, progress=False)
    assert manifest["images"] == 4 and len(start_x) == 2  # two episodes, one ego each
    for ego, x0 in start_x.items():
        assert ego.autopilot_port == 8000  # on the Traffic Manager of the session
        assert ego.controls_under_autopilot == 0  # no constant throttle of ours on top
        assert ego.control.throttle == 0.0 and ego.control.steer == 0.0
        assert ego.transform.location.x > x0 + 0.5 and ego.speed_mps > 0.0  # it drove off
    assert server.actors == {} and server.settings.synchronous_mode is False


def test_a_failed_run_leaves_nothing_that_blocks_the_retry(tmp_path, monkeypatch):
    """Regression: a run that died half-way left a non-empty folder the retry refused without --force."""
    import edgepilot.sim.datagen as datagen

    out = tmp_path / "ds"
    real_save, calls = datagen._save, []

    def failing_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise EdgepilotError("disk full (injected)", exit_code=1)
        real_save(*args, **kwargs)

    monkeypatch.setattr(datagen, "_save", failing_save)
    with pytest.raises(EdgepilotError, match="injected"):
        generate(_cfg(out), progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no partial folder either
    monkeypatch.undo()
    manifest = generate(_cfg(out), progress=False)  # no --force needed
    assert manifest["images"] == 6 and len(list((out / "images").iterdir())) == 6


def test_bad_output_folders_are_refused_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(EdgepilotError, match="is not a folder") as err:
        generate(_cfg(tmp_path / "file"), progress=False)
    assert err.value.exit_code == 2
    with pytest.raises(EdgepilotError, match="is a file, not a folder") as err:
        generate(_cfg(tmp_path / "file" / "ds"), progress=False)
    assert err.value.exit_code == 2
    assert generate(_cfg(tmp_path / "new" / "ds", frames=2), progress=False)["images"] == 2  # parents made
