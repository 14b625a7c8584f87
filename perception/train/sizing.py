"""Training throughput on this machine, to size configs: real steps (loading, augmentation,
forward, backward, AdamW) on a datagen folder, timed after a warm-up.

    python -m edgepilot.perception.train.sizing --task seg --data data/highway --size 128x256 --seconds 20

prints ``seg 128x256 batch 16: 31.2 images/s (best 10-step window 33.0)``. Machines
shared with other work are noisy: the best window is the closer estimate of what an
unloaded machine does, the mean what this run saw.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import torch
from torch.utils.data import DataLoader

from edgepilot.perception.train.config import load_config
from edgepilot.perception.train.det import DetTask
from edgepilot.perception.train.eval_data import seed_everything
from edgepilot.perception.train.loop import EpochSampler, _setup, _train_step
from edgepilot.perception.train.seg import SegTask


def measure(task: str, data: list[str], height: int, width: int, batch: int = 16, seconds: float = 20.0,
            warmup_steps: int = 3, window: int = 10, **overrides: Any) -> dict[str, float]:
    """{"images_per_s" (mean over the timed steps), "best_window_images_per_s", "steps"}."""
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(task, None, data=data, val_data=data, height=height, width=width, batch_size=batch, out=out,
                          progress=False, **overrides)
        seed_everything(cfg.seed)
        t = SegTask(cfg) if task == "seg" else DetTask(cfg)  # type: ignore[arg-type]
        run = _setup(t, cfg)
        t.model.train()
        times: list[float] = []
        epoch = 0
        while not times or sum(times) < seconds:
            loader = DataLoader(t.train_set, batch_size=batch, collate_fn=t.collate,
                                sampler=EpochSampler(len(t.train_set), batch, cfg.seed, epoch))
            tick = time.perf_counter()
            for b in loader:
                _train_step(run, b)
                now = time.perf_counter()
                if warmup_steps > 0:
                    warmup_steps -= 1
                else:
                    times.append(now - tick)
                tick = now
                if times and sum(times) >= seconds:
                    break
            epoch += 1
    windows = [sum(times[i:i + window]) for i in range(max(len(times) - window + 1, 1))]
    best = min(windows)
    return {"images_per_s": batch * len(times) / sum(times), "steps": len(times),
            "best_window_images_per_s": batch * min(window, len(times)) / best, "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=["seg", "det"], required=True)
    p.add_argument("--data", nargs="+", required=True, help="datagen folders")
    p.add_argument("--size", default="128x256", help="network input HxW")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seconds", type=float, default=20.0)
    a = p.parse_args(argv)
    h, w = (int(v) for v in a.size.lower().split("x"))
    r = measure(a.task, a.data, h, w, a.batch, a.seconds)
    print(f"{a.task} {h}x{w} batch {a.batch}: {r['images_per_s']:.1f} images/s "
          f"(best {min(10, int(r['steps']))}-step window {r['best_window_images_per_s']:.1f}; "
          f"{int(r['steps'])} steps, {r['threads']} threads)")


if __name__ == "__main__":
    main()
