"""``edgepilot drive``: the closed loop camera -> perception -> policy -> control, scored."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgepilot.commands.common import add_scale_arguments, int_in, scale_from_args

NAME = "drive"
HELP = "drive the built-in world or CARLA with the perception and policy bundles (video, scored report)"
DESCRIPTION = """\
Drive episodes in the built-in world (no server) or in CARLA (--sim carla, a
server at --host/--port, its 20 Hz synchronous step). Each tick is synchronous:
one camera frame per simulator step goes through the perception bundles (the
runtime's per-frame call, stamped as in `run`), the policy's observation is built
from the segmentation bundle's predicted class ids (or, with --privileged, from
the simulator's ground-truth labels: the same code path), the policy bundle acts
and its (steer, pedal) becomes the control.

--latency-aware drives every episode a second time with each tick's measured
latency (perception + observation + policy, times --latency-scale) applied as
actuation delay: the control lands that many simulated seconds late and frames
the agent could not have seen are skipped. The report holds both scores.

--emergency-brake (on by default; --no-emergency-brake drives the policy alone)
guards the policy's pedal: full brake while the car ahead in its path closes faster
than 3 m/s^2 of braking can stop (1 m/s^2 while the policy itself brakes at -0.3 or
harder: brake assist, --no-brake-assist turns it off), ranged from the same class-id
map as the view (sim/agent/safety.py). On the coarse maps the drive uses it comes on
too late above 12-16 m/s for a standing car (benchmarks/brake_reach.py); the README
gives what it changed and why it is on (benchmarks/results/valb/README.md).

--driver scripted drives the privileged scripted baseline instead of the policy
(builtin only): the driver the policy is compared with. --driver overtaking is
that driver with lane changes past slower traffic on straight multi-lane roads
(it checks the gap behind, which the policy's forward view cannot see).

The report (--report) holds Leaderboard-style scores per episode, per scenario and
overall (driving_score = route_completion x infraction_penalty, each 0-1, and the
infractions), the per-stage latency summary, and the bundles used; the video
(--out) shows the camera with the segmentation overlay and boxes, the policy's
input view and a HUD. The score table is printed at the end.

Seeds: episodes use --seed, --seed+1, ... in every scenario; the policy was trained
on seeds >= 100000, validated on 900-909 and tuned on 2000-2999, and the agent was
chosen on 3000-3039, so the default 1000+ (and 4000+) are held out.

--workers K runs the episodes on K Ray workers (local Ray, or --ray ADDRESS to join
a cluster), one simulator each; with --sim carla one server per worker from
--servers FILE. Results are merged in seed order: the same scores as --workers 1
(only latencies differ). A worker that dies, or a CARLA server that stops
answering, has its episode retried on another worker (--retries); the report's
"scale" section lists the retries and the servers lost. --out (video) needs
--workers 1.

examples:
  edgepilot drive --episodes 2 --out out/drive.mp4 --report out/drive.json
  edgepilot drive --privileged --scenario roundabout --episodes 5
  edgepilot drive --latency-aware --latency-scale 4 --report out/slow.json
  edgepilot drive --driver scripted --report out/baseline.json
  edgepilot drive --sim carla --scenario town01 --host 127.0.0.1 --port 2000
  edgepilot drive --driver scripted --episodes 8 --workers 2 --report out/k2.json
  edgepilot drive --sim carla --servers servers.yaml --privileged --episodes 50
"""

BUILTIN = ("highway", "racetrack", "roundabout", "merge")


def _scenarios(text: str) -> tuple[str, ...]:
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise argparse.ArgumentTypeError("--scenario: name at least one scenario")
    return items


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--latency-scale {text!r}: give a number, e.g. 4") from None
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"--latency-scale {text!r}: must be in (0, 1000]")
    return value


def default_bundles(root: Path | None = None) -> dict[str, Path | None]:
    """The shipped ``models/seg``, ``models/det`` and ``models/policy`` of a source checkout (None if absent)."""
    import edgepilot

    base = root if root is not None else Path(edgepilot.__file__).resolve().parents[1]
    return {name: (base / "models" / name if (base / "models" / name / "meta.json").is_file() else None)
            for name in ("seg", "det", "policy")}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sim", choices=("builtin", "carla"), default="builtin", help="simulator (default: builtin)")
    p.add_argument("--scenario", type=_scenarios, default=None, metavar="S[,S]",
                   help="builtin: highway, racetrack, roundabout, merge (default: all four); carla: town01.. "
                        "(configs/sim/carla_scenarios.yaml; default town01)")
    p.add_argument("--episodes", type=int_in(1, 10_000), default=2, help="episodes per scenario (default: 2)")
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=1000, help="first episode seed (default: 1000)")
    p.add_argument("--perception", type=_scenarios, default=None, metavar="BUNDLE[,BUNDLE]",
                   help="segmentation (and detection) bundles (default: the shipped models/seg,models/det)")
    p.add_argument("--policy", type=Path, default=None, metavar="BUNDLE",
                   help="policy bundle (default: the shipped models/policy)")
    p.add_argument("--driver", choices=("policy", "scripted", "overtaking"), default="policy",
                   help="policy (default), the privileged scripted baseline driver, or that driver with lane "
                        "changes past slower traffic (the stage-7 policy's expert); scripted ones: builtin only")
    p.add_argument("--privileged", action="store_true",
                   help="observation from the simulator's ground-truth labels instead of the seg bundle's predictions")
    p.add_argument("--emergency-brake", action=argparse.BooleanOptionalAction, default=True,
                   help="guard the policy with emergency braking (sim/agent/safety.py): full brake while the "
                        "vehicle ahead in its path closes faster than 3 m/s^2 of braking can stop (1 m/s^2 while the "
                        "policy brakes at -0.3 or harder), read from the "
                        "same class-id map as the policy's view (default: %(default)s)")
    p.add_argument("--brake-assist", action=argparse.BooleanOptionalAction, default=True,
                   help="with --emergency-brake: brake at 1 m/s^2 of need instead of 3 while the policy itself "
                        "brakes at -0.3 or harder (BrakeConfig.assist_pedal; default: %(default)s)")
    p.add_argument("--latency-aware", action="store_true",
                   help="also drive with the measured latency applied as actuation delay; report both")
    p.add_argument("--latency-scale", type=_scale, default=1.0, metavar="K",
                   help="multiply the measured latency by K (a K-times slower device; default 1)")
    p.add_argument("--backend", default="ort", help="inference backend for every bundle (default: ort)")
    p.add_argument("--precision", default="int8", choices=("fp32", "fp16", "int8"),
                   help="precision of the perception bundles (default: int8; the policy runs fp32)")
    p.add_argument("--size", default="256x512", metavar="HxW", help="camera resolution (default: 256x512)")
    p.add_argument("--out", type=Path, default=None, metavar="VIDEO", help="write the drive video (.mp4 or .avi)")
    p.add_argument("--report", type=Path, default=None, metavar="JSON", help="write the report")
    p.add_argument("--max-steps", type=int_in(0, 1_000_000), default=0,
                   help="end episodes after this many ticks (default 0: the scenario's duration)")
    g = p.add_argument_group("CARLA")
    g.add_argument("--host", default="localhost", help="CARLA server host (default: localhost)")
    g.add_argument("--port", type=int_in(1, 65535), default=2000, help="CARLA server port (default: 2000)")
    add_scale_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (or summary line) on stderr")


def options_from_args(args: argparse.Namespace) -> object:
    from edgepilot.runtime.errors import EdgepilotError
    from edgepilot.runtime.options import parse_shape
    from edgepilot.sim.agent.drive import DriveOptions
    from edgepilot.sim.agent.safety import BrakeConfig
    from edgepilot.sim.types import CameraConfig

    shipped = default_bundles()
    scenarios = args.scenario or (BUILTIN if args.sim == "builtin" else ("town01",))
    if args.sim == "builtin":
        bad = [s for s in scenarios if s not in BUILTIN]
        if bad:
            raise EdgepilotError(f"--scenario {','.join(bad)}: the builtin world has {', '.join(BUILTIN)}",
                                 exit_code=2)
    if args.perception is not None:
        perception = tuple(args.perception)
    elif args.privileged or args.driver != "policy":
        perception = ()  # nothing to perceive unless asked (the video then shows the plain camera)
    else:
        perception = tuple(str(shipped[k]) for k in ("seg", "det") if shipped[k] is not None)
        if shipped["seg"] is None:
            raise EdgepilotError("no segmentation bundle: give --perception BUNDLE (models/seg is not here)",
                                 exit_code=2)
    policy = args.policy or shipped["policy"]
    if policy is None and args.driver == "policy":
        raise EdgepilotError("no policy bundle: give --policy BUNDLE (models/policy is not here)", exit_code=2)
    for path in (*perception, *( [policy] if policy else [])):
        if not (Path(path) / "meta.json").is_file():
            raise EdgepilotError(f"bundle {path} does not exist (no meta.json there)", exit_code=2)
    hw = parse_shape(args.size)
    if hw is None:
        raise EdgepilotError(f"--size {args.size!r}: give HxW, e.g. 256x512", exit_code=2)
    scale = scale_from_args(args, args.sim)
    if scale.workers > 1 and args.out is not None:
        raise EdgepilotError(f"--out {args.out}: the video is written by serial runs only; drop --out or "
                             "use --workers 1", exit_code=2)
    sim_options = {"host": args.host, "port": args.port} if args.sim == "carla" else {}
    if scale.servers:
        sim_options = scale.servers[0].sim_options()  # --workers 1: the first server
    return DriveOptions(sim=args.sim, scenarios=tuple(scenarios), episodes=args.episodes, seed=args.seed,
                        perception=perception, policy=str(policy) if policy else "", driver=args.driver,
                        privileged=args.privileged, emergency_brake=args.emergency_brake,
                        brake_config=None if args.brake_assist else BrakeConfig(assist_pedal=-1.0),
                        latency_aware=args.latency_aware,
                        latency_scale=args.latency_scale, backend=args.backend, precision=args.precision,
                        out=str(args.out) if args.out else None, report=str(args.report) if args.report else None,
                        camera=CameraConfig(width=hw[1], height=hw[0]), sim_options=sim_options,
                        max_steps=args.max_steps, progress=not args.no_progress, scale=scale)


def main(args: argparse.Namespace) -> int:
    from edgepilot.runtime.outputs import check_outputs
    from edgepilot.sim.agent.drive import drive, score_table, write_report

    opts = options_from_args(args)
    check_outputs({"--out": args.out, "--report": args.report})
    if args.out is not None:
        from edgepilot.runtime.sinks import video_fourcc

        video_fourcc(args.out)  # an unknown extension is refused before any episode runs
    report = drive(opts)  # type: ignore[arg-type]
    if args.report is not None:
        write_report(report, args.report)
    print(score_table(report))
    wrote = [str(p) for p in (args.out, args.report) if p is not None]
    if wrote:
        print(f"wrote {', '.join(wrote)}")
    return 0
