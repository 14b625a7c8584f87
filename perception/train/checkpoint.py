"""Weights-only checkpoints: a dict of tensors, ints, floats and strings, written atomically.

``torch.load(path, weights_only=True)`` reads them back, so loading runs no code
from the file. A training checkpoint (``last.pt``) holds everything to resume:
model, optimizer, scheduler and grad-scaler state, epoch, step, the torch RNG
state, the history so far and the config (as JSON text); ``best.pt`` holds the
model of the best validation score with its config.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from edgepilot.runtime.errors import EdgepilotError

FORMAT = "edgepilot-train-checkpoint"


def save(path: str | Path, state: dict[str, Any]) -> Path:
    """torch.save ``state`` to ``path`` via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"format": FORMAT, **state}, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is an ordinary file
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def load(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save` (weights only), tensors on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise EdgepilotError(f"checkpoint {path} does not exist", exit_code=2)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad or foreign file
        raise EdgepilotError(f"cannot load checkpoint {path}: {exc}", exit_code=2) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise EdgepilotError(f"{path} is not an edgepilot training checkpoint", exit_code=2)
    return state


def model_record(task: str, config: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """The part of a checkpoint that rebuilds the model: task, config JSON, state dict."""
    return {"task": task, "config": json.dumps(config, sort_keys=True),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
