"""edgepilot: edge inference and driving-perception runtime.

One import root over the repository's library folders (``edgepilot.runtime``,
``edgepilot.perception``, ``edgepilot.sim``, ``edgepilot.export``) and the
composition layer that lives here: the CLI (:mod:`edgepilot.cli`) and its
commands (:mod:`edgepilot.commands`). See README, "Layout".
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("edgepilot")
except _metadata.PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
    __version__ = "0+source"
