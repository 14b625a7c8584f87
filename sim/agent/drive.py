"""``edgepilot drive``'s work: episodes over scenarios, the video, and the report with the score table.

``drive(DriveOptions(...))`` builds the agent (perception bundles, policy bundle, or the scripted
baseline driver), drives ``episodes`` seeds of each scenario with ``run_episode`` (and, with
``latency_aware``, the same seeds again with the measured latency applied as actuation delay),
and returns the report (``report["scores"]``: per scenario and overall means of the
Leaderboard-style scores; ``report["latency_ms"]``: per-stage summaries; ``report["episodes"]``).

With ``scale.workers`` > 1 the episodes run on Ray (``sim.scale``): each worker a ``DriveWorker``
with its own agent and simulators; results merged in the serial order (same seeds, same scores),
and ``report["scale"]`` lists the workers, retries and lost servers. No video then.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.errors import EdgepilotError
from edgepilot.runtime.host import cpu_model
from edgepilot.runtime.progress import progress
from edgepilot.runtime.telemetry import summarize_ms
from edgepilot.sim.agent.episode import Agent, EpisodeResult, PerceptionModel, run_episode
from edgepilot.sim.agent.policy import DrivingPolicy
from edgepilot.sim.agent.safety import BrakeConfig, EmergencyBrake
from edgepilot.sim.metrics import EpisodeScore, summarise
from edgepilot.sim.scale import ScaleOptions, Server, run_jobs
from edgepilot.sim.types import CameraConfig, Simulator

TICK_BUDGET_MS = 50.0  # one simulator step at 20 Hz
BUILTIN_SCENARIOS = ("highway", "racetrack", "roundabout", "merge")


SCRIPTED = ("scripted", "overtaking")  # the privileged scripted drivers (--driver), builtin only


@dataclass
class DriveOptions:
    sim: str = "builtin"
    scenarios: tuple[str, ...] = BUILTIN_SCENARIOS
    episodes: int = 2
    seed: int = 1000
    perception: tuple[str, ...] = ()
    policy: str = ""
    driver: str = "policy"  # policy | scripted (the privileged baseline) | overtaking (it with lane changes)
    privileged: bool = False
    emergency_brake: bool = True  # the guard of sim.agent.safety on the policy's pedal (policy driver only)
    brake_config: BrakeConfig | None = None  # its settings (None: BrakeConfig's defaults)
    latency_aware: bool = False
    latency_scale: float = 1.0
    backend: str = "ort"
    precision: str = "int8"  # of the perception bundles (the policy runs fp32)
    out: str | None = None  # video
    report: str | None = None
    camera: CameraConfig = field(default_factory=lambda: CameraConfig(width=512, height=256))
    sim_options: dict[str, Any] = field(default_factory=dict)  # e.g. CARLA host/port
    max_steps: int = 0
    progress: bool = True
    scale: ScaleOptions = field(default_factory=ScaleOptions)  # --workers K: episodes on Ray


class ScriptedPolicy:
    """The privileged scripted driver behind ``DrivingPolicy``'s interface (``--driver scripted``;
    ``overtake``: with lane changes, ``--driver overtaking``)."""

    def __init__(self, sim: Any, policy: DrivingPolicy | None, overtake: bool = False) -> None:
        from edgepilot.sim.driver import DriverConfig, ScriptedDriver

        self.sim, self.driver, self.inner = sim, ScriptedDriver(DriverConfig(overtake=overtake)), policy
        self.overtake = overtake
        self.config = policy.config if policy is not None else None
        self.last_observation = None
        self.last_ms = {"observation": 0.0, "policy": float("nan")}

    def reset(self, route_points_m: Any) -> None:
        self.driver.reset(0)

    def act(self, class_ids: Any, ego: Any, progress_m: float, target_speed_mps: float) -> Any:
        from edgepilot.sim.agent.action import Action

        t0 = time.perf_counter()
        action = Action.from_control(self.driver.act(self.sim.privileged(lanes=self.overtake), ego))
        self.last_ms = {"observation": 0.0, "policy": (time.perf_counter() - t0) * 1e3}
        return action

    def applied(self, action: Any) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        lanes = ", lane changes past slower traffic" if self.overtake else ""
        return {"driver": f"edgepilot.sim.driver.ScriptedDriver (privileged, pure pursuit + gap keeping{lanes})"}

    def close(self) -> None:
        pass


def _make_sim(opts: DriveOptions, scenario: str, agent: Agent | None = None) -> Simulator:
    """The scenario's simulator. Builtin with nothing to look at (privileged, no perception, no
    video): labels only, at the camera the policy was trained with (its bundle's ``camera``)."""
    from edgepilot.sim.registry import make_simulator

    camera, options = opts.camera, dict(opts.sim_options)
    if opts.sim == "builtin" and agent is not None and agent.privileged and not agent.perception and not opts.out:
        stored = getattr(getattr(agent.policy, "bundle", None), "meta", {}).get("camera")
        camera = CameraConfig(**stored) if stored else CameraConfig(width=192, height=96)
        options.setdefault("rgb", False)
    return make_simulator(opts.sim, scenario, camera, **options)


def _summary(results: list[EpisodeResult]) -> dict[str, Any]:
    scores = [EpisodeScore(**r.score) for r in results]
    out = summarise(scores)
    out["ended"] = {k: sum(r.ended == k for r in results) for k in sorted({r.ended for r in results})}
    return out


def _latency(results: list[EpisodeResult]) -> dict[str, Any]:
    stages: dict[str, list[float]] = {}
    for r in results:
        for name, values in r.stages_ms.items():
            stages.setdefault(name, []).extend(values)
    return {name: summarize_ms(values) for name, values in sorted(stages.items())}


def _bundle_record(path: str) -> dict[str, Any]:
    b = load_bundle(path)
    return {"path": str(path), "task": b.task, "name": b.name, "onnx_sha256": b.onnx_sha256("fp32")}


def engine_options(opts: DriveOptions) -> dict[str, Any]:
    """Options for the agent's engines. On ONNX Runtime, with more than one engine per tick
    (perception bundles and the policy, called one after another), idle intra-op threads do not
    spin: a session's threads spin-wait after its call, on the cores the next session's call
    needs. On the 2-core dev machine the perception-in-the-loop tick (seg int8 + det int8 +
    policy) went from p50 14.7 / p99 29.1 ms to 11.5 / 18.0 ms with the same scores
    (``benchmarks/eval_drive.py --only perception``, ``drive_perception.json`` before and after).
    One engine keeps onnxruntime's default (spinning pays for back-to-back calls of one
    session: ``cpu_compare.json``'s yolov8n ort fp32 rows, engine p50 36.9 ms with it and
    45.9 without, loop 22.6 and 22.8 FPS)."""
    engines = len(opts.perception) + (1 if opts.policy else 0)
    return {"spin": False} if opts.backend == "ort" and engines > 1 else {}


def build_agent(opts: DriveOptions) -> Agent:
    extra = engine_options(opts)
    policy = DrivingPolicy.load(opts.policy, backend=opts.backend, **extra) if opts.policy else None
    perception = [PerceptionModel.load(p, backend=opts.backend, precision=opts.precision, **extra)
                  for p in opts.perception]
    if policy is None and opts.driver == "policy":
        raise EdgepilotError("give a policy bundle (--policy BUNDLE)", exit_code=2)
    brake = EmergencyBrake(opts.camera, opts.brake_config) if opts.emergency_brake and opts.driver == "policy" else None
    return Agent(policy, perception, privileged=opts.privileged or opts.driver in SCRIPTED,  # type: ignore[arg-type]
                 brake=brake)


def drive(opts: DriveOptions) -> dict[str, Any]:
    """Drive every episode of ``opts``; the report (see the module docstring)."""
    if opts.driver in SCRIPTED and opts.sim != "builtin":
        raise EdgepilotError(f"--driver {opts.driver} needs the builtin world's ground truth (--sim builtin)",
                             exit_code=2)
    opts.scale.check(opts.sim)
    if opts.scale.workers > 1:
        return _drive_scaled(opts)
    agent = build_agent(opts)
    video = None
    if opts.out:
        from edgepilot.sim.agent.hud import DriveVideo

        video = DriveVideo(opts.out, agent)
    modes = [False, True] if opts.latency_aware else [False]
    runs: dict[bool, list[EpisodeResult]] = {m: [] for m in modes}
    total = len(opts.scenarios) * opts.episodes * len(modes)
    bar = progress(total, "drive", "episode", enabled=opts.progress)
    t0 = time.perf_counter()
    try:
        for scenario in opts.scenarios:
            sim = _make_sim(opts, scenario, agent)
            try:
                if opts.driver in SCRIPTED:
                    agent.policy = ScriptedPolicy(sim, agent.policy if isinstance(agent.policy, DrivingPolicy) else None,  # type: ignore[assignment]
                                                  overtake=opts.driver == "overtaking")
                for delayed in modes:
                    for k in range(opts.episodes):
                        seed = opts.seed + k
                        label = f"{scenario} seed {seed}" + (" latency-aware" if delayed else "")
                        on_tick = (lambda tick, lab=label: video.write(tick, lab)) if video is not None else None  # type: ignore[misc]
                        result = run_episode(sim, agent, seed, latency_aware=delayed,
                                             latency_scale=opts.latency_scale, on_tick=on_tick,
                                             max_steps=opts.max_steps)
                        result.scenario = scenario
                        runs[delayed].append(result)
                        bar.update(1)
            finally:
                sim.close()
    finally:
        bar.close()
        if video is not None:
            video.close()
        describe = agent.describe()
        agent.close()
    wall_s = time.perf_counter() - t0
    return _report(opts, runs, describe, wall_s, video.frames if video is not None else 0)


class DriveWorker:
    """One Ray worker's share of ``drive``: its own agent and one simulator per scenario, kept
    between episodes (``reset(seed)`` fixes an episode, so who ran before does not matter)."""

    def __init__(self, opts: DriveOptions, server: Server | None) -> None:
        if server is not None:
            opts = dataclasses.replace(opts, sim_options={**opts.sim_options, **server.sim_options()})
        self.opts, self.agent = opts, build_agent(opts)
        self.inner = self.agent.policy
        self.sims: dict[str, Simulator] = {}

    def run(self, job: tuple[str, int, bool]) -> tuple[EpisodeResult, dict[str, Any]]:
        """Episode (scenario, seed, latency-aware); the result and the agent's description."""
        scenario, seed, delayed = job
        if scenario not in self.sims:
            self.sims[scenario] = _make_sim(self.opts, scenario, self.agent)
        sim = self.sims[scenario]
        if self.opts.driver in SCRIPTED:
            inner = self.inner if isinstance(self.inner, DrivingPolicy) else None
            self.agent.policy = ScriptedPolicy(sim, inner, overtake=self.opts.driver == "overtaking")  # type: ignore[assignment]
        result = run_episode(sim, self.agent, seed, latency_aware=delayed, latency_scale=self.opts.latency_scale,
                             max_steps=self.opts.max_steps)
        result.scenario = scenario
        return result, self.agent.describe()

    def close(self) -> None:
        for sim in self.sims.values():
            sim.close()
        self.agent.close()


def _drive_scaled(opts: DriveOptions) -> dict[str, Any]:
    """``drive`` with the episodes on Ray workers, merged in the serial order."""
    if opts.out:
        raise EdgepilotError(f"--out {opts.out}: the video is written by serial runs only; drop --out or "
                             "use --workers 1", exit_code=2)
    modes = [False, True] if opts.latency_aware else [False]
    jobs = [(s, opts.seed + k, d) for s in opts.scenarios for d in modes for k in range(opts.episodes)]
    bar = progress(len(jobs), "drive", "episode", enabled=opts.progress)
    try:
        run = run_jobs(functools.partial(DriveWorker, opts), jobs, opts.scale, bar=bar,
                       key=lambda job: {"scenario": job[0], "seed": job[1], **({"latency_aware": True} if job[2] else {})})
    finally:
        bar.close()
    runs = {m: [r for job, (r, _) in zip(jobs, run.results, strict=True) if job[2] == m] for m in modes}
    report = _report(opts, runs, run.results[0][1], run.wall_s, 0)
    report["scale"] = run.to_dict()
    return report


def _scores(results: list[EpisodeResult], scenarios: tuple[str, ...]) -> dict[str, Any]:
    per = {s: _summary([r for r in results if r.scenario == s]) for s in scenarios}
    return {"per_scenario": per, "overall": _summary(results)}


def _report(opts: DriveOptions, runs: dict[bool, list[EpisodeResult]], describe: dict[str, Any],
            wall_s: float, video_frames: int) -> dict[str, Any]:
    plain = runs[False]
    latency = _latency(plain)
    tick = latency.get("tick", {})
    mode = opts.driver if opts.driver in SCRIPTED else "privileged" if opts.privileged else "perception"
    report: dict[str, Any] = {
        "benchmark": "drive",
        "sim": opts.sim, "mode": mode,
        "scenarios": list(opts.scenarios), "episodes_per_scenario": opts.episodes,
        "seeds": [opts.seed, opts.seed + opts.episodes - 1],
        "backend": opts.backend, "perception_precision": opts.precision if opts.perception else None,
        "bundles": {"policy": _bundle_record(opts.policy) if opts.policy and opts.driver == "policy" else None,
                    "perception": [_bundle_record(p) for p in opts.perception]},
        "agent": describe,
        "camera": dataclasses.asdict(opts.camera),
        "scores": _scores(plain, opts.scenarios),
        "latency_ms": latency,
        "tick_budget_ms": TICK_BUDGET_MS,
        "tick_p99_within_budget": bool(tick.get("n")) and tick["p99"] <= TICK_BUDGET_MS,
        "episodes": [r.to_dict() for r in plain],
        "video": {"path": opts.out, "frames": video_frames} if opts.out else None,
        "wall_s": wall_s,
        "host": {"cpu": cpu_model()},
        "versions": {p: _version(p) for p in ("edgepilot", "highway-env", "onnxruntime", "torch")},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if True in runs:
        delayed = runs[True]
        report["latency_aware"] = {
            "latency_scale": opts.latency_scale,
            "scores": _scores(delayed, opts.scenarios),
            "skipped_frames": sum(r.skipped_frames for r in delayed),
            "episodes": [r.to_dict() for r in delayed],
            "driving_score_drop": (report["scores"]["overall"]["driving_score"]
                                   - _summary(delayed)["driving_score"]),
        }
    return report


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def score_table(report: dict[str, Any]) -> str:
    """The terminal table: per scenario and overall, driving score, route completion, penalty."""
    rows = [f"{'scenario':<12} {'driving':>8} {'route':>7} {'penalty':>8} {'coll/km':>8}  ended"]
    sections = [("", report["scores"])]
    if "latency_aware" in report:
        sections.append((f" +delay x{report['latency_aware']['latency_scale']:g}", report["latency_aware"]["scores"]))
    for suffix, scores in sections:
        for name, s in [*scores["per_scenario"].items(), ("overall", scores["overall"])]:
            if not s.get("episodes"):
                continue
            ended = ", ".join(f"{k} {v}" for k, v in s["ended"].items())
            rows.append(f"{(name + suffix):<12} {s['driving_score']:8.3f} {s['route_completion']:7.3f} "
                        f"{s['infraction_penalty']:8.3f} {s['collisions_per_km']:8.2f}  {ended}")
    tick = report["latency_ms"].get("tick")
    if tick and tick.get("n"):
        parts = "perception + observation + policy" + (" + brake" if "brake" in report["latency_ms"] else "")
        rows.append(f"tick ({parts}): p50 {tick['p50']:.2f} ms, p99 {tick['p99']:.2f} ms "
                    f"(budget {report['tick_budget_ms']:.0f} ms: {'within' if report['tick_p99_within_budget'] else 'OVER'})")
    return "\n".join(rows)


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    import json

    from edgepilot.runtime.outputs import write_text_atomic

    return write_text_atomic(path, json.dumps(_finite(report), indent=1, allow_nan=False) + "\n")


def _finite(value: Any) -> Any:
    """NaN and infinities become null (JSON has none)."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
