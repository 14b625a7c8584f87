"""``edgepilot datagen``: write a segmentation + detection dataset from a simulator."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgepilot.commands.common import add_scale_arguments, int_in, scale_from_args
from edgepilot.runtime.errors import EdgepilotError
from edgepilot.runtime.options import parse_shape

NAME = "datagen"
HELP = "generate images, CARLA-tag labels and COCO boxes from a simulator"
DESCRIPTION = """Generate a dataset by driving the scripted baseline through seeded episodes.

Writes images/, labels/ (PNG, CARLA tag ids), annotations.json (COCO) and
manifest.json. A non-empty DIR is refused unless --force, which deletes the
files datagen writes there. Train/val split by whole episodes.

--workers K drives the episodes on K Ray workers (local Ray, or --ray ADDRESS;
with --sim carla one server per worker from --servers FILE); each worker sends
its episodes' encoded frames back, this command writes them into DIR (no shared
filesystem needed on a cluster) and merges the JSON in episode order: the same
bytes as --workers 1.

example:
  edgepilot datagen --sim builtin --scenario highway --frames 200 --seed 1 --out data/hw
  edgepilot datagen --preview-only --out data/hw
  edgepilot datagen --scenario highway --frames 2000 --workers 2 --out data/hw2k
"""


MAX_SIDE = 4096  # a 4096x4096 RGB frame plus labels is ~64 MB per step


def _size(text: str) -> tuple[int, int]:
    try:
        hw = parse_shape(text)
    except EdgepilotError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if hw is None or min(hw) < 16 or max(hw) > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"size {text!r}: give HxW with each side in 16..{MAX_SIDE}, e.g. 256x512")
    return hw


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sim", choices=("builtin", "carla"), default="builtin",
                   help="simulator: the built-in world (default) or a CARLA server (docs/carla.md)")
    p.add_argument("--scenario", default="highway",
                   help="builtin: highway, racetrack, roundabout, merge; carla: town01.. (configs/sim/; default highway)")
    p.add_argument("--frames", type=int_in(1, 10_000_000), default=100, help="frames in total (default 100)")
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=0,
                   help="dataset seed (default 0); episode k is seeded seed * 10007 + k: same seed, same dataset")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--size", type=_size, default=(256, 512), metavar="HxW", help="camera image size (default 256x512)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--episodes", type=int_in(1, 1_000_000), help="spread the frames over K episodes")
    group.add_argument("--frames-per-episode", type=int_in(1, 1_000_000), default=50, metavar="M",
                       help="frames per episode (default 50); episodes = frames / M")
    p.add_argument("--format", choices=("png", "jpg"), default="png", help="image format (labels are always PNG)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty DIR")
    p.add_argument("--preview", action="store_true", help="also write DIR/preview.png")
    p.add_argument("--preview-only", action="store_true", help="only (re)write DIR/preview.png")
    add_scale_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (or summary line) on stderr")


def main(args: argparse.Namespace) -> int:
    from edgepilot.sim.datagen import DatagenConfig, generate
    from edgepilot.sim.preview import write_preview

    if args.preview_only:
        print(f"wrote {write_preview(args.out)}")
        return 0
    cfg = DatagenConfig(
        out=args.out, sim=args.sim, scenario=args.scenario, frames=args.frames, seed=args.seed,
        height=args.size[0], width=args.size[1], episodes=args.episodes,
        frames_per_episode=args.frames_per_episode, fmt=args.format, force=args.force,
    )
    manifest = generate(cfg, progress=not args.no_progress, scale=scale_from_args(args, args.sim))
    print(f"wrote {manifest['images']} frames in {len(manifest['episodes'])} episodes to {args.out}")
    if args.preview:
        print(f"wrote {write_preview(args.out)}")
    return 0
