"""The training loop both tasks share: AdamW, warm-up then poly or cosine decay, checkpoints,
resume, validation each epoch, history JSON and curves.

Outputs in ``cfg.out``: ``last.pt`` (every ``checkpoint_minutes`` and at each
epoch end; resumed from when it exists), ``best.pt`` (model of the best
validation score), ``history.json`` (one record per epoch) and ``curves.png``.
Resuming continues at the same step: the shuffle of an epoch and every sample's
augmentation follow from (seed, epoch, index), so nothing else needs restoring.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Sampler

from edgepilot.perception.data.datasets import FrameDataset, Sample
from edgepilot.perception.train import checkpoint
from edgepilot.perception.train.config import TrainConfig, to_dict
from edgepilot.perception.train.plot import plot_history
from edgepilot.runtime.errors import DeviceError, EdgepilotError
from edgepilot.runtime.outputs import write_text_atomic
from edgepilot.runtime.progress import Progress, progress

Batch = dict[str, torch.Tensor]


class Task(Protocol):
    """What ``fit`` needs from a task (segmentation, detection)."""

    name: str  # "seg" or "det": stored in checkpoints
    metric: str  # the key of ``validate``'s result that picks best.pt
    model: torch.nn.Module
    train_set: FrameDataset

    def collate(self, samples: list[Sample]) -> Batch: ...

    def loss(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]: ...

    def validate(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]: ...


@dataclass
class RunState:
    """Where training stands; saved in ``last.pt``."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps in all
    step_in_epoch: int = 0
    loss_sum: float = 0.0  # over the steps of the current epoch
    loss_n: int = 0
    best: float = -math.inf
    elapsed_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


class EpochSampler(Sampler[int]):
    """A permutation drawn from (seed, epoch), cut to whole batches, from batch ``start`` on."""

    def __init__(self, n: int, batch: int, seed: int, epoch: int, start: int = 0) -> None:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g)
        self.order = order[: max(1, n // batch) * batch][start * batch:].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu; a CUDA device that is not there is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: no CUDA device here; use cpu or auto")
    return device


def lr_lambda(cfg: TrainConfig, total: int) -> Callable[[int], float]:
    """Multiplier of the base lr at a step: linear warm-up, then poly (0.9) or cosine to 0."""
    warm = min(cfg.warmup_steps, max(total // 10, 1))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = min((step - warm) / max(total - warm, 1), 1.0)
        return (1 - t) ** 0.9 if cfg.schedule == "poly" else 0.5 * (1 + math.cos(math.pi * t))

    if cfg.schedule not in ("poly", "cosine"):
        raise EdgepilotError(f"schedule {cfg.schedule!r}: choose poly or cosine", exit_code=2)
    return f


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and norm weights (1-d parameters)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    other = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": other, "weight_decay": 0.0}], lr=lr)


@dataclass
class _Run:
    """The live objects of one training run."""

    task: Task
    cfg: TrainConfig
    device: torch.device
    batch: int
    opt: torch.optim.AdamW
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    state: RunState
    amp: bool
    per_epoch: int = 1  # steps in an epoch
    train_s: float = 0.0  # this process's time in training steps (throughput)
    images: int = 0

    def checkpoint_state(self) -> dict[str, Any]:
        s = self.state
        out = {**checkpoint.model_record(self.task.name, to_dict(self.cfg), self.task.model),
               "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
               "scaler": self.scaler.state_dict(), "epoch": s.epoch, "step": s.step,
               "step_in_epoch": s.step_in_epoch, "loss_sum": s.loss_sum, "loss_n": s.loss_n, "best": s.best,
               "elapsed_s": s.elapsed_s, "history": json.dumps(s.history), "rng_torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            out["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return out

    def restore(self, ck: dict[str, Any]) -> None:
        if ck.get("task") != self.task.name:
            raise EdgepilotError(f"{self.cfg.out}/last.pt is a {ck.get('task')!r} checkpoint, not "
                                 f"{self.task.name!r}: use another --out", exit_code=2)
        self.task.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        if ck["scaler"]:
            self.scaler.load_state_dict(ck["scaler"])
        self.state = RunState(ck["epoch"], ck["step"], ck["step_in_epoch"], ck["loss_sum"], ck["loss_n"],
                              ck["best"], ck["elapsed_s"], json.loads(ck["history"]))
        torch.set_rng_state(ck["rng_torch"])
        if "rng_cuda" in ck and self.device.type == "cuda":
            torch.cuda.set_rng_state(ck["rng_cuda"], self.device)


def _setup(task: Task, cfg: TrainConfig) -> _Run:
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    cuda = device.type == "cuda"
    batch = cfg.cuda_batch_size if cuda else cfg.batch_size
    task.model.to(device)
    opt = make_optimizer(task.model, cfg.lr * math.sqrt(batch / cfg.batch_size), cfg.weight_decay)
    per_epoch = max(1, len(task.train_set) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, cfg.epochs * per_epoch))
    amp = cuda and cfg.amp
    run = _Run(task, cfg, device, batch, opt, sched, torch.amp.GradScaler("cuda", enabled=amp), RunState(), amp,
               per_epoch)
    last = Path(cfg.out) / "last.pt"
    if cfg.resume and last.is_file():
        run.restore(checkpoint.load(last))
    elif cfg.init:
        _init_weights(task, cfg.init)
    return run


def _init_weights(task: Task, path: str) -> None:
    """Load the model weights of checkpoint ``path`` (fine-tuning); a run that resumes ignores it."""
    if not Path(path).is_file():
        raise EdgepilotError(f"init checkpoint {path} does not exist: train it first or fix init in the config",
                             exit_code=2)
    ck = checkpoint.load(Path(path))
    if ck.get("task") != task.name:
        raise EdgepilotError(f"init checkpoint {path} is a {ck.get('task')!r} checkpoint, not {task.name!r}",
                             exit_code=2)
    try:
        task.model.load_state_dict(ck["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise EdgepilotError(f"init checkpoint {path} does not fit this model ({first}): use the same model "
                             "settings as the run that wrote it", exit_code=2) from exc


def _train_step(run: _Run, batch: Batch) -> float:
    batch = {k: v.to(run.device, non_blocking=True) for k, v in batch.items()}
    with torch.autocast(run.device.type, dtype=torch.float16, enabled=run.amp):
        loss, _ = run.task.loss(run.task.model, batch)
    if not torch.isfinite(loss):
        raise EdgepilotError(f"training loss is {float(loss)} at step {run.state.step}: lower lr "
                             f"(now {run.cfg.lr}) or check the data", exit_code=1)
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.cfg.grad_clip > 0:
        run.scaler.unscale_(run.opt)
        torch.nn.utils.clip_grad_norm_(run.task.model.parameters(), run.cfg.grad_clip)
    run.scaler.step(run.opt)
    run.scaler.update()
    run.sched.step()
    return float(loss.detach())


def _log(bar: Progress, text: str) -> None:
    write = getattr(type(bar), "write", None)  # tqdm writes above its bar
    if write is not None:
        write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr, flush=True)


def _run_epoch(run: _Run, epoch: int, bar: Progress, t0: float) -> bool:
    """Train the rest of ``epoch``; False when ``max_steps`` stopped it before its end."""
    cfg, s = run.cfg, run.state
    ds = run.task.train_set
    ds.set_epoch(epoch)
    cuda = run.device.type == "cuda"
    loader = DataLoader(ds, batch_size=run.batch, sampler=EpochSampler(len(ds), run.batch, cfg.seed, epoch,
                                                                         s.step_in_epoch),
                        collate_fn=run.task.collate, num_workers=cfg.cuda_workers if cuda else cfg.workers,
                        pin_memory=cuda)
    last_save, postfix = time.monotonic(), getattr(bar, "set_postfix", None)
    tick = time.monotonic()
    for batch in loader:
        loss = _train_step(run, batch)
        now = time.monotonic()
        run.train_s, run.images, tick = run.train_s + now - tick, run.images + run.batch, now
        s.step, s.step_in_epoch, s.loss_sum, s.loss_n = s.step + 1, s.step_in_epoch + 1, s.loss_sum + loss, s.loss_n + 1
        bar.update(1)
        if postfix is not None:
            postfix(epoch=f"{epoch + 1}/{cfg.epochs}", loss=f"{s.loss_sum / s.loss_n:.4f}", refresh=False)
        if time.monotonic() - last_save > cfg.checkpoint_minutes * 60:
            s.elapsed_s = time.monotonic() - t0  # t0 is shifted back by earlier runs' time
            checkpoint.save(Path(cfg.out) / "last.pt", run.checkpoint_state())
            last_save = time.monotonic()
        if cfg.max_steps and s.step >= cfg.max_steps:
            return s.step_in_epoch >= run.per_epoch
    return True


def _end_epoch(run: _Run, epoch: int, complete: bool, t0: float, bar: Progress) -> dict[str, Any]:
    cfg, s, task = run.cfg, run.state, run.task
    metrics = task.validate(task.model, run.device)
    task.model.train()
    s.elapsed_s = time.monotonic() - t0
    record = {"epoch": epoch + 1, "step": s.step, "loss": s.loss_sum / max(s.loss_n, 1),
              "lr": run.sched.get_last_lr()[0], **metrics, "elapsed_s": round(s.elapsed_s, 1),
              "images_per_s": round(run.images / max(run.train_s, 1e-9), 2), "partial": not complete}
    s.history.append(record)
    out = Path(cfg.out)
    if metrics[task.metric] > s.best:
        s.best = float(metrics[task.metric])
        checkpoint.save(out / "best.pt", {**checkpoint.model_record(task.name, to_dict(cfg), task.model),
                                          "metric": task.metric, "score": s.best, "epoch": epoch + 1})
    if complete:
        s.epoch, s.step_in_epoch, s.loss_sum, s.loss_n = epoch + 1, 0, 0.0, 0
    checkpoint.save(out / "last.pt", run.checkpoint_state())
    write_text_atomic(out / "history.json", json.dumps(s.history, indent=1) + "\n")
    plot_history(s.history, out / "curves.png", task.metric)
    left = (cfg.epochs - epoch - 1) * s.elapsed_s / max(epoch + 1, 1)
    _log(bar, f"{task.name} epoch {epoch + 1}/{cfg.epochs}: loss {record['loss']:.4f}, {task.metric} "
              f"{metrics[task.metric]:.4f}, {s.elapsed_s / 60:.1f} min, about {left / 60:.0f} min left")
    return record


def fit(task: Task, cfg: TrainConfig) -> dict[str, Any]:
    """Train ``task`` as ``cfg`` says (resuming from ``cfg.out/last.pt``); returns a summary."""
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    run = _setup(task, cfg)
    s = run.state
    total = cfg.epochs * run.per_epoch
    total = min(cfg.max_steps, total) if cfg.max_steps else total
    bar = progress(max(total - s.step, 0), f"train {task.name}", "step", enabled=cfg.progress)
    t0 = time.monotonic() - s.elapsed_s
    task.model.train()
    try:
        for epoch in range(s.epoch, cfg.epochs):
            if cfg.max_steps and s.step >= cfg.max_steps:
                break
            complete = _run_epoch(run, epoch, bar, t0)
            _end_epoch(run, epoch, complete, t0, bar)
            if not complete:
                break
    finally:
        bar.close()
    out = Path(cfg.out)
    return {"out": str(out), "last": str(out / "last.pt"), "best": str(out / "best.pt"), "metric": task.metric,
            "best_score": s.best, "steps": s.step, "epochs": s.epoch, "history": s.history}
