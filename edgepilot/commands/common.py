"""Arguments shared by the commands that build engines (``run``, ``bench`` and those to come).

The choices come from the registries (``runtime.engines.BACKENDS``,
``runtime.bundle.PRECISIONS``), so a new backend or precision appears in
every command's ``--help`` and validation at once. Values are parsed here,
at the door: a bad one is argparse's one-line error, exit 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgepilot.runtime.bundle import PRECISIONS
from edgepilot.runtime.engines import BACKEND_CHOICES, BACKENDS, describe_options
from edgepilot.runtime.engines.base import parse_device
from edgepilot.runtime.errors import EdgepilotError
from edgepilot.runtime.options import parse_engine_opt, parse_shape

BACKEND_HELP = ("auto: on a CPU the installed backend measured fastest for this bundle (the choice is kept "
                "in the bundle's engines/auto.json), on CUDA ort; the report says which ran and why; "
                "null runs no model (for testing the loop); triton sends each frame's tensor to a Triton "
                "server (--engine-opt url=HOST:PORT; auto never picks it)")


def _argtype(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wrap a parser raising EdgepilotError as an argparse type (its message becomes the error line)."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except EdgepilotError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _one_of(kind: str, allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise EdgepilotError(f"unknown {kind} {', '.join(bad) or repr(text)}: choose from {', '.join(allowed)}")
        return items
    return parse


def _shapes(text: str) -> list[tuple[int, int] | None]:
    return [parse_shape(t.strip()) for t in text.split(",") if t.strip()] or [None]


def _device(text: str) -> str:
    return str(parse_device(text))


def add_engine_arguments(p: argparse.ArgumentParser, *, many: bool = False, backend: str = "ort") -> None:
    """``--backend --precision --shape`` (or the comma-list ``--backends --precisions --shapes``
    with ``many``), ``--device`` and repeatable ``--engine-opt KEY=VALUE``; ``backend`` is the default."""
    g = p.add_argument_group("engine")
    names = ", ".join(BACKEND_CHOICES)
    if many:
        g.add_argument("--backends", type=_argtype(_one_of("backend", list(BACKEND_CHOICES))), default=["ort"],
                       metavar="LIST", help=f"comma-separated backends from {names} (default: ort; {BACKEND_HELP})")
        g.add_argument("--precisions", type=_argtype(_one_of("precision", PRECISIONS)), default=["fp32"],
                       metavar="LIST", help=f"comma-separated precisions from {', '.join(PRECISIONS)} (default: fp32)")
        g.add_argument("--shapes", type=_argtype(_shapes), default=[None], metavar="LIST",
                       help="comma-separated HxW input sizes or 'native' (default: the bundle's own)")
    else:
        g.add_argument("--backend", default=backend, choices=list(BACKEND_CHOICES),
                       help=f"inference backend (default: {backend}; {BACKEND_HELP})")
        g.add_argument("--precision", default="fp32", choices=PRECISIONS, help="default: fp32")
        g.add_argument("--shape", "--shapes", dest="shape", type=_argtype(parse_shape), default=None, metavar="HxW",
                       help="model input size for bundles with dynamic H, W, e.g. 256x512")
    g.add_argument("--device", type=_argtype(_device), default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    g.add_argument("--engine-opt", type=_argtype(parse_engine_opt), action="append", default=[],
                   metavar="KEY=VALUE", dest="engine_opt",
                   help="backend option, repeatable; each backend's options are listed at the end")
    p.epilog = "\n".join([p.epilog or "", engine_options_help()]).strip()


def engine_options_help() -> str:
    """Every backend's --engine-opt keys with type, range and default, for --help."""
    lines = ["engine options (--engine-opt KEY=VALUE; unknown keys and out-of-range values are refused):"]
    for backend in BACKENDS:
        lines.append(f"  {backend}:")
        lines += [f"    {line}" for line in describe_options(backend)] or ["    (none)"]
    return "\n".join(lines)


def add_scale_arguments(p: argparse.ArgumentParser) -> None:
    """``--workers --ray --retries --servers`` of the commands that run episodes (``drive``, ``datagen``)."""
    g = p.add_argument_group("scale-out (Ray; the [scale] extra)")
    g.add_argument("--workers", type=int_in(1, 1024), default=None, metavar="K",
                   help="run the episodes on K Ray workers, one simulator each (default: 1, serial, no Ray; "
                        "with --servers: one worker per server)")
    g.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="join the Ray cluster at ADDRESS (e.g. auto, ray://head:10001); default: start a "
                        "local Ray with K CPUs and shut it down after")
    g.add_argument("--retries", type=int_in(0, 100), default=2, metavar="N",
                   help="retry an episode whose worker died (or whose CARLA server stopped answering) up to "
                        "N times on another worker (default: 2)")
    g.add_argument("--servers", type=Path, default=None, metavar="YAML",
                   help="CARLA servers, one per worker: a list of {name, host, port[, tm_port]} "
                        "(tm_port default: port + 6000); drive: replaces --host/--port")


def scale_from_args(args: argparse.Namespace, sim: str) -> Any:
    """The ``ScaleOptions`` of ``add_scale_arguments``' flags, checked for ``sim`` (exit 2)."""
    from edgepilot.sim.scale import ScaleOptions, load_servers

    servers = load_servers(args.servers) if args.servers is not None else ()
    workers = args.workers or (len(servers) if servers else 1)
    scale = ScaleOptions(workers=workers, address=args.ray, retries=args.retries, servers=servers,
                         servers_file=str(args.servers or ""))
    scale.check(sim)
    return scale


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """argparse type: an integer in [lo, hi]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {lo}..{hi}")
        return value
    parse.__name__ = "integer"
    return parse


def float_in(lo: float, hi: float, *, low_open: bool = False) -> Callable[[str], float]:
    """argparse type: a finite number in [lo, hi] (or (lo, hi] with ``low_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value > hi or value < lo or (low_open and value == lo):
            bound = f"({lo:g}, {hi:g}]" if low_open else f"[{lo:g}, {hi:g}]"
            raise argparse.ArgumentTypeError(f"{text} is out of range: give a finite number in {bound}")
        return value
    parse.__name__ = "number"
    return parse
