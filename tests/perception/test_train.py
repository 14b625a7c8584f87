"""Training: configs, CenterNet targets, the loss going down, checkpoints that resume to the same step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgepilot.perception.train.config import DetConfig, SegConfig, load_config
from edgepilot.runtime.errors import EdgepilotError

ROOT = Path(__file__).resolve().parents[2]


def test_yaml_overrides_defaults_and_unknown_keys_are_refused(tmp_path):
    p = tmp_path / "seg.yaml"
    p.write_text("epochs: 3\nheight: 64\ndata: [a, b]\naugment:\n  flip: 0.0\n")
    cfg = load_config("seg", p)
    assert isinstance(cfg, SegConfig) and cfg.epochs == 3 and cfg.data == ("a", "b")
    assert cfg.augment.flip == 0.0 and cfg.augment.scale == SegConfig().augment.scale
    p.write_text("epoch: 3\n")
    with pytest.raises(EdgepilotError, match="unknown key.*epoch.*known:") as err:
        load_config("seg", p)
    assert err.value.exit_code == 2
    with pytest.raises(EdgepilotError, match="unknown task"):
        load_config("pose")


@pytest.mark.parametrize("task", ["seg", "det"])
def test_the_shipped_configs_load(task):
    cfg = load_config(task, ROOT / "configs" / "train" / f"{task}.yaml")
    assert isinstance(cfg, SegConfig if task == "seg" else DetConfig)
    multiple = 128 if task == "seg" else 32  # Fast-SCNN's pyramid pooling; CenterNet's 1/32 stage
    assert len(cfg.data) == 4 and cfg.height % multiple == 0 and cfg.width % multiple == 0
    assert cfg == load_config(task)  # the defaults in code are the shipped configs


def test_the_fine_tuning_stage_config_starts_from_stage_one():
    cfg = load_config("det", ROOT / "configs" / "train" / "det512.yaml")
    stage1 = load_config("det", ROOT / "configs" / "train" / "det.yaml")
    assert cfg.init == f"{stage1.out}/best.pt" and (cfg.height, cfg.width) == (256, 512)
    assert (cfg.min_size, cfg.neck, cfg.head) == (stage1.min_size, stage1.neck, stage1.head)


def test_centernet_targets_decode_back_to_the_boxes():
    from edgepilot.perception.models.centernet import decode
    from edgepilot.perception.train.centernet_targets import encode

    boxes = np.array([[10.0, 8.0, 42.0, 30.0], [70.0, 40.0, 78.0, 46.0]], np.float32)
    t = encode(boxes, np.zeros(2, np.int64), np.zeros(2, bool), (64, 128), 1, 4, 8)
    assert t["heatmap"].max() == 1.0 and (t["heatmap"] == 1.0).sum() == 2 and t["mask"].sum() == 2
    size = np.zeros((2, 16 * 32), np.float32)
    offset = np.zeros((2, 16 * 32), np.float32)
    size[:, t["index"][:2]] = np.exp(t["log_size"][:2]).T
    offset[:, t["index"][:2]] = t["offset"][:2].T
    heat = torch.from_numpy(t["heatmap"])[None]
    (got, scores, _), = decode(heat, torch.from_numpy(size).view(1, 2, 16, 32),
                               torch.from_numpy(offset).view(1, 2, 16, 32), score_threshold=0.99)
    np.testing.assert_allclose(sorted(got.numpy().tolist()), sorted(boxes.tolist()), atol=1e-4)


def test_a_crowd_box_masks_the_heatmap_loss():
    from edgepilot.perception.train.centernet_targets import encode

    t = encode(np.array([[0, 0, 16, 8]], np.float32), np.zeros(1, np.int64), np.ones(1, bool), (32, 64), 1, 4, 4)
    assert t["weight"][:2, :4].sum() == 0 and t["weight"].sum() == 8 * 16 - 8 and t["mask"].sum() == 0


def _cfg(task: str, data: Path, out: Path, **kw):
    base = dict(data=[str(data)], out=str(out), height=64, width=128, epochs=2, batch_size=2, warmup_steps=1,
                progress=False, checkpoint_minutes=60.0)
    base.update(kw)
    return load_config(task, None, **base)


@pytest.mark.parametrize("task", ["seg", "det"])
def test_a_few_steps_reduce_the_loss_on_one_batch(task, datagen_dir, tmp_path):
    from edgepilot.perception.train.det import DetTask
    from edgepilot.perception.train.eval_data import seed_everything
    from edgepilot.perception.train.loop import make_optimizer
    from edgepilot.perception.train.seg import SegTask

    seed_everything(0)
    cfg = _cfg(task, datagen_dir, tmp_path, augment={"flip": 0.0})
    t = SegTask(cfg) if task == "seg" else DetTask(cfg)  # type: ignore[arg-type]
    batch = t.collate([t.train_set[i] for i in range(4)])
    opt = make_optimizer(t.model, 3e-3, 0.0)
    t.model.train()
    losses = []
    for _ in range(12):
        loss, _ = t.loss(t.model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def test_training_writes_weights_only_checkpoints_that_resume_to_the_same_step(datagen_dir, tmp_path):
    from edgepilot.perception.train.seg import train_seg

    straight = train_seg(_cfg("seg", datagen_dir, tmp_path / "a", max_steps=3))
    assert straight["steps"] == 3
    train_seg(_cfg("seg", datagen_dir, tmp_path / "b", max_steps=1))
    ck = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert ck["step"] == 1 and ck["epoch"] == 0 and ck["step_in_epoch"] == 1
    resumed = train_seg(_cfg("seg", datagen_dir, tmp_path / "b", max_steps=3))
    assert resumed["steps"] == 3 and resumed["epochs"] == 1
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 3 and a["step_in_epoch"] == b["step_in_epoch"] == 1
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    history = json.loads((tmp_path / "b" / "history.json").read_text())
    assert [h["step"] for h in history] == [1, 2, 3] and [h["partial"] for h in history] == [True, False, True]
    assert 0.0 <= history[-1]["miou"] <= 1.0 and (tmp_path / "b" / "curves.png").stat().st_size > 0
    assert (tmp_path / "b" / "best.pt").is_file()


def test_a_trained_checkpoint_evaluates_and_rebuilds(datagen_dir, tmp_path):
    pytest.importorskip("pycocotools")
    from edgepilot.perception.train.build import load_model
    from edgepilot.perception.train.det import evaluate_det, train_det

    summary = train_det(_cfg("det", datagen_dir, tmp_path, max_steps=2))
    model, cfg = load_model(summary["best"], "det")
    assert isinstance(cfg, DetConfig) and (cfg.height, cfg.width) == (64, 128) and not model.training
    r = evaluate_det(summary["best"], datagen_dir, "val", device="cpu")
    assert r["input_size"] == [64, 128] and 0.0 <= r["map50"] <= 1.0
    with pytest.raises(EdgepilotError, match="not 'seg'"):
        load_model(summary["best"], "seg")


def test_checkpoints_are_also_written_on_time(datagen_dir, tmp_path, monkeypatch):
    from edgepilot.perception.train import checkpoint
    from edgepilot.perception.train.seg import train_seg

    saved: list[str] = []
    real = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda path, state: saved.append(Path(path).name) or real(path, state))
    train_seg(_cfg("seg", datagen_dir, tmp_path, epochs=1, checkpoint_minutes=0.0))
    assert saved.count("last.pt") == 2 + 1  # after each of the 2 steps (time is up at once), and at the epoch end
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert isinstance(state["rng_torch"], torch.Tensor) and isinstance(state["config"], str)


def test_init_starts_from_another_runs_weights_and_refuses_a_mismatch(datagen_dir, tmp_path):
    from edgepilot.perception.train.loop import _init_weights
    from edgepilot.perception.train.seg import SegTask, train_seg

    train_seg(_cfg("seg", datagen_dir, tmp_path / "a", max_steps=2))
    source = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    cfg = _cfg("seg", datagen_dir, tmp_path / "b", max_steps=1, init=str(tmp_path / "a" / "last.pt"))
    task = SegTask(cfg)
    _init_weights(task, cfg.init)
    for name, tensor in task.model.state_dict().items():
        torch.testing.assert_close(tensor, source[name], msg=name)
    assert train_seg(cfg)["steps"] == 1  # and a full run from it trains
    with pytest.raises(EdgepilotError, match="is a 'seg' checkpoint, not 'det'"):
        train_det_from(datagen_dir, tmp_path, str(tmp_path / "a" / "last.pt"))
    with pytest.raises(EdgepilotError, match="does not exist"):
        _init_weights(task, str(tmp_path / "missing.pt"))


def train_det_from(datagen_dir, tmp_path, init):
    from edgepilot.perception.train.det import train_det

    return train_det(_cfg("det", datagen_dir, tmp_path / "c", max_steps=1, init=init))
