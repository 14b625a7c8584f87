"""The ``edgepilot`` command line.

Each command lives in its own module exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``main(args) -> int``. Command modules keep heavy
imports inside ``main`` so ``edgepilot --help`` stays fast on an edge device.
Errors derived from ``EdgepilotError`` become one line on stderr and their exit
code (2 bad input, 1 runtime failure); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from runtime.errors import EdgepilotError

# Order is the order shown in --help.
COMMAND_MODULES = (
    "runtime.commands.run",
    "runtime.commands.bench",
    "runtime.commands.demo",
    "runtime.commands.info",
    "sim.commands.datagen",
)

log = logging.getLogger("edgepilot")


def _load_commands() -> list:
    mods = []
    for path in COMMAND_MODULES:
        try:
            mods.append(importlib.import_module(path))
        except ModuleNotFoundError as exc:
            if exc.name != path:  # a real import error inside the module
                raise
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgepilot",
        description="Edge inference and driving-perception runtime: run models on video, "
        "cameras and simulators, benchmark them, and gate latency regressions.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _load_commands():
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
