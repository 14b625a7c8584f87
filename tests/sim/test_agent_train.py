"""The warm start's fit: what it learns is what ``policy.predict`` (and so PPO and the export) sees."""

from __future__ import annotations

import numpy as np
import pytest


def test_behaviour_cloning_fits_the_labels_as_predict_sees_them():
    """Labels that depend only on the view must be learnt through the view as predict scales it
    (a fit that scaled the uint8 view twice would learn from a blank image and miss them)."""
    pytest.importorskip("stable_baselines3")
    import torch

    from edgepilot.sim.agent.env import DriveEnv
    from edgepilot.sim.agent.train import build_model, fit, load_policy_config

    torch.manual_seed(0)
    cfg = load_policy_config(None, n_envs=1, bc_lr=3e-3, bc_batch_size=32, scenarios=("highway",))
    env = DriveEnv(scenarios=("highway",))
    model = build_model(cfg, env)
    rng = np.random.default_rng(0)
    n = 64
    view = np.zeros((n, *env.observation_space["view"].shape), np.uint8)
    bright = rng.random(n) < 0.5
    view[bright] = 255  # the only difference between the two halves: the picture
    label = np.where(bright[:, None], [0.5, -0.5], [-0.5, 0.5]).astype(np.float32)
    data = {"view": view, "vector": np.zeros((n, env.observation_space["vector"].shape[0]), np.float32),
            "label": label, "return": np.zeros(n, np.float32)}
    fit(model.policy, data, cfg, rng, epochs=25)
    predicted, _ = model.policy.predict({"view": view, "vector": data["vector"]}, deterministic=True)
    env.close()
    assert np.abs(predicted - label).max() < 0.15


def test_init_from_loads_an_earlier_runs_weights_and_refuses_a_foreign_network(tmp_path):
    """``init_from`` starts from the checkpoint's exact weights; a network of another shape is a
    one-line error naming the file, not a torch traceback."""
    pytest.importorskip("stable_baselines3")
    import torch

    from edgepilot.perception.train import checkpoint
    from edgepilot.runtime.errors import EdgepilotError
    from edgepilot.sim.agent.env import DriveEnv
    from edgepilot.sim.agent.train import _state, build_model, init_weights, load_policy_config

    cfg = load_policy_config(None, n_envs=1, scenarios=("highway",))
    env = DriveEnv(scenarios=("highway",))
    try:
        source = build_model(cfg, env)
        checkpoint.save(tmp_path / "best.pt", _state(source, cfg, [], 0.5))
        target = build_model(load_policy_config(None, n_envs=1, scenarios=("highway",), seed=7), env)
        key = next(k for k in source.policy.state_dict() if k.endswith("weight"))
        assert not torch.equal(source.policy.state_dict()[key], target.policy.state_dict()[key])
        init_weights(target, tmp_path / "best.pt")
        for name, value in source.policy.state_dict().items():
            assert torch.equal(value, target.policy.state_dict()[name]), name

        wide = load_policy_config(None, n_envs=1, scenarios=("highway",), net_arch=(64,))
        with pytest.raises(EdgepilotError, match="does not match this config") as err:
            init_weights(build_model(wide, env), tmp_path / "best.pt")
        assert "best.pt" in str(err.value) and "\n" not in str(err.value)
    finally:
        env.close()


def test_a_scenario_listed_twice_is_validated_once(monkeypatch):
    """Oversampling a scenario in training (listing it twice) must not count it twice in validation."""
    pytest.importorskip("stable_baselines3")
    from edgepilot.sim.agent import train

    seen: list[str] = []

    class Env:
        def __init__(self, **kwargs):
            pass

        def reset(self, seed, options):
            seen.append(options["scenario"])
            return None, {}

        def step(self, action):
            return None, 0.0, True, False, {"score": {"driving_score": 1.0 if seen[-1] == "merge" else 0.0}}

        def close(self):
            pass

    class Policy:
        def predict(self, obs, deterministic):
            return np.zeros(2, np.float32), None

    monkeypatch.setattr(train, "DriveEnv", Env)
    cfg = train.load_policy_config(None, scenarios=("merge", "roundabout", "roundabout"))
    result = train.validate(Policy(), cfg, seeds=(5,))
    assert seen == ["merge", "roundabout"]
    assert result["driving_score"] == pytest.approx(0.5)


def test_ppo_from_an_earlier_run_warms_the_critic_up_with_the_actor_frozen(tmp_path):
    """``init_from`` with no DAgger rounds starts PPO from the checkpoint's actor; during
    ``vf_warmup_steps`` PPO's updates change the critic only, afterwards the actor too."""
    pytest.importorskip("stable_baselines3")
    import json

    import torch

    from edgepilot.perception.train import checkpoint
    from edgepilot.sim.agent.env import DriveEnv
    from edgepilot.sim.agent.train import (
        _state,
        actor_parameters,
        build_model,
        env_kwargs,
        train_policy,
    )
    from tests.sim.agent_fixtures import tiny_config

    source_cfg = tiny_config(tmp_path / "source", seed=3)
    env = DriveEnv(**env_kwargs(source_cfg))
    try:
        source = build_model(source_cfg, env)
        checkpoint.save(tmp_path / "source.pt", _state(source, source_cfg, [], 0.5))
    finally:
        env.close()
    actor_before = [p.detach().clone() for p in actor_parameters(source.policy)]
    critic_key = "value_net.weight"

    def run(name: str, warmup: int) -> dict:
        cfg = tiny_config(tmp_path / name, bc_rounds=0, init_from=str(tmp_path / "source.pt"),
                          vf_warmup_steps=warmup, log_std_init=-2.0, learning_rate=1e-3)
        train_policy(cfg)
        state = checkpoint.load(tmp_path / name / "last.pt")
        history = json.loads(state["history"])
        assert history[0] == {"phase": "init", "from": str(tmp_path / "source.pt")}
        return state["model"]

    frozen = run("frozen", warmup=10**6)
    assert not torch.equal(frozen[critic_key], source.policy.state_dict()[critic_key])
    env = DriveEnv(**env_kwargs(source_cfg))
    loaded = build_model(source_cfg, env)
    env.close()
    loaded.policy.load_state_dict(frozen)
    for before, after in zip(actor_before[:-1], actor_parameters(loaded.policy)[:-1], strict=True):
        assert torch.equal(before, after)
    assert torch.allclose(loaded.policy.log_std, torch.full((2,), -2.0))  # reset, then frozen

    learning = run("learning", warmup=0)
    loaded.policy.load_state_dict(learning)
    assert any(not torch.equal(b, a) for b, a in zip(actor_before[:-1], actor_parameters(loaded.policy)[:-1],
                                                      strict=True))


def test_anchor_scenarios_are_labelled_by_the_starting_policy_and_need_one():
    """In ``anchor_scenarios`` the expert wrapper leaves the label empty (NaN) and ``collect`` fills
    it with the anchor policy's action; elsewhere the scripted expert's label stays. A config with
    anchor scenarios but no starting policy is a one-line error."""
    pytest.importorskip("stable_baselines3")
    from edgepilot.runtime.errors import EdgepilotError
    from edgepilot.sim.agent.env import DriveEnv
    from edgepilot.sim.agent.train import ExpertLabel, _anchored, load_policy_config

    env = ExpertLabel(DriveEnv(scenarios=("highway", "roundabout"), max_steps=3), overtake=True,
                      anchor_scenarios=("roundabout",))
    try:
        _, info = env.reset(seed=0, options={"scenario": "roundabout"})
        assert np.isnan(info["expert_action"]).all()
        _, info = env.reset(seed=0, options={"scenario": "highway"})
        assert np.isfinite(info["expert_action"]).all()
    finally:
        env.close()

    class Anchor:
        def predict(self, obs, deterministic=False):
            assert deterministic
            return np.full((len(obs["vector"]), 2), 0.25, np.float32), None

    expert = np.array([[0.1, 0.2], [np.nan, np.nan]], np.float32)
    obs = {"view": np.zeros((2, 1, 1, 1), np.uint8), "vector": np.zeros((2, 2), np.float32)}
    filled = _anchored(expert, obs, Anchor())
    assert filled.tolist() == [[pytest.approx(0.1), pytest.approx(0.2)], [0.25, 0.25]]
    assert np.isnan(expert[1]).all()  # the input is not changed
    with pytest.raises(EdgepilotError, match="anchor_scenarios needs init_from"):
        _anchored(expert, obs, None)
    with pytest.raises(EdgepilotError, match="give init_from too") as err:
        load_policy_config(None, anchor_scenarios=("roundabout",))
    assert err.value.exit_code == 2


@pytest.mark.parametrize(("brake_weight", "expected"), [(1.0, -0.5), (9.0, -0.9)])
def test_brake_weight_pulls_the_fit_towards_hard_braking(brake_weight, expected):
    """One observation labelled half full brake, half coast: the fit lands on the weighted mean of
    the pedal labels, -0.5 unweighted and -0.9 when the braking states weigh 9 times as much."""
    pytest.importorskip("stable_baselines3")
    import torch

    from edgepilot.sim.agent.env import DriveEnv
    from edgepilot.sim.agent.train import build_model, fit, load_policy_config

    torch.manual_seed(0)
    cfg = load_policy_config(None, n_envs=1, bc_lr=3e-3, bc_batch_size=64, scenarios=("highway",),
                             bc_brake_weight=brake_weight)
    env = DriveEnv(scenarios=("highway",))
    model = build_model(cfg, env)
    rng = np.random.default_rng(0)
    n = 64
    view = np.full((n, *env.observation_space["view"].shape), 80, np.uint8)
    vector = np.zeros((n, env.observation_space["vector"].shape[0]), np.float32)
    label = np.zeros((n, 2), np.float32)
    label[::2, 1] = -1.0
    data = {"view": view, "vector": vector, "label": label, "return": np.zeros(n, np.float32)}
    fit(model.policy, data, cfg, rng, epochs=150)
    predicted, _ = model.policy.predict({"view": view[:1], "vector": vector[:1]}, deterministic=True)
    env.close()
    assert predicted[0, 1] == pytest.approx(expected, abs=0.05)


def test_brake_weight_must_be_positive():
    from edgepilot.runtime.errors import EdgepilotError
    from edgepilot.sim.agent.train import load_policy_config

    with pytest.raises(EdgepilotError, match="bc_brake_weight"):
        load_policy_config(None, bc_brake_weight=0.0)


def test_expert_time_gap_reaches_the_labelling_driver_and_must_be_positive(monkeypatch):
    """``expert_time_gap_s`` sets the time gap of the driver that labels the warm start's states
    (the env a config builds, as a worker builds it); left out, it is the baseline's; zero or
    less is a one-line error."""
    pytest.importorskip("stable_baselines3")
    import cv2
    import torch

    from edgepilot.runtime.errors import EdgepilotError
    from edgepilot.sim.agent.train import _make_env, load_policy_config
    from edgepilot.sim.driver import DriverConfig

    # a worker's env pins its process to one thread: keep the test process as it is
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(cv2, "setNumThreads", lambda n: None)
    for gap, expected in ((1.0, 1.0), (None, DriverConfig().time_gap_s)):
        env = _make_env(load_policy_config(None, scenarios=("highway",), max_steps=3, expert_time_gap_s=gap))()
        try:
            assert env.driver.config.time_gap_s == expected
            _, info = env.reset(seed=0)
            assert np.isfinite(info["expert_action"]).all()
        finally:
            env.close()
    with pytest.raises(EdgepilotError, match="expert_time_gap_s") as err:
        load_policy_config(None, expert_time_gap_s=0.0)
    assert err.value.exit_code == 2

    # only on the highway: the merge is labelled by a driver with the baseline's gap
    cfg = load_policy_config(None, scenarios=("highway", "merge"), max_steps=3, expert_time_gap_s=1.0,
                             expert_time_gap_scenarios=("highway",))
    env = _make_env(cfg)()
    try:
        labellers = {}
        for scenario in ("highway", "merge"):
            used = []
            for driver in {env.driver, env.baseline_driver}:
                act = driver.act
                driver.act = lambda *a, _d=driver, _act=act, _used=used, **k: _used.append(_d) or _act(*a, **k)
            env.reset(seed=0, options={"scenario": scenario})
            labellers[scenario] = {d.config.time_gap_s for d in used}
            for driver in (env.driver, env.baseline_driver):
                driver.__dict__.pop("act", None)
        assert labellers == {"highway": {1.0}, "merge": {DriverConfig().time_gap_s}}
    finally:
        env.close()
    with pytest.raises(EdgepilotError, match="expert_time_gap_scenarios") as err:
        load_policy_config(None, expert_time_gap_scenarios=("motorway",))
    assert err.value.exit_code == 2
