"""The closed loop's pieces: the policy's observation and action, and the Gymnasium env.

Importing this package registers ``edgepilot/Drive-v0`` (``sim.agent.env.DriveEnv``) with
Gymnasium when it is installed, so ``gymnasium.make("edgepilot.sim.agent:edgepilot/Drive-v0")``
works without importing anything first; the env module itself (and highway-env) loads on make.
"""

from __future__ import annotations

from importlib.util import find_spec

ENV_ID = "edgepilot/Drive-v0"


def register_envs() -> None:
    """Register ``ENV_ID`` with Gymnasium (idempotent)."""
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(ENV_ID, entry_point="edgepilot.sim.agent.env:DriveEnv")


if find_spec("gymnasium") is not None:
    register_envs()
