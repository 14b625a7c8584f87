"""``python -m edgepilot``: the same entry point as the ``edgepilot`` command."""

import sys

from edgepilot.cli import main

sys.exit(main())
