"""Train the driving policy: behaviour-cloning warm start (DAgger), then stable-baselines3 PPO.

    edgepilot train policy --config configs/train/policy.yaml

One policy for every scenario of ``PolicyConfig.scenarios``, on ``edgepilot/Drive-v0`` with
ground-truth labels (the privileged semantic view), ``n_envs`` environments in worker
processes (one per core).

1. **Warm start** (``bc_rounds`` > 0): DAgger with the privileged scripted driver
   (``sim.driver.ScriptedDriver``) as the expert. Round 0 drives the expert with
   Ornstein-Uhlenbeck steering noise (so the data holds recoveries); later rounds drive
   the policy being trained (the expert's action with probability ``beta``, halving each
   round) and label every visited state with the expert's action. The policy's mean action
   is fitted to the labels (MSE) and its value head to the discounted returns of the
   collected rewards. PPO from scratch needs far more steps than a 2-core session has to
   learn to stay on a roundabout; starting near the expert leaves PPO the part it is good
   at, trading progress against the penalties of the env's reward.
2. **PPO** (``timesteps`` env steps) from the warm-started weights with a small
   exploration noise (``log_std_init``) and learning rate. The first ``vf_warmup_steps`` of
   them train the critic alone (the actor's parameters frozen): the warm start fits the value
   head only loosely (``bc_value_weight``), and advantages from an unfitted critic move a
   good actor in random directions (a run's episode reward fell from 320 to 160 in 100k
   steps that way: ``runs/policy/earlier/``). ``target_kl`` stops an update's epochs early
   when the policy moves too far from the one that collected the rollout.

A run can also start PPO straight from an earlier run's policy: ``init_from`` with
``bc_rounds: 0`` (exploration noise reset to ``log_std_init``). ``collision_penalty`` sets the
env reward's collision weight (the env's default, 10, unless a config says otherwise).

Every ``val_every`` steps (and after the warm start) the deterministic policy drives
``val_seeds`` of every scenario (seeds below the training range of
``DriveConfig.sim_seed_range``, and apart from the test seeds 1000+ that the reports use);
the best mean driving score is ``OUT/best.pt``; ``OUT/warmstart.pt`` is the policy right after the
warm start. ``OUT/last.pt`` (every
``checkpoint_minutes`` and at the end) resumes a stopped run. Both are weights-only
checkpoints (``torch.load(weights_only=True)``). ``OUT/progress.csv`` is SB3's log (a resumed run's earlier log is kept as ``progress.<time>.csv``),
``OUT/history.json`` the validation scores, ``OUT/curves.png`` the learning curve.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgepilot.perception.train import checkpoint
from edgepilot.perception.train.config import load_dataclass
from edgepilot.runtime.errors import EdgepilotError, require
from edgepilot.runtime.progress import progress
from edgepilot.sim.agent.action import Action
from edgepilot.sim.agent.env import SCENARIOS, DriveEnv
from edgepilot.sim.agent.policy_net import ViewVectorExtractor
from edgepilot.sim.driver import DriverConfig, ScriptedDriver

log = logging.getLogger(__name__)
gym: Any = require("gymnasium", "sim", "the driving env")
sb3: Any = require("stable_baselines3", "train", "the driving policy")
TASK = "policy"


@dataclass(frozen=True)
class PolicyConfig:
    """What ``edgepilot train policy`` runs; steps are env steps over all envs."""

    out: str = "runs/policy"
    scenarios: tuple[str, ...] = SCENARIOS
    seed: int = 0
    n_envs: int = 2  # env worker processes (1: in the training process)
    threads: int = 1  # torch threads of the training process
    # the observation (sim.agent.observation.ObservationConfig): stacked frames, and no previous
    # action in the vector (a cloned policy would copy it: see that module's docstring)
    frames: int = 2
    frame_step: int = 1  # steps between stacked frames (ObservationConfig.frame_step)
    previous_action: bool = False
    # warm start: DAgger with the scripted driver as the expert
    bc_rounds: int = 4
    bc_steps: int = 12000  # collected per round
    bc_epochs: int = 6  # passes over all the data collected so far, per round
    bc_batch_size: int = 256
    bc_lr: float = 1e-3
    bc_value_weight: float = 0.01
    # weight of the states whose label brakes hard (pedal <= -0.5) in the fit: they are rare (a
    # car stopped ahead) and a collision when missed; 1: every state counts the same
    bc_brake_weight: float = 1.0
    expert_steer_noise: float = 0.15  # round 0: OU noise std on the expert's steering
    # the expert changes lanes past slower traffic (DriverConfig.overtake; the baseline does not)
    expert_overtake: bool = False
    # the expert's time gap to the car ahead (DriverConfig.time_gap_s; None: the baseline's 1.5 s)
    expert_time_gap_s: float | None = None
    # the scenarios where expert_time_gap_s applies (empty: all); elsewhere the baseline's gap
    expert_time_gap_scenarios: tuple[str, ...] = ()
    # scenarios whose states are labelled by the warm start's starting policy (init_from) itself,
    # not by the expert: keeps what it already drives better than the scripted driver
    anchor_scenarios: tuple[str, ...] = ()
    # continue an earlier run: its policy weights start the warm start, whose rounds are
    # numbered from bc_first_round (beta = 0.5 ** round: late rounds drive the policy itself)
    init_from: str = ""
    bc_first_round: int = 0
    # PPO
    timesteps: int = 600_000
    n_steps: int = 1024  # per env and rollout
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 1e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.1
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    log_std_init: float = -1.6  # exploration std e^-1.6 = 0.2 of the action range
    vf_warmup_steps: int = 0  # PPO steps at the start that train the critic only (actor frozen)
    target_kl: float | None = None  # SB3's early stop of an update's epochs (None: never)
    # the env reward's collision weight (RewardConfig.collision). The driving score multiplies a
    # run by 0.6 on a collision, i.e. it costs 40 % of the route; at 10 a collision costs less
    # than the progress a forced merge can win, so PPO learns to force it (see policy_ppo2.yaml)
    collision_penalty: float = 10.0
    net_arch: tuple[int, ...] = (128, 128)  # actor and critic MLPs after the features
    # validation, checkpoints
    val_seeds: tuple[int, ...] = (900, 901, 902)
    val_every: int = 100_000
    checkpoint_minutes: float = 5.0
    resume: bool = True
    progress: bool = True
    max_steps: int = 0  # > 0: episodes truncated after this many steps (smoke tests)


def load_policy_config(path: str | Path | None = None, **overrides: Any) -> PolicyConfig:
    cfg: PolicyConfig = load_dataclass(PolicyConfig, path, TASK, **overrides)
    unknown = sorted(set(cfg.scenarios) - set(SCENARIOS))
    if unknown or not cfg.scenarios:
        raise EdgepilotError(f"scenarios {', '.join(unknown) or '(none)'}: choose from {', '.join(SCENARIOS)}",
                             exit_code=2)
    if cfg.n_envs < 1 or cfg.batch_size < 2 or cfg.n_steps < 2:
        raise EdgepilotError("n_envs >= 1, n_steps >= 2 and batch_size >= 2, please", exit_code=2)
    if cfg.bc_brake_weight <= 0:
        raise EdgepilotError(f"bc_brake_weight {cfg.bc_brake_weight}: a weight > 0, please (1: no extra weight)",
                             exit_code=2)
    if cfg.expert_time_gap_s is not None and cfg.expert_time_gap_s <= 0:
        raise EdgepilotError(f"expert_time_gap_s {cfg.expert_time_gap_s}: seconds > 0, please "
                             "(leave it out for the baseline's 1.5 s)", exit_code=2)
    stray = sorted(set(cfg.expert_time_gap_scenarios) - set(SCENARIOS))
    if stray:
        raise EdgepilotError(f"expert_time_gap_scenarios {', '.join(stray)}: choose from {', '.join(SCENARIOS)}",
                             exit_code=2)
    if cfg.anchor_scenarios and not cfg.init_from:
        raise EdgepilotError("anchor_scenarios are labelled by the starting policy: give init_from too", exit_code=2)
    return cfg


# -- envs ------------------------------------------------------------------------------------


class ExpertLabel(gym.Wrapper):
    """Adds ``info["expert_action"]`` (the scripted driver's (steer, pedal) for the new state)
    while ``labelling`` is on (``env_method("set_labelling", False)`` turns it off for PPO).

    ``overtake``: the expert changes lanes (``DriverConfig.overtake``); ``time_gap_s``: the
    time gap it keeps to the car ahead (``DriverConfig.time_gap_s``; None: the baseline's), in
    ``time_gap_scenarios`` only where given (elsewhere the baseline's). In ``anchor_scenarios``
    the label is NaN: ``collect`` fills it with the anchor policy's action."""

    def __init__(self, env: Any, overtake: bool = False, anchor_scenarios: tuple[str, ...] = (),
                 time_gap_s: float | None = None, time_gap_scenarios: tuple[str, ...] = ()) -> None:
        super().__init__(env)
        baseline = DriverConfig(overtake=overtake)
        self.driver = ScriptedDriver(baseline if time_gap_s is None else
                                     dataclasses.replace(baseline, time_gap_s=time_gap_s))
        # labels where the time gap does not apply (the same driver when it applies everywhere)
        self.baseline_driver = ScriptedDriver(baseline) if time_gap_scenarios else self.driver
        self.time_gap_scenarios = frozenset(time_gap_scenarios)
        self.overtake = overtake
        self.anchor_scenarios = frozenset(anchor_scenarios)
        self.labelling = True

    def set_labelling(self, on: bool) -> None:
        self.labelling = bool(on)

    def _label(self, info: dict) -> dict:
        if self.labelling:
            if info.get("scenario") in self.anchor_scenarios:
                info["expert_action"] = np.full(2, np.nan, np.float32)
                return info
            drive = self.env.unwrapped
            driver = self.driver if info.get("scenario") in self.time_gap_scenarios else self.baseline_driver
            control = driver.act(drive.simulator.privileged(lanes=self.overtake), drive.sim_observation.ego)
            info["expert_action"] = Action.from_control(control).to_array()
        return info

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        for driver in {self.driver, self.baseline_driver}:
            driver.reset(0)  # a new episode: no lane change under way
        return obs, self._label(info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._label(info)


def env_kwargs(cfg: PolicyConfig) -> dict[str, Any]:
    """``DriveEnv(**env_kwargs(cfg))``: the env a config trains on (also for validation and export)."""
    from edgepilot.sim.agent.observation import ObservationConfig
    from edgepilot.sim.agent.reward import RewardConfig

    return {"scenarios": cfg.scenarios, "max_steps": cfg.max_steps,
            "observation": ObservationConfig(frames=cfg.frames, frame_step=cfg.frame_step,
                                             previous_action=cfg.previous_action),
            "reward": RewardConfig(collision=cfg.collision_penalty)}


def _make_env(cfg: PolicyConfig) -> Any:
    def make() -> Any:
        import cv2

        torch.set_num_threads(1)  # one core per worker: no thread pools fighting over the cores
        cv2.setNumThreads(1)
        from stable_baselines3.common.monitor import Monitor

        # Monitor: episode reward and length into SB3's log (rollout/ep_rew_mean, the curve)
        return ExpertLabel(Monitor(DriveEnv(**env_kwargs(cfg))), cfg.expert_overtake, cfg.anchor_scenarios,
                           cfg.expert_time_gap_s, cfg.expert_time_gap_scenarios)
    return make


def make_vec_env(cfg: PolicyConfig) -> Any:
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    fns = [_make_env(cfg) for _ in range(cfg.n_envs)]
    venv = SubprocVecEnv(fns, start_method="spawn") if cfg.n_envs > 1 else DummyVecEnv(fns)
    venv.seed(cfg.seed)
    return venv


def build_model(cfg: PolicyConfig, venv: Any) -> Any:
    """The SB3 PPO model with our features extractor (weights freshly initialised)."""
    return sb3.PPO(
        "MultiInputPolicy", venv, learning_rate=cfg.learning_rate, n_steps=cfg.n_steps,
        batch_size=cfg.batch_size, n_epochs=cfg.n_epochs, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
        clip_range=cfg.clip_range, ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
        target_kl=cfg.target_kl, seed=cfg.seed, device="cpu", verbose=0,
        # separate actor and critic CNNs: the critic's large early value loss would otherwise
        # reshape the warm-started actor's features (shared, lr 1e-4: approx KL 0.04-0.12 and
        # 35-44 % clipped in the first updates; separate, lr 5e-5: KL 0.004, 11 % clipped:
        # runs/policy/earlier/)
        policy_kwargs={"features_extractor_class": ViewVectorExtractor, "log_std_init": cfg.log_std_init,
                       "net_arch": {"pi": list(cfg.net_arch), "vf": list(cfg.net_arch)},
                       "share_features_extractor": False},
    )


# -- warm start (DAgger) -----------------------------------------------------------------------


def _expert_actions(infos: Any) -> np.ndarray:
    return np.stack([np.asarray(i["expert_action"], np.float32) for i in infos])


def _anchored(expert: np.ndarray, obs: dict[str, np.ndarray], anchor: Any | None) -> np.ndarray:
    """The expert labels with the NaN rows (anchor scenarios) filled by ``anchor``'s actions."""
    missing = np.isnan(expert).any(axis=1)
    if missing.any():
        if anchor is None:
            raise EdgepilotError("anchor_scenarios needs init_from: the policy that labels them", exit_code=2)
        own, _ = anchor.predict(obs, deterministic=True)
        expert = expert.copy()
        expert[missing] = np.clip(own[missing], -1.0, 1.0)
    return expert


def collect(venv: Any, policy: Any, steps: int, beta: float, noise: float, gamma: float,
            rng: np.random.Generator, anchor: Any | None = None) -> dict[str, np.ndarray]:
    """``steps`` labelled states: expert actions (+ OU steer noise) with probability ``beta``,
    the policy's deterministic ones otherwise; returns discounted per env from the rewards.
    States of anchor scenarios (NaN labels) are labelled by ``anchor``'s deterministic action."""
    n = venv.num_envs
    obs = venv.reset()
    expert = _anchored(_expert_actions(venv.reset_infos), obs, anchor)
    views, vectors, labels, rewards, dones = [], [], [], [], []
    ou = np.zeros(n, np.float32)
    for _ in range(max(steps // n, 1)):
        views.append(obs["view"].copy())
        vectors.append(obs["vector"].copy())
        labels.append(expert)
        act = expert.copy()
        if noise > 0:
            ou = 0.9 * ou + noise * rng.standard_normal(n).astype(np.float32)
            act[:, 0] += ou
        if beta < 1.0:
            own, _ = policy.predict(obs, deterministic=True)
            mine = rng.random(n) >= beta
            act[mine] = own[mine]
        obs, reward, done, infos = venv.step(np.clip(act, -1.0, 1.0))
        rewards.append(reward.astype(np.float32))
        dones.append(done)
        expert = _anchored(np.stack([np.asarray((venv.reset_infos[i] if done[i] else infos[i])["expert_action"],
                                                np.float32) for i in range(n)]), obs, anchor)
    r, d = np.stack(rewards), np.stack(dones)
    returns = np.zeros_like(r)
    running = np.zeros(n, np.float32)
    for t in range(len(r) - 1, -1, -1):
        running = r[t] + gamma * running * (1.0 - d[t])
        returns[t] = running
    return {"view": np.concatenate(views), "vector": np.concatenate(vectors),
            "label": np.concatenate(labels), "return": returns.reshape(-1)}


def fit(policy: Any, data: dict[str, np.ndarray], cfg: PolicyConfig, rng: np.random.Generator,
        epochs: int) -> float:
    """Fit the policy's mean action to the labels (and its value to the returns); the last loss."""
    optim = torch.optim.Adam(policy.parameters(), lr=cfg.bc_lr)
    size = len(data["label"])
    weight = torch.tensor([4.0, 1.0])  # steering errors matter more than pedal ones
    loss_value = float("nan")
    policy.set_training_mode(True)
    for _ in range(epochs):
        order = rng.permutation(size)
        for start in range(0, size, cfg.bc_batch_size):
            idx = order[start:start + cfg.bc_batch_size]
            # uint8 as stored: extract_features scales image spaces to [0, 1] itself, as predict does
            obs = {"view": torch.as_tensor(data["view"][idx]), "vector": torch.as_tensor(data["vector"][idx])}
            pi_features, vf_features = policy.extract_features(obs)  # separate CNNs (build_model)
            latent_pi = policy.mlp_extractor.forward_actor(pi_features)
            latent_vf = policy.mlp_extractor.forward_critic(vf_features)
            mean = policy.action_net(latent_pi)
            value = policy.value_net(latent_vf).squeeze(1)
            label = torch.as_tensor(data["label"][idx])
            # a weighted mean over the batch (all weights 1 unless bc_brake_weight): the loss keeps its scale
            w = 1.0 + (cfg.bc_brake_weight - 1.0) * (label[:, 1] <= -0.5).float()
            act_loss = (((mean - label) ** 2 * weight).mean(dim=1) * w).sum() / w.sum()
            value_loss = torch.nn.functional.smooth_l1_loss(value, torch.as_tensor(data["return"][idx]))
            loss = act_loss + cfg.bc_value_weight * value_loss
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optim.step()
            loss_value = float(act_loss.detach())
    policy.set_training_mode(False)
    return loss_value


def warm_start(model: Any, venv: Any, cfg: PolicyConfig, history: list[dict]) -> None:
    rng = np.random.default_rng(cfg.seed)
    data: dict[str, np.ndarray] | None = None
    # the starting policy, frozen: it labels the anchor scenarios' states
    anchor = copy.deepcopy(model.policy) if cfg.anchor_scenarios else None
    for r in range(cfg.bc_first_round, cfg.bc_first_round + cfg.bc_rounds):
        beta = 1.0 if r == 0 else 0.5 ** r
        t0 = time.perf_counter()
        new = collect(venv, model.policy, cfg.bc_steps, beta, cfg.expert_steer_noise if r == 0 else 0.0,
                      cfg.gamma, rng, anchor)
        data = new if data is None else {k: np.concatenate([data[k], new[k]]) for k in data}
        loss = fit(model.policy, data, cfg, rng, cfg.bc_epochs)
        log.info("warm start round %d/%d: beta %.3f, %d states, action loss %.4f (%.0f s)",
                 r + 1, cfg.bc_first_round + cfg.bc_rounds, beta, len(data["label"]), loss, time.perf_counter() - t0)
        history.append({"phase": "bc", "round": r + 1, "states": len(data["label"]), "action_loss": loss})


# -- validation --------------------------------------------------------------------------------


def validate(policy: Any, cfg: PolicyConfig, seeds: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Mean driving score of the deterministic policy over ``seeds`` of every scenario."""
    env = DriveEnv(**env_kwargs(cfg))
    per: dict[str, list[float]] = {}
    try:
        for scenario in dict.fromkeys(cfg.scenarios):  # a scenario listed twice is trained on more, validated once
            for seed in seeds or cfg.val_seeds:
                obs, _ = env.reset(seed=seed, options={"scenario": scenario, "sim_seed": seed})
                done = False
                info: dict[str, Any] = {}
                while not done:
                    action, _ = policy.predict(obs, deterministic=True)
                    obs, _, terminated, truncated, info = env.step(action)
                    done = terminated or truncated
                per.setdefault(scenario, []).append(float(info["score"]["driving_score"]))
    finally:
        env.close()
    means = {s: float(np.mean(v)) for s, v in per.items()}
    return {"driving_score": float(np.mean(list(means.values()))), "per_scenario": means}


# -- checkpoints -------------------------------------------------------------------------------


def _state(model: Any, cfg: PolicyConfig, history: list[dict], best: float) -> dict[str, Any]:
    return {
        "task": TASK, "config": json.dumps(dataclasses.asdict(cfg), sort_keys=True),
        "model": {k: v.detach().cpu() for k, v in model.policy.state_dict().items()},
        "optimizer": model.policy.optimizer.state_dict(), "num_timesteps": int(model.num_timesteps),
        "history": json.dumps(history), "best": float(best),
    }


def load_policy(path: str | Path, venv_or_env: Any | None = None) -> tuple[Any, PolicyConfig]:
    """(SB3 PPO model with the checkpoint's weights, its config) from ``best.pt``/``last.pt``."""
    state = checkpoint.load(path)
    if state.get("task") != TASK:
        raise EdgepilotError(f"{path} is a {state.get('task')!r} checkpoint, not a driving policy", exit_code=2)
    cfg = load_policy_config(None, **json.loads(state["config"]))
    env = venv_or_env or DriveEnv(**{**env_kwargs(cfg), "max_steps": 0})
    model = build_model(dataclasses.replace(cfg, n_envs=1), env)
    model.policy.load_state_dict(state["model"])
    return model, cfg


def actor_parameters(policy: Any) -> list[torch.nn.Parameter]:
    """The actor's parameters of an SB3 ``ActorCriticPolicy`` built by ``build_model`` (separate
    extractors): its CNN, MLP, action head and log std; the critic's are the rest."""
    parts = [policy.pi_features_extractor, policy.mlp_extractor.policy_net, policy.action_net]
    return [p for m in parts for p in m.parameters()] + [policy.log_std]


def freeze_actor(policy: Any, frozen: bool) -> None:
    """Stop (or restart) the actor's learning: Adam skips parameters without gradients."""
    for p in actor_parameters(policy):
        p.requires_grad_(not frozen)


def init_weights(model: Any, path: str | Path) -> None:
    """Load the policy weights of an earlier run's checkpoint (``init_from``) into ``model``."""
    state = checkpoint.load(path)
    if state.get("task") != TASK:
        raise EdgepilotError(f"init_from {path}: a {state.get('task')!r} checkpoint, not a driving policy", exit_code=2)
    try:
        model.policy.load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise EdgepilotError(f"init_from {path}: its network does not match this config's ({first}); "
                             "use the frames, previous_action and net_arch it was trained with", exit_code=2) from exc
    log.info("warm start from the weights of %s", path)


class _Callback(sb3.common.callbacks.BaseCallback):
    """Progress bar, timed checkpoints and periodic validation during ``PPO.learn``."""

    def __init__(self, cfg: PolicyConfig, out: Path, history: list[dict], best: float) -> None:
        super().__init__()
        self.cfg, self.out, self.history, self.best = cfg, out, history, best
        self._bar = progress(cfg.timesteps, "ppo", "step", enabled=cfg.progress)
        self._saved = time.monotonic()
        self._next_val = 0
        self._frozen: bool | None = None  # the actor's state in the last update (None: none yet)

    def _on_training_start(self) -> None:
        self._last = self.model.num_timesteps
        self._next_val = (self.model.num_timesteps // self.cfg.val_every + 1) * self.cfg.val_every

    def _on_rollout_end(self) -> None:
        """Before each update: the actor stays frozen for the first ``vf_warmup_steps``."""
        frozen = self.model.num_timesteps < self.cfg.vf_warmup_steps
        if frozen != self._frozen:
            log.info("ppo %d steps: %s", self.model.num_timesteps,
                     "critic warm-up, actor frozen" if frozen else "actor and critic learn")
        self._frozen = frozen
        freeze_actor(self.model.policy, frozen)

    def _on_step(self) -> bool:
        now = self.model.num_timesteps
        self._bar.update(now - self._last)
        self._last = now
        if now >= self._next_val:
            self._next_val += self.cfg.val_every
            self.validate()
        if time.monotonic() - self._saved > 60 * self.cfg.checkpoint_minutes:
            self.save_last()
        return True

    def validate(self) -> None:
        result = validate(self.model.policy, self.cfg)
        row = {"phase": "ppo", "timesteps": int(self.model.num_timesteps), **result}
        ep = [e["r"] for e in self.model.ep_info_buffer] if self.model.ep_info_buffer else []
        row["ep_reward_mean"] = float(np.mean(ep)) if ep else float("nan")
        self.history.append(row)
        log.info("ppo %d steps: validation driving score %.3f %s", self.model.num_timesteps,
                 result["driving_score"], {k: round(v, 3) for k, v in result["per_scenario"].items()})
        if result["driving_score"] > self.best:
            self.best = result["driving_score"]
            checkpoint.save(self.out / "best.pt", _state(self.model, self.cfg, self.history, self.best))
        self.save_last()

    def save_last(self) -> None:
        checkpoint.save(self.out / "last.pt", _state(self.model, self.cfg, self.history, self.best))
        (self.out / "history.json").write_text(json.dumps(self.history, indent=1) + "\n")
        self._saved = time.monotonic()

    def _on_training_end(self) -> None:
        self._bar.close()


def train_policy(cfg: PolicyConfig) -> dict[str, Any]:
    """Run (or resume) the warm start and PPO of ``cfg``; the summary as a dict."""
    from stable_baselines3.common.logger import configure

    torch.set_num_threads(max(cfg.threads, 1))
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1) + "\n")
    venv = make_vec_env(cfg)
    try:
        model = build_model(cfg, venv)
        log_file = out / "progress.csv"
        if log_file.is_file() and log_file.stat().st_size:  # SB3 truncates it: keep a resumed run's log
            log_file.rename(out / f"progress.{int(time.time())}.csv")
        model.set_logger(configure(str(out), ["csv"]))
        history: list[dict] = []
        best = -math.inf
        last = out / "last.pt"
        if cfg.resume and last.is_file():
            state = checkpoint.load(last)
            model.policy.load_state_dict(state["model"])
            try:
                model.policy.optimizer.load_state_dict(state["optimizer"])
            except ValueError:  # saved with a shared extractor (other parameter groups): a fresh Adam
                log.info("%s: optimiser state of another layout; Adam starts afresh", last)
            model.num_timesteps = int(state["num_timesteps"])
            history, best = json.loads(state["history"]), float(state["best"])
            log.info("resumed %s at %d PPO steps (best validation %.3f)", last, model.num_timesteps, best)
        elif cfg.bc_rounds > 0:
            if cfg.init_from:
                init_weights(model, cfg.init_from)
            warm_start(model, venv, cfg, history)
            checkpoint.save(out / "warmstart.pt", _state(model, cfg, history, best))
        elif cfg.init_from:  # PPO straight from an earlier run's policy
            init_weights(model, cfg.init_from)
            with torch.no_grad():  # the exploration noise this config asks for, not the checkpoint's
                model.policy.log_std.fill_(cfg.log_std_init)
            history.append({"phase": "init", "from": cfg.init_from})
        venv.env_method("set_labelling", False)
        callback = _Callback(cfg, out, history, best)
        if not history or history[-1].get("phase") in ("bc", "init"):
            callback.init_callback(model)
            callback.validate()  # the warm-started policy, step 0
        remaining = cfg.timesteps - model.num_timesteps
        if remaining > 0:
            model.learn(remaining, callback=callback, reset_num_timesteps=False)
            callback.validate()
    finally:
        venv.close()
    from edgepilot.sim.agent.curves import plot_policy_curves

    plot_policy_curves(out)
    rows = [h for h in callback.history if h.get("phase") == "ppo"]
    return {"out": str(out), "timesteps": int(model.num_timesteps), "best_validation": callback.best,
            "validation": rows[-1] if rows else None, "best": str(out / "best.pt")}
