"""trtexec command lines for a bundle's TensorRT engines, and the bash script that runs them.

The commands build what :func:`edgepilot.runtime.build.tensorrt.build_engine`
builds: a strongly typed network whose precision comes from the ONNX graph
given (``model.onnx``, ``model.fp16.onnx`` or the Q/DQ ``model.int8.onnx``),
no ``--fp16``/``--int8`` and no calibration, a workspace limit and a timing
cache. TensorRT 10 needs ``--stronglyTyped`` (weak typing is deprecated since
10.12); TensorRT 11 removed the precision flags and builds every network
strongly typed, so there the flag is left out. TensorRT 8 (JetPack 5 and 6.0)
has no strongly typed networks and is refused. The script finds the version
when it runs (the ``[TensorRT vMMmmpp]`` banner of ``trtexec --help``, else
dpkg, else the Python bindings; ``TRT_VERSION`` overrides) and branches on it,
so one script serves a TensorRT 10 and a TensorRT 11 machine.

Engines written by trtexec carry no fingerprint sidecar, so ``edgepilot run
--backend trt`` does not load them (it builds or finds its own, fingerprinted
engine in the bundle's cache). They are for ``trtexec --loadEngine`` and code
of your own.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from edgepilot.runtime.errors import EngineError

MIN_MAJOR = 10  # the first TensorRT with strongly typed networks in trtexec that we support


@dataclass(frozen=True, slots=True)
class TrtexecJob:
    """One engine to build; paths as the script sees them (relative to its working folder)."""

    precision: str
    onnx: str
    engine: str
    shapes: str | None = None  # a --shapes spec, given only for bundles with dynamic inputs


def shapes_spec(shapes: Mapping[str, Sequence[int]]) -> str:
    """trtexec's ``--shapes`` value: ``image:1x3x128x256,other:1x4``."""
    return ",".join(f"{name}:{'x'.join(str(int(d)) for d in dims)}" for name, dims in shapes.items())


def typed_flags(major: int) -> list[str]:
    """The strong-typing flag for TensorRT ``major``: opt in on 10, nothing on 11+ (always on)."""
    if major < MIN_MAJOR:
        raise EngineError(f"TensorRT {major} has no strongly typed networks: these engines need TensorRT "
                          f"{MIN_MAJOR} or later (JetPack 6.1+)", exit_code=2)
    return ["--stronglyTyped"] if major == MIN_MAJOR else []


def _tail(job: TrtexecJob, workspace_mb: int, timing_cache: str) -> list[str]:
    shapes = [f"--shapes={job.shapes}"] if job.shapes else []
    return [f"--memPoolSize=workspace:{workspace_mb}M", f"--timingCacheFile={timing_cache}", *shapes]


def trtexec_command(job: TrtexecJob, *, workspace_mb: int, timing_cache: str, major: int,
                    trtexec: str = "trtexec") -> list[str]:
    """The argv that builds ``job`` with the trtexec of TensorRT ``major`` (workspace in MB)."""
    return [trtexec, f"--onnx={job.onnx}", f"--saveEngine={job.engine}", *typed_flags(major),
            *_tail(job, workspace_mb, timing_cache)]


_FIND = r'''find_trtexec() {
  if [[ -n ${TRTEXEC:-} ]]; then command -v "$TRTEXEC"
  elif command -v trtexec >/dev/null 2>&1; then command -v trtexec
  elif [[ -x /usr/src/tensorrt/bin/trtexec ]]; then echo /usr/src/tensorrt/bin/trtexec  # JetPack's place
  else return 1
  fi
}

# The TensorRT version: trtexec's banner "[TensorRT v100300]" (8.x: "[TensorRT v8602]"), else dpkg, else Python.
trt_version() {
  if [[ -n ${TRT_VERSION:-} ]]; then echo "$TRT_VERSION"; return; fi
  local banner n pkg v
  banner=$("$1" --help 2>&1 || true)
  if [[ $banner =~ TensorRT\ v([0-9]+) ]]; then
    n=${BASH_REMATCH[1]}
    if (( n >= 100000 )); then echo "$((n / 10000)).$((n / 100 % 100)).$((n % 100))"
    else echo "$((n / 1000)).$((n / 100 % 10)).$((n % 100))"
    fi
    return
  fi
  for pkg in libnvinfer-bin tensorrt libnvinfer10; do
    # shellcheck disable=SC2016  # ${Version} is a dpkg-query field, not a shell variable
    v=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)
    if [[ $v =~ ^[0-9] ]]; then echo "$v"; return; fi
  done
  python3 -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || true
}

if ! found=$(find_trtexec); then
  echo "error: trtexec not found${TRTEXEC:+ at $TRTEXEC}: install TensorRT (JetPack: sudo apt install tensorrt) or set TRTEXEC=/path/to/trtexec" >&2
  exit 2
fi
TRTEXEC=$found
version=$(trt_version "$TRTEXEC")
major=${version%%.*}
if ! [[ $major =~ ^[0-9]+$ ]]; then
  echo "error: cannot tell which TensorRT $TRTEXEC belongs to: set TRT_VERSION, e.g. TRT_VERSION=10.3 $0" >&2
  exit 2
fi
if (( major < @MIN@ )); then
  echo "error: TensorRT $version has no strongly typed networks: these engines need TensorRT @MIN@ or later (JetPack 6.1+)" >&2
  exit 2
elif (( major == @MIN@ )); then
  typed=(--stronglyTyped)  # opt in: weak typing (--fp16, --int8) is deprecated since 10.12
else
  typed=()  # TensorRT 11+: every network is strongly typed and the precision flags are gone
fi
echo "trtexec: $TRTEXEC (TensorRT $version)"
'''


def _cd(workdir: str) -> str:
    here = '"$(dirname "${BASH_SOURCE[0]}")"'
    return f"cd {here}" if workdir in ("", ".") else f'cd {here}/{shlex.quote(workdir)}'


def _usage_check(edgepilot_build: Sequence[str] | None) -> list[str]:
    if edgepilot_build is None:
        return ['if (( $# )); then echo "usage: $0 (no arguments)" >&2; exit 2; fi']
    return [
        "mode=auto",
        'case "${1:-}" in',
        '  "") ;;',
        "  --trtexec) mode=trtexec ;;",
        '  *) echo "usage: $0 [--trtexec]  (--trtexec: build with trtexec even where edgepilot can)" >&2; exit 2 ;;',
        "esac",
        "if [[ $mode == auto ]] && python3 -c 'import edgepilot, tensorrt' >/dev/null 2>&1; then",
        '  echo "edgepilot and TensorRT Python found: edgepilot build (the fingerprinted engine edgepilot run loads)"',
        f"  exec python3 -m edgepilot {shlex.join(edgepilot_build)}",
        "fi",
    ]


def build_script(jobs: Sequence[TrtexecJob], *, workspace_mb: int, timing_cache: str, workdir: str,
                 title: str, edgepilot_build: Sequence[str] | None = None) -> str:
    """A bash script that builds ``jobs`` with trtexec for the TensorRT it finds (10 or 11+).

    ``workdir``: the folder the job paths are relative to, relative to the
    script's own folder. ``edgepilot_build``: arguments of ``edgepilot`` to run
    instead where edgepilot and TensorRT's Python bindings are importable (the
    script's ``--trtexec`` argument forces trtexec).
    """
    lines = ["#!/usr/bin/env bash", f"# {title}",
             "# Strongly typed builds: each precision's types come from its ONNX graph (no --fp16/--int8, no",
             "# calibrator). TensorRT 10 gets --stronglyTyped; TensorRT 11 is always strongly typed.",
             "# TRTEXEC=/path/to/trtexec picks the binary; TRT_VERSION=10.3 skips detecting the version.",
             "set -euo pipefail", _cd(workdir), "",
             *_usage_check(edgepilot_build), "", _FIND.replace("@MIN@", str(MIN_MAJOR)).rstrip("\n")]
    folders = sorted({str(PurePosixPath(path).parent) for job in jobs
                      for path in (job.engine, timing_cache)} - {"."})
    if folders:
        lines.append(f"mkdir -p {shlex.join(folders)}")
    for job in jobs:
        tail = shlex.join(_tail(job, workspace_mb, timing_cache))
        lines += [f"echo {shlex.quote(f'{job.precision}: {job.onnx} -> {job.engine}')}",
                  f'"$TRTEXEC" {shlex.join([f"--onnx={job.onnx}", f"--saveEngine={job.engine}"])} '
                  f'${{typed[@]+"${{typed[@]}}"}} {tail}']
    return "\n".join(lines) + "\n"
