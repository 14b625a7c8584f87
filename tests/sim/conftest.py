"""Shared fixtures: a small builtin world (128x256) so the suite stays fast."""

from __future__ import annotations

import pytest

pytest.importorskip("highway_env", reason="the [sim] extra (highway-env) is not installed")

from edgepilot.sim.builtin.world import BuiltinSimulator  # noqa: E402
from tests.sim.sim_helpers import SMALL  # noqa: E402


@pytest.fixture(scope="module")
def highway():
    with BuiltinSimulator("highway", SMALL, seed=0) as sim:
        yield sim
