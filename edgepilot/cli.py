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
from typing import NoReturn

from edgepilot.commands import (
    bench,
    build,
    datagen,
    demo,
    deploy,
    drive,
    eval,
    export,
    info,
    run,
    train,
)
from edgepilot.runtime.errors import EdgepilotError

# Order is the order shown in --help.
COMMANDS: tuple[ModuleType, ...] = (run, bench, demo, drive, info, datagen, train, eval, export, build, deploy)

log = logging.getLogger("edgepilot")


class UsageError(EdgepilotError):
    """A command line argparse refused (exit 2)."""

    exit_code = 2


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are raised, so they print as our one ``error:`` line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgepilot",
        description="Edge inference and driving-perception runtime: run models on video, "
        "cameras and simulators, benchmark them, and gate latency regressions.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
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
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
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
