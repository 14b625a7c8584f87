"""CARLA semantic tags: the table lives in ``edgepilot.perception.tags`` (perception owns the
class map built on it); re-exported here so simulator code keeps its imports."""

from __future__ import annotations

from edgepilot.perception.tags import CARLA_TAGS, TAG_IDS, palette

__all__ = ["CARLA_TAGS", "TAG_IDS", "palette"]
