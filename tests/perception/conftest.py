"""A tiny datagen folder (8 frames, 64x128, two episodes: one train, one val), made once."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="session")
def datagen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("highway_env", reason="the [sim] extra (highway-env) is not installed")
    from edgepilot.sim.datagen import DatagenConfig, generate

    out = tmp_path_factory.mktemp("perception") / "highway"
    generate(DatagenConfig(out=out, frames=8, height=64, width=128, frames_per_episode=4, stride=2,
                           warmup_steps=2, val_every=2), progress=False)
    return out
