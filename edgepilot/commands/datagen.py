"""``edgepilot datagen``: write a segmentation + detection dataset from a simulator."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgepilot.runtime.errors import EdgepilotError

NAME = "datagen"
HELP = "generate images, CARLA-tag labels and COCO boxes from a simulator"
DESCRIPTION = """Generate a dataset by driving the scripted baseline through seeded episodes.

Writes images/, labels/ (PNG, CARLA tag ids), annotations.json (COCO) and
manifest.json. A non-empty DIR is refused unless --force, which deletes the
files datagen writes there. Train/val split by whole episodes.

example:
  edgepilot datagen --sim builtin --scenario highway --frames 200 --seed 1 --out data/hw
  edgepilot datagen --preview-only --out data/hw
"""


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 256x512 (HxW), got {text!r}") from None
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError("size must be at least 16x16")
    return h, w


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sim", choices=("builtin", "carla"), default="builtin",
                   help="simulator: the built-in world (default) or a CARLA server (docs/carla.md)")
    p.add_argument("--scenario", default="highway",
                   help="builtin: highway, racetrack, roundabout, merge; carla: town01.. (configs/sim/; default highway)")
    p.add_argument("--frames", type=int, default=100, help="frames in total (default 100)")
    p.add_argument("--seed", type=int, default=0,
                   help="dataset seed (default 0); episode k is seeded seed * 10007 + k: same seed, same dataset")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--size", type=_size, default=(256, 512), metavar="HxW", help="camera image size (default 256x512)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--episodes", type=int, help="spread the frames over K episodes")
    group.add_argument("--frames-per-episode", type=int, default=50, metavar="M",
                       help="frames per episode (default 50); episodes = frames / M")
    p.add_argument("--format", choices=("png", "jpg"), default="png", help="image format (labels are always PNG)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty DIR")
    p.add_argument("--preview", action="store_true", help="also write DIR/preview.png")
    p.add_argument("--preview-only", action="store_true", help="only (re)write DIR/preview.png")


def main(args: argparse.Namespace) -> int:
    from edgepilot.sim.datagen import DatagenConfig, generate
    from edgepilot.sim.preview import write_preview

    if args.preview_only:
        print(f"wrote {write_preview(args.out)}")
        return 0
    if args.frames < 1 or (args.episodes is not None and args.episodes < 1) or args.frames_per_episode < 1:
        raise EdgepilotError("--frames, --episodes and --frames-per-episode must be >= 1", exit_code=2)
    cfg = DatagenConfig(
        out=args.out, sim=args.sim, scenario=args.scenario, frames=args.frames, seed=args.seed,
        height=args.size[0], width=args.size[1], episodes=args.episodes,
        frames_per_episode=args.frames_per_episode, fmt=args.format, force=args.force,
    )
    manifest = generate(cfg)
    print(f"wrote {manifest['images']} frames in {len(manifest['episodes'])} episodes to {args.out}")
    if args.preview:
        print(f"wrote {write_preview(args.out)}")
    return 0
