"""``edgepilot demo``: the main job on the built-in default, no downloads, no GPU.

By default the demo is ``edgepilot drive`` in the built-in world with the shipped
bundles (``models/seg``, ``models/det`` INT8 on ONNX Runtime, ``models/policy``): a
couple of episodes, a video and a report, ending with the score table. ``--loop``
(or an install without the shipped bundles, e.g. a wheel) runs the perception loop
``edgepilot run`` over a clip rendered by the built-in world (or a generated
pattern when the ``[sim]`` extra is missing) with ``models/seg`` or, without it, a
tiny *untrained* net, and says so.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edgepilot.commands.common import int_in
from edgepilot.runtime.engines import BACKEND_CHOICES

NAME = "demo"
HELP = "drive the built-in world with the shipped bundles (video, report, score table); --loop: the perception loop"
DESCRIPTION = """\
Default: `edgepilot drive` in the built-in world (no server) with the shipped
bundles: camera -> models/seg + models/det (INT8, ONNX Runtime) -> models/policy
-> control, one episode of each --scenario (default highway,roundabout, seeds from
1000, never trained on). Writes --out/drive.mp4 (camera with overlay and boxes,
the policy's input view, a HUD) and --out/drive.json (scores and per-stage
latency), then prints the score table. Takes under a minute on a 2-core CPU.

--loop (also where models/policy or models/seg are absent, e.g. a wheel):
render a short clip from the built-in world (highway scenario, no server needed;
a generated pattern if the [sim] extra is not installed), build a tiny untrained
segmentation bundle, and run `edgepilot run` over the clip (backend auto: the CPU
backend measured fastest for the bundle).

Writes into --out (default out/demo): clip.avi, annotated.mp4, results.jsonl and
report.json, and prints the latency table. The model is the trained reference
bundle models/seg of a source checkout; where that is absent (an installed wheel)
a tiny *untrained* net is built into out/demo/bundle and the demo says so.

examples:
  edgepilot demo
  edgepilot demo --scenario merge --episodes 2
  edgepilot demo --loop --frames 120 --out out/demo
"""

log = logging.getLogger("edgepilot.demo")
UNTRAINED_NOTE = ("NOTE: untrained model (random weights): the overlay is meaningless; "
                  "this demo shows the loop and its latency report, not perception quality.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: out/demo)")
    p.add_argument("--loop", action="store_true", help="the perception loop over a clip instead of the drive")
    p.add_argument("--scenario", default="highway,roundabout", metavar="S[,S]",
                   help="drive: builtin scenarios, one --episodes each (default: highway,roundabout)")
    p.add_argument("--episodes", type=int_in(1, 100), default=1, help="drive: episodes per scenario (default: 1)")
    p.add_argument("--max-steps", type=int_in(0, 100_000), default=0,
                   help="drive: end episodes after this many ticks (default 0: the scenario's duration)")
    p.add_argument("--frames", type=int_in(1, 100_000), default=150, help="--loop: frames in the clip (default: 150)")
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=None,
                   help="world seed (default: 1000 for the drive, 0 for --loop)")
    p.add_argument("--backend", default="auto", choices=list(BACKEND_CHOICES),
                   help="inference backend (default: auto, the fastest installed for the bundle)")
    p.add_argument("--model", type=Path, default=None, metavar="BUNDLE",
                   help="segmentation bundle (default: the trained models/seg of a source checkout, else a "
                        "tiny untrained net)")


def reference_bundle(root: Path | None = None) -> Path | None:
    """The trained ``models/seg`` beside the package in a source checkout (None elsewhere, e.g. a wheel)."""
    import edgepilot

    base = root if root is not None else Path(edgepilot.__file__).resolve().parents[1]
    folder = base / "models" / "seg"
    return folder if (folder / "meta.json").is_file() else None


def _describe(bundle_path: Path) -> str:
    """One line on the bundle: its held-out FP32 accuracy from meta.json when it has one."""
    from edgepilot.runtime.bundle import load_bundle

    acc = load_bundle(bundle_path).meta.get("accuracy", {}).get("fp32", {})
    if "miou" in acc:
        return f"trained segmentation bundle, held-out mIoU {acc['miou'] * 100:.1f} (meta.json)"
    return "segmentation bundle (no measured accuracy in its meta.json)"


def make_world_clip(path: Path, frames: int, seed: int, hw: tuple[int, int] = (256, 512)) -> str:
    """Render ``frames`` steps of the built-in highway world into an MJPG clip; returns a description."""
    import cv2

    from edgepilot.sim.builtin.world import BuiltinSimulator
    from edgepilot.sim.driver import ScriptedDriver
    from edgepilot.sim.types import CameraConfig

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 20.0, (hw[1], hw[0]))
    try:
        sim = BuiltinSimulator("highway", CameraConfig(width=hw[1], height=hw[0]), seed=seed)
        with sim:
            obs = sim.reset(seed)
            driver = ScriptedDriver()
            driver.reset(seed)
            for _ in range(frames):
                writer.write(cv2.cvtColor(obs.image, cv2.COLOR_RGB2BGR))
                obs = sim.step(driver.act(sim.privileged(), obs.ego))
    finally:
        writer.release()
    return f"{frames} frames of the built-in 'highway' world (seed {seed})"


def make_pattern_clip(path: Path, frames: int, hw: tuple[int, int] = (256, 512)) -> str:
    """The synthetic camera's pattern as a clip, for installs without the [sim] extra."""
    from edgepilot.runtime.sources import write_pattern_clip

    write_pattern_clip(path, frames, hw, fps=20.0)
    return f"{frames} frames of a generated pattern (install edgepilot[sim] for the built-in world)"


def _drive(args: argparse.Namespace, out: Path) -> int:
    """The default demo: ``edgepilot drive`` with the shipped bundles, into ``out``."""
    from edgepilot.commands import drive

    parser = argparse.ArgumentParser(prog="edgepilot demo")
    drive.add_arguments(parser)
    argv = ["--scenario", args.scenario, "--episodes", str(args.episodes), "--out", str(out / "drive.mp4"),
            "--report", str(out / "drive.json"), "--max-steps", str(args.max_steps),
            "--seed", str(1000 if args.seed is None else args.seed)]
    print(f"demo: edgepilot drive {' '.join(argv)}")
    return drive.main(parser.parse_args(argv))


def main(args: argparse.Namespace) -> int:
    from edgepilot.commands.drive import default_bundles
    from edgepilot.commands.run import RunOptions, run
    from edgepilot.export import tiny
    from edgepilot.runtime.errors import EdgepilotError
    from edgepilot.runtime.outputs import check_outputs

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise EdgepilotError(f"--out {out}: is a file, not a folder; give a folder", exit_code=2)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgepilotError(f"--out {out}: cannot create it ({exc.strerror}); choose another folder",
                             exit_code=2) from exc
    check_outputs({}, folders={"--out": out})
    shipped = default_bundles()
    if not args.loop and args.model is None:
        if shipped["policy"] is not None and shipped["seg"] is not None:
            return _drive(args, out)
        log.info("no shipped policy/segmentation bundles here (models/policy, models/seg): the loop demo instead")
    if args.seed is None:
        args.seed = 0
    clip = out / "clip.avi"
    try:
        what = make_world_clip(clip, args.frames, args.seed)
    except (ImportError, EdgepilotError) as exc:
        log.info("built-in world unavailable (%s); using a generated pattern", str(exc).splitlines()[0])
        what = make_pattern_clip(clip, args.frames)
    bundle = args.model or reference_bundle()
    note = "" if bundle is not None else UNTRAINED_NOTE
    print(f"clip: {what} -> {clip}")
    if bundle is None:
        bundle = tiny.segmentation_bundle(out / "bundle", hw=(256, 512), width=16)
        print(f"model: {bundle} (tiny segmentation net, argmax in the graph)")
        print(note)
    else:
        print(f"model: {bundle} ({_describe(bundle)})")
    code = run(RunOptions(str(clip), str(bundle), backend=args.backend, out=str(out / "annotated.mp4"),
                          jsonl=str(out / "results.jsonl"), report=str(out / "report.json")))
    if code == 0:
        print(f"wrote {out / 'annotated.mp4'}, {out / 'results.jsonl'}, {out / 'report.json'}")
        if note:
            print(note)
    return code
