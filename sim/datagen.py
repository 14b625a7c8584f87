"""Dataset generation: images, CARLA-tag label PNGs and COCO boxes from a simulator.

Layout of the output folder:
  images/<episode>_<frame>.png|jpg   RGB
  labels/<episode>_<frame>.png       HxW uint8 CARLA tag ids
  annotations.json                   COCO boxes; each image carries episode and split
  manifest.json                      seed, scenario, camera, sizes, versions, split per episode
Splits are whole episodes (never frames of one episode in two splits). The same
arguments give byte-identical labels and identical COCO JSON, whatever ``--workers``: with
workers > 1 (``sim.scale``, Ray) each worker encodes its episodes' frames and sends them back
with their results (so workers on other machines need no shared filesystem), this process writes
them as they arrive, and the COCO ids and the manifest are assigned in episode order afterwards,
as the serial run assigns them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from edgepilot.perception.data.layout import (
    ANNOTATIONS,
    IMAGES_DIR,
    LABELS_DIR,
    MANIFEST,
    OUR_FILES,
    frame_stem,
    image_file,
    label_file,
)
from edgepilot.runtime.errors import EdgepilotError
from edgepilot.runtime.outputs import check_outputs, write_text_atomic
from edgepilot.runtime.progress import Progress
from edgepilot.runtime.progress import progress as progress_bar
from edgepilot.sim.driver import DriverConfig, PrivilegedView, ScriptedDriver
from edgepilot.sim.scale import ScaleOptions, Server, run_jobs
from edgepilot.sim.tags import CARLA_TAGS, TAG_IDS
from edgepilot.sim.types import Autopilot, CameraConfig, Control, Observation, Simulator


@dataclass(frozen=True, slots=True)
class DatagenConfig:
    """What to generate; ``episodes`` wins over ``frames_per_episode`` when set."""

    out: Path
    sim: str = "builtin"
    scenario: str = "highway"
    frames: int = 100
    seed: int = 0
    height: int = 256
    width: int = 512
    episodes: int | None = None
    frames_per_episode: int = 50
    fmt: str = "png"
    force: bool = False
    stride: int = 4  # simulator steps between saved frames (0.2 s at 20 Hz)
    warmup_steps: int = 10  # steps driven before the first saved frame
    val_every: int = 5  # every val_every-th episode goes to the val split

    def per_episode(self) -> int:
        return math.ceil(self.frames / self.episodes) if self.episodes else self.frames_per_episode

    def episode_seed(self, episode: int) -> int:
        return self.seed * 10_007 + episode

    def split(self, episode: int) -> str:
        return "val" if episode % self.val_every == self.val_every - 1 else "train"


def check_out(cfg: DatagenConfig) -> None:
    """Refuse an output that is not a folder, or a non-empty one without ``force`` (exit 2)."""
    out = cfg.out
    if out.exists() and not out.is_dir():
        raise EdgepilotError(f"--out {out} exists and is not a folder; give a folder", exit_code=2)
    if out.exists() and any(out.iterdir()) and not cfg.force:
        raise EdgepilotError(f"--out {out} is not empty: pass --force to overwrite it", exit_code=2)
    for folder in (out, *out.parents):  # a missing --out (and its parents) is created
        if folder.exists():
            if not folder.is_dir():
                raise EdgepilotError(f"--out {out}: {folder} is a file, not a folder", exit_code=2)
            check_outputs({}, folders={"--out": folder})
            break


def _publish(stage: Path, out: Path) -> None:
    """Move a finished dataset from ``stage`` into ``out``, replacing our files there only."""
    out.mkdir(parents=True, exist_ok=True)
    for name in OUR_FILES:
        p = out / name
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    for item in stage.iterdir():
        os.replace(item, out / item.name)


def generate(cfg: DatagenConfig, progress: bool = True, scale: ScaleOptions | None = None) -> dict:
    """Drive episodes and write the dataset; returns the manifest.

    Frames are written to a hidden staging folder beside ``cfg.out`` and moved
    into it only when the run has finished, so a run that fails or is
    interrupted leaves ``cfg.out`` as it was and nothing that blocks a retry.
    ``scale``: the episodes on Ray workers, whose frames come back over Ray and are
    written here; its first server, if any, is the serial run's.
    """
    scale = scale or ScaleOptions()
    scale.check(cfg.sim)
    check_out(cfg)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{cfg.out.name}.partial-", dir=cfg.out.parent))
    try:
        manifest = _generate_into(dataclasses.replace(cfg, out=stage), progress, scale)
        _publish(stage, cfg.out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return manifest


def _generate_into(cfg: DatagenConfig, progress: bool, scale: ScaleOptions) -> dict:
    from edgepilot.sim.registry import make_simulator

    (cfg.out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    (cfg.out / LABELS_DIR).mkdir(exist_ok=True)
    camera = CameraConfig(width=cfg.width, height=cfg.height)
    if scale.workers > 1:
        return _finish(cfg, camera, *_generate_scaled(cfg, scale, progress))
    driver = _driver()
    coco = _coco_skeleton()
    episodes: list[dict] = []
    saved = 0
    options = scale.servers[0].sim_options() if scale.servers else {}
    with make_simulator(cfg.sim, scenario=cfg.scenario, camera=camera, **options) as sim:
        bar = progress_bar(cfg.frames, "datagen", "frame", enabled=progress)
        try:
            while saved < cfg.frames:
                e = len(episodes)
                n = _episode(sim, driver, cfg, e, min(cfg.per_episode(), cfg.frames - saved), coco, bar,
                             functools.partial(_write_file, cfg.out))
                saved += n
                episodes.append({"episode": e, "seed": cfg.episode_seed(e), "split": cfg.split(e), "frames": n})
                if e >= 10 * cfg.frames:
                    raise _no_frames(cfg)
        finally:
            bar.close()
    return _finish(cfg, camera, coco, episodes)


def _driver() -> ScriptedDriver:
    return ScriptedDriver(DriverConfig(steer_noise=0.02, speed_noise=0.15))


def _no_frames(cfg: DatagenConfig) -> EdgepilotError:
    return EdgepilotError(f"{cfg.scenario}: episodes end before any frame is saved", exit_code=1)


def _finish(cfg: DatagenConfig, camera: CameraConfig, coco: dict, episodes: list[dict]) -> dict:
    """Categories, then annotations.json and manifest.json; returns the manifest."""
    used = sorted({a["category_id"] for a in coco["annotations"]} | {TAG_IDS["Car"]})
    coco["categories"] = [{"id": t, "name": CARLA_TAGS[t][0], "supercategory": "vehicle"} for t in used]
    _write_json(cfg.out / ANNOTATIONS, coco)
    manifest = _manifest(cfg, camera, episodes, len(coco["images"]))
    _write_json(cfg.out / MANIFEST, manifest)
    return manifest


Sink = Callable[[str, bytes], None]  # (file name relative to the dataset folder, its bytes)


def _write_file(out: Path, name: str, data: bytes) -> None:
    path = out / name
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise EdgepilotError(f"cannot write {path}: {exc.strerror or exc}", exit_code=2) from exc


def _episode(sim: Simulator, driver: ScriptedDriver, cfg: DatagenConfig, e: int, want: int, coco: dict,
             bar: Progress, sink: Sink) -> int:
    """Run one episode, handing up to ``want`` frames' files to ``sink``; returns how many were saved."""
    seed = cfg.episode_seed(e)
    pilot = _pilot(sim, driver, seed)
    obs = sim.reset(seed=seed)
    saved, step = 0, 0
    while saved < want:
        obs = sim.step(pilot(obs))
        step += 1
        if step >= cfg.warmup_steps and (step - cfg.warmup_steps) % cfg.stride == 0:
            _save(obs, cfg, e, saved, coco, sink)
            saved += 1
            bar.update(1)
        if obs.info.get("terminated") or obs.info.get("truncated"):
            break
    return saved


class DatagenWorker:
    """One Ray worker's episodes: its own simulator and scripted driver; it returns each
    episode's encoded files (``files``: name -> bytes, written by the caller) and their COCO
    records with episode-local ids (1, 2, ...). It writes nothing itself."""

    def __init__(self, cfg: DatagenConfig, server: Server | None) -> None:
        from edgepilot.sim.registry import make_simulator

        camera = CameraConfig(width=cfg.width, height=cfg.height)
        options = server.sim_options() if server is not None else {}
        self.cfg, self.driver = cfg, _driver()
        self.sim = make_simulator(cfg.sim, scenario=cfg.scenario, camera=camera, **options)

    def run(self, e: int) -> dict:
        """Episode ``e`` with all of its ``per_episode`` frames (the merge may keep fewer)."""
        coco, files = _coco_skeleton(), dict[str, bytes]()
        n = _episode(self.sim, self.driver, self.cfg, e, self.cfg.per_episode(), coco,
                     progress_bar(None, "", "", enabled=False), files.__setitem__)
        return {"episode": e, "frames": n, "images": coco["images"], "annotations": coco["annotations"],
                "files": files}

    def close(self) -> None:
        self.sim.close()


def _generate_scaled(cfg: DatagenConfig, scale: ScaleOptions, progress: bool) -> tuple[dict, list[dict]]:
    """Episodes 0, 1, ... on Ray, taken only while the frames still missing could need them."""
    def more(done: Mapping[int, dict], pending: int) -> bool:
        return sum(part["frames"] for part in done.values()) + pending * cfg.per_episode() < cfg.frames

    bar = progress_bar(math.ceil(cfg.frames / cfg.per_episode()), "datagen", "episode", enabled=progress)
    try:
        run = run_jobs(functools.partial(DatagenWorker, cfg), range(10 * cfg.frames + 1), scale, bar=bar,
                       key=lambda e: {"episode": e, "seed": cfg.episode_seed(e)}, more=more,
                       keep=functools.partial(_keep, cfg.out))
    finally:
        bar.close()
    return _merge(cfg, run.results)


def _keep(out: Path, part: dict) -> dict:
    """A worker's episode as it arrives: its files written into ``out``, the rest kept."""
    for name, data in part["files"].items():
        _write_file(out, name, data)
    return {k: v for k, v in part.items() if k != "files"}


def _merge(cfg: DatagenConfig, parts: list[dict]) -> tuple[dict, list[dict]]:
    """The serial run's COCO and episode list from the workers' episodes (in episode order):
    ids renumbered, the last episode cut to the frames still wanted (its extra files deleted)."""
    coco, episodes, saved = _coco_skeleton(), [], 0
    for part in parts:
        e, n = part["episode"], min(part["frames"], cfg.frames - saved)
        offset = len(coco["images"])
        coco["images"] += [{**im, "id": im["id"] + offset} for im in part["images"][:n]]
        for a in part["annotations"]:
            if a["image_id"] <= n:
                coco["annotations"].append({**a, "id": len(coco["annotations"]) + 1, "image_id": a["image_id"] + offset})
        for im in part["images"][n:]:
            for name in (im["file_name"], im["label_file"]):
                (cfg.out / name).unlink(missing_ok=True)
        episodes.append({"episode": e, "seed": cfg.episode_seed(e), "split": cfg.split(e), "frames": n})
        saved += n
    if saved < cfg.frames:
        raise _no_frames(cfg)
    return coco, episodes


def _pilot(sim: Simulator, driver: ScriptedDriver, seed: int) -> Callable[[Observation], Control]:
    """Who drives the episode: the scripted driver on ground truth where the simulator has
    it, else the simulator's own autopilot (CARLA's Traffic Manager), set before the reset."""
    if isinstance(sim, PrivilegedView):
        driver.reset(seed)
        return lambda obs: driver.act(sim.privileged(), obs.ego)
    if isinstance(sim, Autopilot):
        sim.set_autopilot(True)
        return lambda obs: Control()  # ignored while the autopilot drives
    raise EdgepilotError(
        f"datagen cannot drive the {sim.name!r} simulator: it has neither a privileged view "
        f"for the scripted driver nor an autopilot", exit_code=2,
    )


def _save(obs: Observation, cfg: DatagenConfig, e: int, k: int, coco: dict, sink: Sink) -> None:
    stem = frame_stem(e, k)
    image_name, label_name = image_file(stem, cfg.fmt), label_file(stem)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if cfg.fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    sink(image_name, _encode(f".{cfg.fmt}", cv2.cvtColor(obs.image, cv2.COLOR_RGB2BGR), params, image_name))
    if obs.labels is not None:
        sink(label_name, _encode(".png", obs.labels, [], label_name))
    image_id = len(coco["images"]) + 1
    h, w = obs.image.shape[:2]
    coco["images"].append({
        "id": image_id, "file_name": image_name, "label_file": label_name,
        "width": w, "height": h, "episode": e, "split": cfg.split(e), "frame": obs.frame,
    })
    for b in obs.boxes:
        bw, bh = b.x2 - b.x1, b.y2 - b.y1
        coco["annotations"].append({
            "id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": b.tag,
            "bbox": [b.x1, b.y1, bw, bh], "area": bw * bh, "iscrowd": 0, "actor_id": b.actor_id,
        })


def _encode(ext: str, image: np.ndarray, params: list[int], name: str) -> bytes:
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise EdgepilotError(f"cannot encode {name} as {ext[1:]}", exit_code=2)
    return buf.tobytes()


def _coco_skeleton() -> dict:
    return {"info": {"description": "edgepilot simulator dataset"}, "images": [], "annotations": [],
            "categories": []}


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _manifest(cfg: DatagenConfig, camera: CameraConfig, episodes: list[dict], n_images: int) -> dict:
    splits = {s: [ep["episode"] for ep in episodes if ep["split"] == s] for s in ("train", "val")}
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()
                if k not in ("out", "force")}
    return {
        "settings": settings,
        "camera": asdict(camera),
        "images": n_images,
        "episodes": episodes,
        "splits": splits,
        "versions": {
            "edgepilot": _version("edgepilot"), "highway-env": _version("highway-env"),
            "numpy": np.__version__, "opencv": cv2.__version__, "python": platform.python_version(),
        },
    }


def _write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
