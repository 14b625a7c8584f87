"""README picture: the shipped bundles on held-out frames (segmentation overlay, vehicle boxes).

One frame per scenario (the one with the most ground-truth vehicles, so the boxes show) from
the held-out detection sets (datagen ``--seed 1``, never trained
or tuned on; see configs/train/det512.yaml for the commands that make them), run through
``models/seg`` and ``models/det`` by the runtime (ort, fp32, the per-frame processor, as
``edgepilot run`` does), drawn by the runtime's annotator: the segmentation overlay first,
then the detector's boxes with their scores, and the ground-truth boxes as thin white frames.
Frames smaller than 512 px wide are upscaled 2x before they go in (the processors resize to
the model's input either way; boxes come back in the frame's coordinates), so labels are legible.

Run: ``python docs/make_heldout_figure.py`` (writes docs/heldout_predictions.png, ~2 s)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from edgepilot.runtime.draw import Annotator
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.frame import Frame

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("highway", "racetrack", "roundabout", "merge")


_COCO: dict[Path, dict[str, list[list[float]]]] = {}


def ground_truth(folder: Path, image_name: str) -> list[list[float]]:
    """COCO [x, y, w, h] boxes of one image of a datagen folder."""
    if folder not in _COCO:
        coco = json.loads((folder / "annotations.json").read_text())
        names = {im["id"]: Path(im["file_name"]).name for im in coco["images"]}
        by: dict[str, list[list[float]]] = {}
        for a in coco["annotations"]:
            by.setdefault(names[a["image_id"]], []).append(a["bbox"])
        _COCO[folder] = by
    return _COCO[folder].get(image_name, [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "det512-heldout", help="held-out datagen root")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "heldout_predictions.png")
    args = parser.parse_args()

    seg = load_engine(ROOT / "models" / "seg", "ort", "fp32")
    det = load_engine(ROOT / "models" / "det", "ort", "fp32")
    seg_p, det_p = seg.make_processor(), det.make_processor()
    draw_seg = Annotator(seg.bundle.classes, seg.bundle.palette, alpha=0.45)
    draw_det = Annotator(det.bundle.classes, [[255, 60, 60]] * len(det.bundle.classes))
    tiles = []
    for k, scenario in enumerate(SCENARIOS):
        folder = args.data / scenario
        images = sorted((folder / "images").glob("*.png"))
        if not images:
            raise SystemExit(f"no held-out images in {folder}/images: make them with the datagen commands "
                             "in configs/train/det512.yaml (--seed 1)")
        path = max(images, key=lambda p: (len(ground_truth(folder, p.name)), p.name))
        image = cv2.imread(str(path))
        k = 2 if image.shape[1] < 512 else 1
        image = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_LINEAR) if k > 1 else image
        canvas = draw_seg(image, seg_p(Frame.captured(k, image)))
        canvas = draw_det(canvas, det_p(Frame.captured(k, image)))
        for x, y, w, h in (k * np.asarray(b) for b in ground_truth(folder, path.name)):
            cv2.rectangle(canvas, (int(x), int(y)), (int(x + w), int(y + h)), (255, 255, 255), 1)
        cv2.putText(canvas, f"{scenario} (held-out {path.stem})", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(canvas)
    grid = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), grid)
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main()
