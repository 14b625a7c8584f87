"""The import contracts in pyproject.toml cover what the code registers."""

from __future__ import annotations

from pathlib import Path

import tomllib

from edgepilot.runtime.engines import BACKENDS

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict]:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_backend_independence_contract_lists_every_registered_backend() -> None:
    (contract,) = [c for c in _contracts() if c["type"] == "independence"]
    assert set(contract["modules"]) == {path.split(":")[0] for path in BACKENDS.values()}


def test_runtime_is_the_bottom_layer() -> None:
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    assert layers["layers"][-1] == "edgepilot.runtime" and layers["layers"][0] == "edgepilot.cli"
