"""The ``edgepilot`` command line.

Each command lives in its own module exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``main(args) -> int``. Command modules keep heavy
imports inside ``main`` so ``edgepilot --help`` stays fast on an edge device.
Errors derived from ``EdgepilotError`` become one line on stderr and their exit
code (2 bad input, 1 runtime failure); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from edgepilot.commands import bench, datagen, demo, info, run
from edgepilot.runtime.errors import EdgepilotError

# Order is the order shown in --help.
COMMANDS: tuple[ModuleType, ...] = (run, bench, demo, info, datagen)

log = logging.getLogger("edgepilot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgepilot",
        description="Edge inference and driving-perception runtime: run models on video, "
        "cameras and simulators, benchmark them, and gate latency regressions.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMANDS:
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        mod.add_arguments(p)
        p.set_defaults(_main=mod.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    try:
        return int(args._main(args) or 0)
    except EdgepilotError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
