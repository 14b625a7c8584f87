"""Training configuration: typed dataclasses with the defaults in code; YAML only overrides.

``load_config("seg", "configs/train/seg.yaml")`` gives a :class:`SegConfig`; keys the
dataclass does not have are refused (exit 2) with the list of known ones. Nested
``augment:`` overrides :class:`AugmentConfig` field by field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgepilot.perception.data.augment import AugmentConfig
from edgepilot.runtime.errors import EdgepilotError

SCENARIOS = ("highway", "racetrack", "roundabout", "merge")


@dataclass(frozen=True)
class TrainConfig:
    """What both tasks share. Sizes in pixels, times in minutes, ``lr`` for ``batch_size``."""

    out: str = "runs/train"
    data: tuple[str, ...] = tuple(f"data/train/{s}" for s in SCENARIOS)  # datagen folders: "train" split trains
    val_data: tuple[str, ...] = ()  # empty: the "val" split (other episodes) of ``data``
    height: int = 128  # network input
    width: int = 256
    epochs: int = 30
    batch_size: int = 16
    cuda_batch_size: int = 64  # on CUDA the batch grows and lr scales by sqrt(batch ratio)
    lr: float = 4e-3
    weight_decay: float = 0.01
    schedule: str = "poly"  # poly (power 0.9) or cosine, after a linear warm-up
    warmup_steps: int = 200
    grad_clip: float = 5.0
    seed: int = 0
    workers: int = 0  # DataLoader workers on CPU (0: in the training process)
    cuda_workers: int = 4
    checkpoint_minutes: float = 5.0  # also at every epoch end
    resume: bool = True  # continue from out/last.pt when it exists (False: start over)
    init: str = ""  # start from this checkpoint's weights (same task and model; weights only, not its optimiser)
    max_steps: int = 0  # > 0: stop after this many steps in all (smoke tests)
    val_limit: int = 0  # > 0: validate on the first N val frames only
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    threads: int = 0  # torch CPU threads (0: torch's default, one per core; 1 on a shared machine)
    amp: bool = True  # mixed precision (float16 autocast + grad scaler), CUDA only
    progress: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class SegConfig(TrainConfig):
    """Fast-SCNN segmentation on the SEGMENTATION class map."""

    out: str = "runs/seg-dense"
    data: tuple[str, ...] = tuple(f"data/seg/{s}" for s in SCENARIOS)
    epochs: int = 24  # the shipped run (configs/train/seg.yaml), alone on both cores
    threads: int = 2
    head_stride: int = 4  # 2 or 4: detail heads fuse the 1/4 (and 1/2) features; 8: the paper's head
    dense_convs: bool = True  # dense 3x3s where the paper has DSConvs in the downsampling and detail mixes
    # (the INT8-first layout: why in perception/models/fast_scnn.py)
    ohem_threshold: float = 0.7  # online hard example mining (BiSeNet/STDC): pixels with loss
    ohem_min_kept: float = 1 / 16  # above the threshold (nats), at least this share of pixels
    # (0 threshold: plain cross-entropy)


@dataclass(frozen=True)
class DetConfig(TrainConfig):
    """CenterNet detection of the DETECTION classes (vehicles)."""

    out: str = "runs/det"
    data: tuple[str, ...] = tuple(f"data/det/{s}" for s in SCENARIOS)
    height: int = 192
    width: int = 384
    epochs: int = 16  # the shipped run (configs/train/det.yaml), trained beside the segmenter
    threads: int = 1
    lr: float = 2e-3
    schedule: str = "cosine"
    neck: int = 64
    head: int = 64
    size_weight: float = 1.0
    offset_weight: float = 1.0
    max_boxes: int = 64  # per image in the targets
    min_size: float = 1 / 32  # AP counts boxes with sqrt(w * h) >= min_size * image height
    score_threshold: float = 0.01  # for AP: keep detections down to this score
    max_detections: int = 100


CONFIGS: dict[str, type[TrainConfig]] = {"seg": SegConfig, "det": DetConfig}


def _coerce(cls: type, name: str, value: Any, where: str) -> Any:
    hint: Any = typing.get_type_hints(cls)[name]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise EdgepilotError(f"{where}: {name} must be a mapping of {hint.__name__} fields", exit_code=2)
        return hint(**_fields(hint, value, f"{where}: {name}"))
    origin = typing.get_origin(hint)
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        inner = typing.get_args(hint)[0]
        return tuple(inner(v) for v in items)
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise EdgepilotError(f"{where}: {name} must be true or false, got {value!r}", exit_code=2)
        return value
    try:
        return hint(value)
    except (TypeError, ValueError) as exc:
        raise EdgepilotError(f"{where}: {name} must be {hint.__name__}, got {value!r}", exit_code=2) from exc


def _fields(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise EdgepilotError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                             exit_code=2)
    return {k: _coerce(cls, k, v, where) for k, v in data.items()}


def load_config(task: str, path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """The config of ``task`` ("seg" or "det"): defaults, then the YAML at ``path``, then ``overrides``."""
    if task not in CONFIGS:
        raise EdgepilotError(f"unknown task {task!r}: choose {' or '.join(CONFIGS)}", exit_code=2)
    return load_dataclass(CONFIGS[task], path, task, **overrides)


def load_dataclass(cls: type, path: str | Path | None = None, name: str = "config", **overrides: Any) -> Any:
    """Any config dataclass ``cls``: its defaults, then the YAML at ``path``, then ``overrides``
    (unknown keys and mistyped values refused with exit code 2)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise EdgepilotError(f"cannot read training config {p}: {exc}", exit_code=2) from exc
        if not isinstance(data, dict):
            raise EdgepilotError(f"{p}: a training config is a mapping of keys", exit_code=2)
    data.update(overrides)
    return cls(**_fields(cls, data, str(path or name)))


def to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-friendly dict of a config (tuples become lists)."""
    return dataclasses.asdict(cfg)


def from_dict(task: str, data: dict[str, Any]) -> TrainConfig:
    """Inverse of :func:`to_dict` (for configs stored in checkpoints)."""
    return load_config(task, None, **data)
