"""edgepilot/Drive-v0: Gymnasium contract, spaces, seeding, episode ends and every reward term."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from edgepilot.sim.agent import ENV_ID
from edgepilot.sim.agent.action import Action
from edgepilot.sim.agent.env import DriveEnv
from edgepilot.sim.agent.observation import ObservationConfig
from edgepilot.sim.agent.reward import RewardConfig, StepFacts, reward_terms
from edgepilot.sim.driver import ScriptedDriver
from edgepilot.sim.route import RouteProgress
from tests.sim.sim_helpers import place

W = RewardConfig()


@pytest.fixture(scope="module")
def highway():
    env = DriveEnv(scenarios=("highway",))
    yield env
    env.close()


def drive(env: DriveEnv, action: tuple[float, float], limit: int = 400) -> tuple[float, bool, bool, dict]:
    """Step with one action until the episode ends (or ``limit`` steps); the last step's results."""
    for _ in range(limit):
        _, reward, terminated, truncated, info = env.step(np.array(action, np.float32))
        if terminated or truncated:
            break
    return reward, terminated, truncated, info


def test_gymnasium_env_checker_passes():
    env = gym.make(ENV_ID, scenarios=("racetrack", "merge"))
    check_env(env.unwrapped, skip_render_check=False)  # made through the registry: it has a spec
    env.close()


def test_spaces_and_observations_in_them():
    env = DriveEnv(scenarios=("racetrack",), observation=ObservationConfig(frames=2))
    assert env.observation_space["view"].shape == (8, 48, 96)
    assert env.observation_space["view"].dtype == np.uint8
    assert env.observation_space["vector"].shape == (6,)
    assert env.action_space.shape == (2,)
    assert env.action_space.low.tolist() == [-1.0, -1.0] and env.action_space.high.tolist() == [1.0, 1.0]
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert obs["view"][0].sum() > 0  # the road channel sees the road
    env.close()


def test_registered_id_makes_the_env():
    env = gym.make(ENV_ID, scenarios=("racetrack",))
    assert gym.spec(ENV_ID).entry_point == "edgepilot.sim.agent.env:DriveEnv"
    obs, info = env.reset(seed=1)
    assert info["scenario"] == "racetrack" and env.observation_space.contains(obs)
    env.close()


def test_same_seed_same_episode_and_the_scenario_comes_from_options_or_the_seed():
    env = DriveEnv(scenarios=("racetrack", "merge"))
    actions = np.random.default_rng(0).uniform(-0.3, 0.6, (15, 2)).astype(np.float32)

    def episode(seed: int) -> tuple[list, list, dict]:
        obs, info = env.reset(seed=seed)
        views, rewards = [obs["view"]], []
        for a in actions:
            obs, reward, *_ = env.step(a)
            views.append(obs["view"])
            rewards.append(reward)
        return views, rewards, info

    v1, r1, i1 = episode(7)
    v2, r2, i2 = episode(7)
    assert (i1["scenario"], i1["sim_seed"]) == (i2["scenario"], i2["sim_seed"])
    assert all(np.array_equal(a, b) for a, b in zip(v1, v2, strict=True)) and r1 == r2
    assert {env.reset(seed=s)[1]["scenario"] for s in range(12)} == {"racetrack", "merge"}
    _, info = env.reset(seed=7, options={"scenario": "merge", "sim_seed": 123})
    assert (info["scenario"], info["sim_seed"]) == ("merge", 123)
    env.close()


def test_a_training_configs_collision_penalty_is_the_envs_collision_weight():
    pytest.importorskip("stable_baselines3")
    from edgepilot.sim.agent.train import env_kwargs, load_policy_config

    env = DriveEnv(**env_kwargs(load_policy_config(None, collision_penalty=100.0)))
    try:
        env.reset(seed=0, options={"scenario": "highway", "sim_seed": 0})
        place(env.simulator, [(8.0, 0.0)])  # a stopped car 8 m ahead in the ego's lane
        _, _, _, info = drive(env, (0.0, 1.0))
        assert info["reward_terms"]["collision"] == -100.0
    finally:
        env.close()
    assert env_kwargs(load_policy_config(None))["reward"].collision == W.collision  # the default stays 10


def test_collision_is_penalised_once_and_terminates(highway):
    highway.reset(seed=0)
    place(highway.simulator, [(8.0, 0.0)])  # a stopped car 8 m ahead in the ego's lane
    reward, terminated, truncated, info = drive(highway, (0.0, 1.0))
    assert terminated and not truncated
    assert info["reward_terms"]["collision"] == -W.collision and info["collision_with"] == "vehicle"
    assert reward < -W.collision + 1.5  # the penalty outweighs a step's progress
    assert info["score"]["collisions"]["vehicle"] == 1


def test_leaving_the_road_is_penalised_and_terminates(highway):
    highway.reset(seed=0, options={"sim_seed": 1826701614})  # a world whose guard rail leaves a gap here
    place(highway.simulator, [])  # an empty road: nothing to hit on the way out
    _, terminated, _, info = drive(highway, (1.0, 0.3))
    assert terminated and info["off_road"] and not info["route_done"]
    assert info["reward_terms"]["off_road"] == -W.off_road and info["reward_terms"]["collision"] == 0.0


def test_gaps_between_lanes_are_not_leaving_the_road():
    """highway-env's off-road flag fires where the roundabout's entry meets the ring; the env
    only ends the episode when no lane is within the margin."""
    env = DriveEnv(scenarios=("roundabout",))
    env.reset(seed=0, options={"sim_seed": 1000})
    driver, flagged = ScriptedDriver(), 0
    for _ in range(200):
        sim, obs = env.simulator, env.sim_observation
        _, _, terminated, _, info = env.step(Action.from_control(driver.act(sim.privileged(), obs.ego)).to_array())
        flagged += env.sim_observation.events.off_road
        assert not terminated
    assert flagged > 0  # the situation the margin is for did occur
    env.close()


def test_progress_is_rewarded_when_driving_along_the_route(highway):
    highway.reset(seed=0)
    place(highway.simulator, [])
    terms = [highway.step(np.array([0.0, 0.2], np.float32))[4]["reward_terms"] for _ in range(20)]
    progress = [t["progress"] for t in terms]
    assert all(0.0 < p <= 1.0 for p in progress[1:]) and progress[-1] > 0.8
    for _ in range(150):  # brake to a stop: no progress, no reward for it
        *_, info = highway.step(np.array([0.0, -1.0], np.float32))
    assert abs(info["speed_mps"]) < 0.1 and info["reward_terms"]["progress"] == 0.0


def test_completing_the_route_terminates(highway):
    highway.reset(seed=0)
    sim = highway.simulator
    place(sim, [])
    x, y = highway.sim_observation.ego.x_m, highway.sim_observation.ego.y_m
    sim.route_progress = RouteProgress(np.array([[x, y], [x + 6.0, y]]))  # a 6 m route east, along the lane
    _, terminated, truncated, info = drive(highway, (0.0, 0.3), limit=50)
    assert terminated and not truncated and info["route_done"] and info["route_completion"] == 1.0
    assert info["score"]["route_completion"] == 1.0


def test_episode_is_truncated_at_the_step_limit():
    env = DriveEnv(scenarios=("highway",), max_steps=5)
    env.reset(seed=0)
    place(env.simulator, [])
    ends = [env.step(np.array([0.0, 0.0], np.float32))[2:4] for _ in range(5)]
    assert ends == [(False, False)] * 4 + [(False, True)]
    env.close()


def test_render_shows_the_view():
    env = DriveEnv(scenarios=("racetrack",), render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame is not None and frame.shape == (48, 96, 3) and frame.dtype == np.uint8
    assert frame[-10:].sum() > 0  # the road ahead is drawn
    env.close()


# -- the reward terms on hand-made steps -----------------------------------------------------


def facts(**changes: object) -> StepFacts:
    """A clean step: 0.5 m at 10 m/s (the target), centred, straight, no change in the action."""
    base = StepFacts(progress_m=0.5, speed_mps=10.0, target_speed_mps=10.0, dt_s=0.05, lateral_offset_m=0.0,
                     heading_error_rad=0.0, action=Action(0.0, 0.3), previous=Action(0.0, 0.3),
                     collision=False, off_road=False)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_clean_step_at_the_target_speed_earns_exactly_the_progress_weight():
    terms = reward_terms(facts(), W)
    assert terms["progress"] == pytest.approx(W.progress)
    assert all(v == 0.0 for k, v in terms.items() if k != "progress")


def test_progress_is_proportional_up_to_the_target_and_overspeed_costs():
    assert reward_terms(facts(progress_m=0.25, speed_mps=5.0), W)["progress"] == pytest.approx(0.5)
    fast = reward_terms(facts(progress_m=0.6, speed_mps=12.0), W)
    assert fast["progress"] == pytest.approx(W.progress)  # capped at the target speed
    assert fast["overspeed"] == pytest.approx(-0.2 * W.overspeed)
    assert reward_terms(facts(progress_m=-1.0), W)["progress"] == 0.0


def test_lane_keeping_terms_grow_with_the_offset_and_saturate():
    assert reward_terms(facts(lateral_offset_m=1.0), W)["lane_offset"] == pytest.approx(-0.25 * W.lane_offset)
    assert reward_terms(facts(lateral_offset_m=-5.0), W)["lane_offset"] == pytest.approx(-W.lane_offset)
    assert reward_terms(facts(heading_error_rad=math.pi / 8), W)["heading"] == pytest.approx(-0.25 * W.heading)
    assert reward_terms(facts(heading_error_rad=2.0), W)["heading"] == pytest.approx(-W.heading)


def test_changes_of_the_action_are_penalised():
    jerk = reward_terms(facts(action=Action(0.5, 1.0), previous=Action(-0.5, 0.0)), W)
    assert jerk["steer_change"] == pytest.approx(-W.steer_change)
    assert jerk["pedal_change"] == pytest.approx(-W.pedal_change)


def test_collision_and_off_road_cost_their_weight():
    assert reward_terms(facts(collision=True), W)["collision"] == -W.collision
    assert reward_terms(facts(off_road=True), W)["off_road"] == -W.off_road
    zero = RewardConfig(collision=0.0)
    assert reward_terms(facts(collision=True), zero)["collision"] == 0.0


def test_training_worlds_never_draw_the_evaluation_seeds(highway):
    """Seeds drawn at reset come from DriveConfig.sim_seed_range, above the validation/test seeds."""
    drawn = {highway.reset(seed=s)[1]["sim_seed"] for s in range(4)}
    assert len(drawn) == 4 and min(drawn) >= highway.config.sim_seed_range[0] >= 100_000
