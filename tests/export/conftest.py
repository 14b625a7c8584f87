"""A tiny datagen folder at 128x256 (Fast-SCNN exports only at multiples of 128), two-step checkpoints,
and one exported segmentation bundle with FP16 and INT8, each made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxslim")


@pytest.fixture(scope="session")
def frames_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("highway_env", reason="the [sim] extra (highway-env) is not installed")
    from edgepilot.sim.datagen import DatagenConfig, generate

    out = tmp_path_factory.mktemp("export") / "highway"
    generate(DatagenConfig(out=out, frames=6, height=128, width=256, frames_per_episode=3, stride=2,
                           warmup_steps=2, val_every=2), progress=False)
    return out


def _checkpoint(task: str, data: Path, out: Path) -> Path:
    from edgepilot.perception.train.config import load_config
    from edgepilot.perception.train.det import train_det
    from edgepilot.perception.train.seg import train_seg

    cfg = load_config(task, None, data=[str(data)], out=str(out), height=128, width=256, epochs=1, batch_size=2,
                      warmup_steps=1, max_steps=2, progress=False, threads=1, checkpoint_minutes=60.0)
    summary = (train_seg if task == "seg" else train_det)(cfg)  # type: ignore[arg-type]
    return Path(summary["best"])


@pytest.fixture(scope="session")
def seg_ckpt(frames_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint("seg", frames_dir, tmp_path_factory.mktemp("seg"))


@pytest.fixture(scope="session")
def det_ckpt(frames_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint("det", frames_dir, tmp_path_factory.mktemp("det"))


@pytest.fixture(scope="session")
def seg_bundle(seg_ckpt: Path, frames_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgepilot.export.bundle import export_checkpoint

    return export_checkpoint(seg_ckpt, "seg", tmp_path_factory.mktemp("bundles") / "seg", calib=[frames_dir],
                             int8=True, val_data=[frames_dir], show_progress=False)
